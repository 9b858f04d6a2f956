"""Helpers for the SQLite backup tests: a games database in the backend's schema and a real writer
process hammering it as the backend does (tests/games_db.py)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

from ansible_collections.tengen.ops.plugins.module_utils import sqlite_backup  # noqa: E402

from tests import games_db  # noqa: E402

# The backend dies (no close, no checkpoint) right after committing N new games: they live in its WAL.
CRASH = r"""
import os, random, sqlite3, sys
sys.path.insert(0, sys.argv[1])
from tests import games_db
conn = sqlite3.connect(sys.argv[2])
conn.execute("PRAGMA wal_autocheckpoint=0")
rng = random.Random(7)
with conn:
    games_db.insert(conn, [games_db.game(f"crash{i}", 3, rng) for i in range(int(sys.argv[3]))])
os._exit(0)
"""


def crashed_backend(db: Path, games: int) -> None:
    subprocess.run([sys.executable, "-c", CRASH, str(REPO), str(db), str(games)], check=True)
    assert Path(f"{db}-wal").stat().st_size > 0


def make_db(path: Path, rows: int = 1000, journal_mode: str = "wal") -> Path:
    """The backend's schema, made by its own migrations: 50 games holding ``rows`` moves in all."""
    return games_db.make_db(path, games=50, moves=rows, journal_mode=journal_mode)


def counts(path: Path | str) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return sqlite_backup.table_row_counts(conn)
    finally:
        conn.close()


@contextmanager
def writer(db: Path, journal_mode: str = "wal") -> Iterator[subprocess.Popen]:
    """A separate process committing one row per transaction until told to stop."""
    stop = db.with_suffix(".stop")
    proc = subprocess.Popen(
        [sys.executable, "-c", games_db.WRITER, str(db), str(stop), journal_mode, str(games_db.APP_DIR)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.3)
        assert proc.poll() is None, "the writer died at start"
        yield proc
    finally:
        stop.touch()
        out, _ = proc.communicate(timeout=60)
        proc.stdout_value = out  # type: ignore[attr-defined]
        stop.unlink()


def file_digests(directory: Path) -> dict[str, str]:
    return {p.name: sqlite_backup.sha256_file(str(p)) for p in sorted(directory.iterdir()) if p.is_file()}
