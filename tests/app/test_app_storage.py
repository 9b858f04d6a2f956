"""The backend on a full disk: its SQLite database on a small tmpfs that the test fills up."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sqlite3
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service_servers import Server, create, play, request, start_backend

MOVES = ["C3", "G7", "C7", "G3", "E5", "D4", "F6", "E3"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of its own (the tests run as root), unmounted whatever happens."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tengen-test-disk", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mounted.returncode == 0, f"cannot mount a tmpfs (the tests need root): {mounted.stderr}"
    try:
        yield mount
    finally:
        unmounted = subprocess.run(["umount", str(mount)], capture_output=True, text=True, check=False)
        if unmounted.returncode != 0:  # something still holds a file there: detach it all the same
            subprocess.run(["umount", "--lazy", str(mount)], check=True)
            pytest.fail(f"the test disk was still in use: {unmounted.stderr}")


def fill(path: Path) -> None:
    """Write zeros to `path` until the file system refuses one more byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        chunk = 64 * 1024
        while chunk:
            try:
                os.write(fd, b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                chunk //= 2
    finally:
        os.close(fd)


def post(url: str, body: dict) -> tuple[int, dict, dict]:
    """A POST; the status, the JSON body and the headers."""
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def storage_gauge(backend: Server) -> float:
    status, text = request("GET", f"{backend.url}/metrics")
    assert status == 200
    values = [
        float(line.split()[1]) for line in text.splitlines() if line.startswith("tengen_storage_writable ")
    ]
    assert len(values) == 1, text
    return values[0]


def test_a_full_disk_refuses_writes_with_503_and_recovers_by_itself(
    small_disk: Path, tmp_path: Path, engine: Server
) -> None:
    database = small_disk / "tengen.db"
    backend = start_backend(tmp_path, engine.url, TENGEN_DB_PATH=str(database))
    try:
        game, tokens = create(backend, size=9, opponent="human")
        url = f"{backend.url}/api/games/{game['id']}/moves"
        acknowledged = []
        for number, move in enumerate(MOVES[:4]):
            color = "BW"[number % 2]
            assert play(backend, game["id"], tokens[color], move)[0] == 200
            acknowledged.append([color, move])

        filler = small_disk / "filler"
        fill(filler)
        # Black's move: refused as a whole, with the reason and when to try again; never a 500.
        for _ in range(3):
            status, body, headers = post(url, {"token": tokens["B"], "move": MOVES[4]})
            assert status == 503, body
            assert body["reason"] == "storage full"
            assert int(headers["Retry-After"]) > 0
        status, body, _ = post(f"{backend.url}/api/games", {"size": 9, "opponent": "human"})
        assert (status, body["reason"]) == (503, "storage full")
        # Still ready (reads and WebSockets go on), and it says why writes fail.
        status, ready = request("GET", f"{backend.url}/readyz")
        assert status == 200, ready
        assert ready["storage"] == {"writable": False, "reason": "storage full"}
        assert storage_gauge(backend) == 0
        status, current = request("GET", f"{backend.url}/api/games/{game['id']}")
        assert status == 200 and current["moves"] == acknowledged

        # Space comes back: the probe behind /readyz sees it before any move is tried.
        filler.unlink()
        status, ready = request("GET", f"{backend.url}/readyz")
        assert status == 200 and "storage" not in ready, ready
        assert storage_gauge(backend) == 1
        for number, move in enumerate(MOVES[4:], start=4):
            color = "BW"[number % 2]
            status, body = play(backend, game["id"], tokens[color], move)
            assert status == 200, body
            acknowledged.append([color, move])
        second, _ = create(backend, size=9, opponent="human")
        assert backend.proc.poll() is None  # the same process all along
    finally:
        backend.stop()
    assert "Traceback" not in backend.output()

    conn = sqlite3.connect(database)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = dict(conn.execute("SELECT id, moves FROM games").fetchall())
    finally:
        conn.close()
    assert json.loads(stored[game["id"]]) == acknowledged
    assert set(stored) == {game["id"], second["id"]}


def test_sqlite_syncs_every_commit_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tengen_app.app import Settings
    from tengen_app.store import make_store

    async def synchronous_of(settings: Settings) -> int:
        store = make_store(None, str(tmp_path / "tengen.db"), settings.sqlite_synchronous)
        await store.open()
        try:
            return store.conn.execute("PRAGMA synchronous").fetchone()[0]
        finally:
            await store.close()

    monkeypatch.delenv("TENGEN_SQLITE_SYNCHRONOUS", raising=False)
    assert asyncio.run(synchronous_of(Settings.from_env())) == 2  # FULL: the WAL is synced at each commit
    monkeypatch.setenv("TENGEN_SQLITE_SYNCHRONOUS", "normal")
    assert asyncio.run(synchronous_of(Settings.from_env())) == 1
    monkeypatch.setenv("TENGEN_SQLITE_SYNCHRONOUS", "off")
    with pytest.raises(ValueError, match="TENGEN_SQLITE_SYNCHRONOUS must be one of NORMAL, FULL, EXTRA"):
        make_store(None, str(tmp_path / "tengen.db"), Settings.from_env().sqlite_synchronous)
