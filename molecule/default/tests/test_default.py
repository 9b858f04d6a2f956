"""The whole site.yml, verified from the host as a player reaches it, and inside the VM."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from tests.stack_checks import get, get_game, https_context, play_vs_ai  # noqa: E402

VM = "tengen-stack-molecule-vm"
CA = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")) / "caddy-root.crt"


def published(port: int) -> int:
    out = subprocess.run(["docker", "port", VM, f"{port}/tcp"], capture_output=True, text=True, check=True)
    return int(out.stdout.splitlines()[0].rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def base() -> str:
    return f"https://localhost:{published(443)}"


@pytest.fixture(scope="module")
def ctx() -> ssl.SSLContext:
    assert CA.is_file(), f"the root certificate was not fetched to {CA}"
    return https_context(str(CA))


def test_https_verifies_with_the_internal_ca_and_serves_the_client(base, ctx):
    resp = get(f"{base}/", ctx)
    assert resp.status == 200
    assert b"<html" in resp.body.lower()
    assert resp.headers["strict-transport-security"].startswith("max-age=")
    assert resp.headers["cache-control"] == "no-cache"


def test_https_fails_without_the_internal_ca(base):
    with pytest.raises(urllib.error.URLError) as err:
        get(f"{base}/", ssl.create_default_context())
    assert isinstance(err.value.reason, ssl.SSLCertVerificationError)


def test_http_redirects_to_https():
    resp = get(f"http://localhost:{published(80)}/some/page?x=1")
    assert resp.status in (301, 308)
    assert resp.headers["location"].startswith("https://localhost")
    assert resp.headers["location"].endswith("/some/page?x=1")


def test_static_files_are_compressed_and_cached(base, ctx):
    resp = get(f"{base}/app.js", ctx, {"Accept-Encoding": "gzip"})
    assert resp.status == 200
    assert resp.headers.get("content-encoding") == "gzip"
    assert "public" in resp.headers["cache-control"]


def test_a_move_is_answered_by_the_engine_and_pushed_over_the_websocket(base, ctx):
    result = play_vs_ai(base, ctx, move="E5")
    assert result.our_move == "E5"
    assert result.ai_move and result.ai_move != "E5"
    # Both moves reached the browser side through Caddy and nginx, and the API agrees.
    assert [m[1] for m in result.pushed[-1]["moves"]] == ["E5", result.ai_move]
    stored = json.loads(get_game(base, ctx, result.game_id).body)
    assert [m[1] for m in stored["moves"][:2]] == ["E5", result.ai_move]


def test_unknown_api_path_is_proxied_to_the_backend(base, ctx):
    resp = get(f"{base}/api/games/does-not-exist", ctx)
    assert resp.status == 404
    assert resp.headers["content-type"].startswith("application/json")


def test_containers_are_hardened(host):
    names = host.check_output("docker ps --format '{{.Names}}'").split()
    assert sorted(n.rsplit("-", 1)[0] for n in names) in (
        ["tengen-backend-blue", "tengen-caddy", "tengen-engine", "tengen-nginx"],
        ["tengen-backend-green", "tengen-caddy", "tengen-engine", "tengen-nginx"],
    )
    for name in names:
        info = json.loads(host.check_output(f"docker inspect {name}"))[0]
        assert info["Config"]["User"] == "10001:10001", name
        assert info["HostConfig"]["ReadonlyRootfs"] is True, name
        assert info["HostConfig"]["CapDrop"] == ["ALL"], name
        assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped", name
        assert info["HostConfig"]["LogConfig"]["Config"]["max-size"] == "10m", name
        assert info["State"]["Health"]["Status"] == "healthy", name
    engine = json.loads(host.check_output("docker inspect tengen-engine-1"))[0]["HostConfig"]
    assert engine["Memory"] == 512 * 2**20
    assert engine["NanoCpus"] == 10**9


def test_data_and_secrets_on_the_host(host):
    data = host.file("/var/lib/tengen")
    assert data.is_directory and data.uid == 10001
    assert host.file("/var/lib/tengen/tengen.db").exists
    env = host.file("/opt/tengen/backend.env")
    assert env.mode == 0o600 and env.uid == 0
    ledger = json.loads(host.file("/opt/tengen/releases.json").content_string)
    assert len(ledger["releases"]) == 1
    assert ledger["releases"][0]["images"]["engine"].startswith("tengen/engine-gnugo:")
