"""The static web client: self-contained (no CDN, no build step), talking to its own origin."""

from __future__ import annotations

import re

from tests.conftest import REPO

WEB = REPO / "files" / "web"


def test_the_page_loads_only_its_own_files() -> None:
    html = (WEB / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(ref for ref in refs if not ref.startswith("#")) == ["app.js", "style.css"]
    assert 'name="viewport"' in html  # usable on a phone
    for name in ("index.html", "app.js", "style.css"):
        text = (WEB / name).read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), (
            f"{name} reaches outside its origin"
        )


def test_the_client_uses_the_documented_api_and_websocket() -> None:
    js = (WEB / "app.js").read_text()
    for path in (
        '"/api"',
        "/games/${game.id}/moves",
        "/games/${current.id}/pass",
        "/games/${current.id}/resign",
    ):
        assert path in js
    assert "/ws/games/${current.id}" in js
    assert 'location.protocol === "https:" ? "wss" : "ws"' in js  # same origin, TLS when the page has it
