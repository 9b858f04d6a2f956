"""The way back, PostgreSQL to SQLite (the rollback from ECS to the VM), verified the same way."""

from __future__ import annotations

import asyncio
import sqlite3

import psycopg
import pytest
from ansible_collections.tengen.ops.plugins.module_utils import sqlite_to_postgres as s2p
from games_data import sqlite_counts

from tests.games_db import STORE
from tests.module_runner import run_module
from tests.service_servers import APP_DIR

MODULE = "tengen.ops.sqlite_to_postgres"
LATEST = len(STORE.MIGRATIONS)  # the backend's schema version


def games_of(store) -> dict:
    async def run() -> dict:
        await store.open()
        try:
            return {gid: await store.get(gid) for gid in ("ai-finished", "ai-black", "unicode-é")}
        finally:
            await store.close()

    return asyncio.run(run())


def test_postgres_back_to_sqlite_round_trips_every_game(scratch, target, tmp_path):
    s2p.migrate(STORE, str(scratch), target)
    with psycopg.connect(target) as pg:  # written on ECS after the move
        pg.execute(
            'UPDATE games SET moves = \'[["B", "E5"], ["W", "C3"]]\', version = 2 WHERE id = \'ai-black\''
        )
    dest = tmp_path / "back.db"
    lines: list[str] = []
    result = s2p.export(STORE, target, str(dest), batch_rows=4, progress=lines.append)
    assert result["verification"]["mismatched"] == [] and result["rows"] == 9
    assert sqlite_counts(dest) == sqlite_counts(scratch)
    assert any(line.startswith("games: 9/9 rows (100%)") for line in lines), lines
    conn = sqlite3.connect(dest)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == list(range(1, LATEST + 1))
    conn.close()
    back, there = games_of(STORE.SqliteStore(str(dest))), games_of(STORE.PostgresStore(target))
    assert back == there and back["ai-black"].moves == [["B", "E5"], ["W", "C3"]]
    assert s2p.verify(str(dest), target)["mismatched"] == []


def test_the_way_back_through_ansible_changed_unchanged_refused_replaced(scratch, target, tmp_path):
    s2p.migrate(STORE, str(scratch), target)
    dest = tmp_path / "back.db"
    args = {
        "direction": "postgres_to_sqlite",
        "database_url": target.replace("tengen@", "tengen:pw-Back-7@"),
        "dest": str(dest),
        "backend_path": str(APP_DIR),
    }
    planned, output = run_module(MODULE, args, check=True, verbosity=3)
    assert planned["changed"] is True and planned["plan"]["tables"] == {"games": 9, "schema_version": LATEST}
    assert not dest.exists() and "pw-Back-7" not in output
    first, output = run_module(MODULE, args, verbosity=3)
    assert first["changed"] is True and first["verification"]["mismatched"] == [], first.get("msg")
    assert "pw-Back-7" not in output
    second, _ = run_module(MODULE, args)
    assert second["changed"] is False and "holds exactly the database already" in second["msg"]

    with psycopg.connect(target) as pg:
        pg.execute("DELETE FROM games WHERE id = 'ai-black'")
    refused, _ = run_module(MODULE, args)
    assert refused["failed"] is True and f"table games: 9 rows in {dest}, 8 in PostgreSQL" in refused["msg"]
    assert sqlite_counts(dest)["games"] == 9
    replaced, _ = run_module(MODULE, {**args, "replace": True})
    assert replaced["changed"] is True and sqlite_counts(dest)["games"] == 8


def test_a_source_at_another_schema_version_is_refused_and_dest_left_alone(target, tmp_path):
    dest = tmp_path / "back.db"
    with pytest.raises(s2p.MigrationError, match="has no schema_version table"):
        s2p.export(STORE, target, str(dest))
    s2p.migrate_postgres(STORE, target)
    with psycopg.connect(target) as pg:
        pg.execute(f"INSERT INTO schema_version VALUES ({LATEST + 1})")
    with pytest.raises(
        s2p.MigrationError, match=rf"schema version {LATEST + 1} is not the backend's latest \({LATEST}\)"
    ):
        s2p.export(STORE, target, str(dest))
    assert list(tmp_path.iterdir()) == []
