"""Helpers for the SQLite backup tests: a games database and a real writer process hammering it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

from ansible_collections.tengen.ops.plugins.module_utils import sqlite_backup  # noqa: E402

WRITER = r"""
import os, sqlite3, sys, time
db, stop, mode = sys.argv[1], sys.argv[2], sys.argv[3]
conn = sqlite3.connect(db, timeout=30, isolation_level=None)
conn.execute("PRAGMA busy_timeout=30000")
payload = os.urandom(150).hex()
n = 0
while not os.path.exists(stop):
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO moves(game_id, payload) VALUES (?, ?)", (n % 50 + 1, payload))
    conn.execute("COMMIT")
    n += 1
print(n)
"""


def make_db(path: Path, rows: int = 1000, journal_mode: str = "wal") -> Path:
    """A small stand-in for the backend's schema: games and their moves."""
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode={journal_mode}")
    conn.execute("PRAGMA user_version=3")
    conn.execute("CREATE TABLE games(id INTEGER PRIMARY KEY, black TEXT, white TEXT)")
    conn.execute("CREATE TABLE moves(id INTEGER PRIMARY KEY AUTOINCREMENT, game_id INTEGER, payload TEXT)")
    conn.execute("CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO schema_migrations VALUES (?)", [(1,), (2,), (3,)])
    conn.executemany("INSERT INTO games(black, white) VALUES (?, ?)", [("b", "w")] * 50)
    conn.executemany(
        "INSERT INTO moves(game_id, payload) VALUES (?, ?)",
        ((i % 50 + 1, os.urandom(150).hex()) for i in range(rows)),
    )
    conn.commit()
    conn.close()
    return path


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
        [sys.executable, "-c", WRITER, str(db), str(stop), journal_mode], stdout=subprocess.PIPE, text=True
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
