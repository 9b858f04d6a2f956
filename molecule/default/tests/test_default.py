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

from tests.stack_checks import get, get_game, https_context, molecule_playbook, play_vs_ai  # noqa: E402

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


def running_backend(host) -> str:
    names = host.check_output(
        "docker ps --filter label=com.docker.compose.service --format '{{.Names}}'"
    ).split()
    backends = [n for n in names if n.startswith("tengen-backend-")]
    assert len(backends) == 1, names
    return backends[0]


def test_backups_of_the_live_database_run_on_a_timer(host):
    timer = host.service("tengen-backup.timer")
    assert timer.is_enabled and timer.is_running
    host.run_expect([0], "systemctl start tengen-backup.service")
    state = json.loads(host.file("/var/lib/tengen-backup/status.json").content_string)
    assert state["last_result"] == "ok", state
    assert host.file(state["location"]).exists


# Last: the restore puts the database back to the newest backup.
def test_a_restore_brings_the_backup_back_through_the_live_backend_slot(host, base, ctx):
    kept = play_vs_ai(base, ctx, move="C3").game_id
    host.run_expect([0], "systemctl start tengen-backup.service")
    # By name: the timer may take a newer backup meanwhile.
    backup = json.loads(host.file("/var/lib/tengen-backup/status.json").content_string)["name"]
    later = play_vs_ai(base, ctx, move="G7").game_id
    slot = running_backend(host)

    run = molecule_playbook("restore.yml", f"sqlite_backup_restore_backup={backup}")
    assert "Restored tengen-" in run.stdout

    # The slot that ran before runs again, healthy; the game made after the backup is gone.
    assert running_backend(host) == slot
    state = json.loads(host.check_output(f"docker inspect {slot}"))[0]["State"]
    assert state["Health"]["Status"] == "healthy"
    assert get_game(base, ctx, kept).status == 200
    assert get_game(base, ctx, later).status == 404
    assert any(name.startswith("tengen.db.pre-restore-") for name in host.file("/var/lib/tengen").listdir())
