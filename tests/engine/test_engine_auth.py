"""The gateway's shared secret: every request but the health checks needs it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.service_servers import Server

TOKEN = "s3cret-0123456789abcdef"
MOVE = {"size": 9, "komi": 7.5, "moves": [["B", "E5"]], "color": "W"}


def call(method: str, url: str, body: object = None, authorization: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}") if "json" in resp.headers[
                "Content-Type"
            ] else {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory):
    from tests.service_servers import start_engine

    server = start_engine(tmp_path_factory.mktemp("locked"), TENGEN_ENGINE_TOKEN=TOKEN)
    yield server
    server.stop()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        TOKEN,
        f"Basic {TOKEN}",
        f"bearer {TOKEN}",
    ],
)
@pytest.mark.parametrize(("method", "path"), [("POST", "/move"), ("POST", "/analyze"), ("GET", "/metrics")])
def test_a_missing_or_wrong_secret_is_refused(locked: Server, method: str, path: str, authorization) -> None:
    status, data = call(method, f"{locked.url}{path}", MOVE if method == "POST" else None, authorization)
    assert status == 401 and "Bearer" in data["error"]


def test_the_right_secret_is_served(locked: Server) -> None:
    status, data = call("POST", f"{locked.url}/move", MOVE, f"Bearer {TOKEN}")
    assert status == 200 and data["engine"] == "GNU Go"
    assert call("GET", f"{locked.url}/metrics", authorization=f"Bearer {TOKEN}")[0] == 200


def test_health_checks_need_no_secret(locked: Server) -> None:
    assert call("GET", f"{locked.url}/healthz") == (200, {"status": "ok"})
    assert call("GET", f"{locked.url}/readyz")[0] == 200


def test_without_a_configured_secret_nothing_is_asked(gateway: Server) -> None:
    assert call("POST", f"{gateway.url}/move", MOVE)[0] == 200


def test_a_short_secret_stops_the_gateway_at_start(tmp_path) -> None:
    import os
    import subprocess
    import sys

    from tests.service_servers import ENGINE_DIR

    run = subprocess.run(
        [sys.executable, "-m", "tengen_engine"],
        cwd=ENGINE_DIR,
        env={**os.environ, "TENGEN_ENGINE_TOKEN": "short", "TENGEN_ENGINE_PORT": "1"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode != 0 and "at least 16 characters" in run.stderr
