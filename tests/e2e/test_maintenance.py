"""playbooks/maintenance.yml on the sandbox VM, through Caddy and nginx as a player reaches it."""

from __future__ import annotations

import json
import re
import ssl
import time
import urllib.error
import urllib.request

from playwright.sync_api import sync_playwright

from tests.browser import launch
from tests.e2e.conftest import STATE_DIR
from tests.e2e.test_browser import browser_home  # noqa: F401 (a HOME trusting the sandbox CA)
from tests.stack_checks import get, https_context

REASON = "moving the games to a bigger home"


def post(url: str, ctx: ssl.SSLContext, body: dict) -> tuple[int, dict, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def recap(stdout: str) -> tuple[int, int]:
    """changed and failed of the sandbox host in a playbook's recap."""
    found = re.search(r"^sandbox\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", stdout, re.M)
    assert found, stdout[-3000:]
    return int(found[1]), int(found[2])


def test_maintenance_on_refuses_writes_keeps_reads_and_off_restores_them(
    sandbox,
    browser_home,  # noqa: F811 (the fixture imported above)
) -> None:
    started = time.monotonic()
    base = f"https://localhost:{sandbox.https_port}"
    ctx = https_context(str(STATE_DIR / "caddy-root.crt"))
    status, _, created = post(f"{base}/api/games", ctx, {"size": 9, "opponent": "human"})
    assert status == 201, created
    gid, token = created["game"]["id"], created["tokens"]["B"]

    bad = sandbox.ansible_playbook("playbooks/maintenance.yml", "-e", "state=maybe")
    assert bad.returncode != 0 and "Give -e state=on or -e state=off" in bad.stdout

    with sync_playwright() as p:
        browser = launch(p, browser_home)
        try:
            page = browser.new_page()
            assert page.goto(f"{base}/#game={gid}&B={token}").ok
            page.wait_for_selector("#connection.live", timeout=30_000)
            page.wait_for_function("document.querySelectorAll('#board rect.hit').length === 81")

            on = sandbox.ansible_playbook(
                "playbooks/maintenance.yml",
                "-e",
                "state=on",
                "-e",
                f"reason='{REASON}'",
                "-e",
                "retry_after=120",
            )
            assert on.returncode == 0, on.stdout[-3000:]
            # The open page is told over its WebSocket, keeps it, and pauses its move controls.
            page.wait_for_function(
                f"document.getElementById('message').textContent.includes({json.dumps(REASON)})",
                timeout=10_000,
            )
            assert page.locator("#pass").is_disabled() and page.locator("#board rect.hit").count() == 0
            assert page.locator("#connection.live").count() == 1

            status, headers, data = post(f"{base}/api/games/{gid}/moves", ctx, {"token": token, "move": "E5"})
            assert status == 503 and headers["Retry-After"] == "120" and REASON in data["error"], (
                status,
                data,
            )
            assert get(f"{base}/api/games/{gid}", ctx).status == 200
            assert get(f"{base}/api/games/{gid}/sgf", ctx).status == 200
            notice = get(f"{base}/", ctx)
            assert notice.status == 503 and notice.headers["retry-after"] == "120"
            assert b"tengen is in maintenance" in notice.body and REASON.encode() in notice.body
            assert get(f"{base}/app.js", ctx).status == 200  # an open page keeps its client

            off = sandbox.ansible_playbook("playbooks/maintenance.yml", "-e", "state=off")
            assert off.returncode == 0 and recap(off.stdout)[0] > 0, off.stdout[-3000:]
            page.wait_for_function(
                "document.querySelectorAll('#board rect.hit').length === 81", timeout=10_000
            )
            assert page.locator("#pass").is_enabled() and page.locator("#message").text_content() == ""
        finally:
            browser.close()
            # A failure above must not leave the sandbox read-only for the tests after this one.
            if sandbox.exec("test", "-e", "/var/lib/tengen/maintenance.json", check=False).returncode == 0:
                sandbox.ansible_playbook("playbooks/maintenance.yml", "-e", "state=off")

    assert get(f"{base}/", ctx).status == 200
    status, _, data = post(f"{base}/api/games/{gid}/moves", ctx, {"token": token, "move": "E5"})
    assert status == 200 and data["moves"] == [["B", "E5"]], data
    again = sandbox.ansible_playbook("playbooks/maintenance.yml", "-e", "state=off")
    assert again.returncode == 0 and recap(again.stdout) == (0, 0), again.stdout[-3000:]
    print(f"maintenance on/off through the stack: {time.monotonic() - started:.1f} s")
