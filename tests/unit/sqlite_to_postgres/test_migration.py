"""The move from a verified SQLite backup to PostgreSQL, against a real PostgreSQL cluster."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest
from ansible_collections.tengen.ops.plugins.module_utils import sqlite_to_postgres as s2p
from games_data import sqlite_counts

from tests.games_db import STORE
from tests.service_servers import request, start_backend

LATEST = len(STORE.MIGRATIONS)  # the backend's schema version

DEAD_ENGINE = "http://127.0.0.1:9"


def read_all(store, ids: list[str]) -> dict[str, object]:
    async def run() -> dict[str, object]:
        await store.open()
        try:
            return {game_id: await store.get(game_id) for game_id in ids}
        finally:
            await store.close()

    return asyncio.run(run())


def game_ids(db: Path) -> list[str]:
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM games ORDER BY id")]
    finally:
        conn.close()


def test_the_backends_database_moves_with_equal_counts_and_checksums(games, scratch, target, tmp_path):
    lines: list[str] = []
    result = s2p.migrate(STORE, str(scratch), target, batch_rows=3, progress=lines.append)

    counts = sqlite_counts(scratch)
    assert result["verification"]["mismatched"] == []
    for table, rows in counts.items():
        assert result["verification"]["source"][table]["rows"] == rows
        assert result["verification"]["target"][table] == result["verification"]["source"][table]
    assert result["tables"]["games"]["rows"] == counts["games"] == len(games["views"]) + 3
    assert any(line.startswith("games: 9/9 rows (100%)") and "rows/s" in line for line in lines), lines
    assert result["rows_per_second"] > 0

    # The schema is the backend's own: its migration recorded both versions, komi is real (float4).
    with psycopg.connect(target) as pg:
        versions = [r[0] for r in pg.execute("SELECT version FROM schema_version ORDER BY version")]
        types = dict(
            pg.execute(
                "SELECT column_name, data_type || ':' || is_nullable FROM information_schema.columns"
                " WHERE table_name = 'games'"
            ).fetchall()
        )
    assert versions == list(range(1, len(STORE.MIGRATIONS) + 1))
    assert types["size"] == "integer:NO" and types["created_at"] == "double precision:NO"
    assert types["ai_color"] == "text:YES" and types["moves"] == "text:NO"

    # The backend's PostgreSQL store reads every game exactly as its SQLite store does.
    ids = game_ids(scratch)
    from_sqlite = read_all(STORE.SqliteStore(str(scratch)), ids)
    from_postgres = read_all(STORE.PostgresStore(target), ids)
    assert from_postgres == from_sqlite
    assert len(from_postgres["ai-finished"].moves) == 362
    assert from_postgres["unicode-é"].white_token == "t'w\\\t\""

    # And the backend itself serves them from PostgreSQL, and goes on playing.
    # The fixture's games are years old: the game lifetime would sweep them away at the start.
    forever = {"TENGEN_FINISHED_GAME_DAYS": "0", "TENGEN_ABANDONED_GAME_DAYS": "0"}
    backend = start_backend(tmp_path, DEAD_ENGINE, DATABASE_URL=target, **forever)
    try:
        for game_id, before in games["views"].items():
            status, after = request("GET", f"{backend.url}/api/games/{game_id}")
            assert status == 200 and after == before
        status, game = request("GET", f"{backend.url}/api/games/ai-black")
        assert status == 200 and game["moves"] == [["B", "E5"]] and game["version"] == 1
        status, played = request(
            "POST", f"{backend.url}/api/games/ai-black/moves", {"token": "tok-w", "move": "C3"}
        )
        assert status == 200 and played["moves"] == [["B", "E5"], ["W", "C3"]] and played["version"] == 2
    finally:
        assert backend.stop() == 0


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        ("DELETE FROM games WHERE id = 'ai-black'", "table games: 9 rows in the backup, 8 in the target"),
        ("UPDATE games SET updated_at = updated_at + 0.000001 WHERE id = 'ai-finished'", "table games: same"),
        ("UPDATE games SET ai_color = NULL WHERE id = 'ai-black'", "table games: same row count"),
        (
            "INSERT INTO schema_version VALUES (2)",
            f"table schema_version: {LATEST} rows in the backup, {LATEST + 1}",
        ),
    ],
)
def test_a_target_differing_by_one_row_or_value_fails_verification_naming_the_table(
    scratch, target, tamper, words
):
    s2p.migrate(STORE, str(scratch), target)
    assert s2p.verify(str(scratch), target)["mismatched"] == []
    with psycopg.connect(target) as pg:
        pg.execute(tamper)
    verification = s2p.verify(str(scratch), target)
    table = words.split()[1].rstrip(":")
    assert verification["mismatched"] == [table]
    assert words in s2p.describe_mismatch(verification)


def test_a_non_empty_target_is_refused_and_replace_reloads_it(scratch, target):
    s2p.migrate(STORE, str(scratch), target)
    with psycopg.connect(target) as pg:
        pg.execute("UPDATE games SET result = 'W+R' WHERE id = 'ai-black'")
    with pytest.raises(s2p.MigrationError, match=r"not empty \(games: 9 rows\).*replace: true"):
        s2p.migrate(STORE, str(scratch), target)
    with psycopg.connect(target) as pg:
        assert pg.execute("SELECT result FROM games WHERE id = 'ai-black'").fetchone() == ("W+R",)

    again = s2p.migrate(STORE, str(scratch), target, replace=True)
    assert again["verification"]["mismatched"] == [] and again["applied_migrations"] == 0
    with psycopg.connect(target) as pg:
        assert pg.execute("SELECT result FROM games WHERE id = 'ai-black'").fetchone() == (None,)


def test_a_value_without_a_postgresql_form_fails_naming_it_and_commits_nothing(scratch, target):
    import sqlite3

    conn = sqlite3.connect(scratch)
    conn.execute("UPDATE games SET version = 'seven' WHERE id = 'ai-black'")
    conn.commit()
    conn.close()
    with pytest.raises(s2p.MigrationError, match=r"games\.version \(rowid \d+\): 'seven' is not an integer"):
        s2p.migrate(STORE, str(scratch), target)
    with psycopg.connect(target) as pg:
        assert pg.execute("SELECT count(*) FROM games").fetchone() == (0,)


def test_an_older_backup_is_brought_up_to_date_by_the_backends_own_migration(tmp_path, target):
    # A backup taken before the second migration (the index): version 1 only.
    import sqlite3

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.execute(STORE.MIGRATIONS[0])
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.execute(
        "INSERT INTO games VALUES ('old', 19, 6.5, 'human', NULL, 'b', 'w', '[]', NULL, 0, 1.5, 2.5)"
    )
    conn.commit()
    conn.close()
    result = s2p.migrate(STORE, str(db), target)
    assert result["upgraded_source_by"] == len(STORE.MIGRATIONS) - 1
    assert result["verification"]["target"]["schema_version"]["rows"] == len(STORE.MIGRATIONS)


# A migration the backend might add one day, valid for both engines as the backend's are: every type
# pgloader gets wrong, a serial key, defaults and NOT NULL. Appended to the backend's own migrations.
EXTRA_MIGRATION = """CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    game_id TEXT NOT NULL,
    public BOOLEAN NOT NULL DEFAULT FALSE,
    at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    seen TIMESTAMP,
    payload JSONB,
    score DOUBLE PRECISION,
    moves_played INTEGER NOT NULL,
    note TEXT
)"""

EVENTS = [
    # id, game_id, public, at, seen, payload, score, moves_played, note
    (1, "g1", 1, "2026-12-02 10:00:00", "2026-12-02T10:00:00.5Z", '{"b": [1, 2.5], "a": null}', 0.1, 7, "x"),
    (2, "g1", 0, 1764669600, 1764669600.25, "[]", 1e300, "12", ""),
    (7, "g2", "true", "2026-12-02T11:00:00+01:00", None, None, None, 0, None),
    (9, "g3", "f", "1764669600.5", "2026-12-02", '"é"', -0.0, 2**31 - 1, "\\N"),
]


def test_every_type_pgloader_gets_wrong_maps_and_sequences_continue(tmp_path, target, monkeypatch):
    monkeypatch.setattr(STORE, "MIGRATIONS", [*STORE.MIGRATIONS, EXTRA_MIGRATION])
    import sqlite3

    db = tmp_path / "typed.db"

    async def make() -> None:
        store = STORE.SqliteStore(str(db))
        await store.open()
        await store.migrate()
        await store.close()

    asyncio.run(make())
    conn = sqlite3.connect(db)
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", EVENTS)
    conn.execute("INSERT INTO events (id, game_id, moves_played) VALUES (10, 'g4', 3)")  # SQLite's defaults
    conn.commit()
    conn.close()

    result = s2p.migrate(STORE, str(db), target)
    assert result["verification"]["mismatched"] == []
    assert result["sequences"] == {"public.events_id_seq": 11}
    with psycopg.connect(target) as pg:
        rows = {
            r[0]: r[1:]
            for r in pg.execute("SELECT id, public, at, seen, payload, score, moves_played FROM events")
        }
        nullable = dict(
            pg.execute(
                "SELECT column_name, is_nullable FROM information_schema.columns WHERE table_name = 'events'"
            ).fetchall()
        )
        new_id, new_public = pg.execute(
            "INSERT INTO events (game_id, moves_played) VALUES ('g5', 1) RETURNING id, public"
        ).fetchone()
    assert rows[1][0] is True and rows[2][0] is False and rows[7][0] is True and rows[9][0] is False
    assert rows[1][1].isoformat() == "2026-12-02T10:00:00+00:00"
    assert rows[2][1].timestamp() == 1764669600 and rows[9][1].timestamp() == 1764669600.5
    assert rows[7][1].isoformat() == "2026-12-02T10:00:00+00:00"
    assert rows[1][2].isoformat() == "2026-12-02T10:00:00.500000" and rows[2][2].timestamp() > 0
    assert rows[1][3] == {"a": None, "b": [1, 2.5]} and rows[9][3] == "é" and rows[7][3] is None
    assert rows[1][4] == 0.1 and rows[2][4] == 1e300
    assert rows[2][5] == 12 and rows[9][5] == 2**31 - 1
    assert rows[10][0] is False and rows[10][1].year >= 2026  # SQLite's CURRENT_TIMESTAMP, as UTC
    assert nullable["game_id"] == "NO" and nullable["moves_played"] == "NO" and nullable["note"] == "YES"
    assert new_id == 11 and new_public is False  # the sequence continues; PostgreSQL's own default


def test_a_schema_version_the_backend_does_not_know_is_refused_before_any_change(scratch, target):
    import sqlite3

    conn = sqlite3.connect(scratch)
    conn.execute("INSERT INTO schema_version VALUES (99)")
    conn.commit()
    conn.close()
    with pytest.raises(s2p.MigrationError, match="schema version 99 is newer than the backend's migrations"):
        s2p.migrate(STORE, str(scratch), target)
    with psycopg.connect(target) as pg:
        assert pg.execute("SELECT to_regclass('games')").fetchone() == (None,)


def test_the_checksum_ignores_row_order_and_tells_null_from_text():
    columns = [s2p.Column("a", "text", True), s2p.Column("b", "integer", True)]
    one, two = s2p.Checksum(), s2p.Checksum()
    rows = [(None, 1), ("N", 1), ("", 1), ("1|1:s", None)]
    for row in rows:
        one.add(s2p.render_row(row, columns))
    for row in reversed(rows):
        two.add(s2p.render_row(row, columns))
    assert one.result() == two.result()
    renders = {s2p.render_row(row, columns) for row in rows}
    assert len(renders) == len(rows)


@pytest.mark.parametrize(
    ("value", "data_type", "expected"),
    [
        ("12", "integer", 12),
        (" -3 ", "bigint", -3),
        (4.0, "integer", 4),
        (1, "boolean", True),
        ("no", "boolean", False),
        ("7.5", "real", 7.5),
        (3, "double precision", 3.0),
        (12, "text", "12"),
        ("[1, 2]", "jsonb", "[1, 2]"),
        (b"\x00\x01", "bytea", b"\x00\x01"),
    ],
)
def test_values_convert_to_their_columns_type(value, data_type, expected):
    converted = s2p.convert(value, s2p.Column("c", data_type, True))
    assert converted == expected and type(converted) is type(expected)


@pytest.mark.parametrize(
    ("value", "data_type", "words"),
    [
        ("seven", "integer", "is not an integer"),
        (1.5, "integer", "is not an integer"),
        (2**31, "integer", "is not in the range of PostgreSQL's integer"),
        (2, "boolean", "is not a boolean"),
        ("yesterday", "timestamp with time zone", "is not an ISO or epoch timestamp"),
        ("{not json", "json", "is not JSON"),
        ("a\x00b", "text", "NUL character"),
    ],
)
def test_values_without_a_form_in_their_columns_type_are_named(value, data_type, words):
    with pytest.raises(s2p.MigrationError, match=words):
        s2p.convert(value, s2p.Column("c", data_type, True))


def test_the_password_is_masked_in_urls_and_messages():
    url = "postgresql://tengen:s3cr%40t@db.internal:5432/tengen?sslmode=require"
    assert s2p.mask_url(url) == "postgresql://tengen:********@db.internal:5432/tengen?sslmode=require"
    assert s2p.scrub("failed for s3cr@t and s3cr%40t", url) == "failed for ******** and ********"
    query = "postgresql://db.internal/tengen?user=u&password=hunter2"
    assert "hunter2" not in s2p.mask_url(query) and "password=********" in s2p.mask_url(query)


def test_a_user_that_may_only_read_is_refused_before_any_change(scratch, target):
    s2p.migrate_postgres(STORE, target)
    role = "reader_" + target.rsplit("_", 1)[1]
    with psycopg.connect(target, autocommit=True) as pg:
        pg.execute(f"CREATE ROLE {role} LOGIN")
        pg.execute(f"GRANT SELECT ON games, schema_version TO {role}")
    reader = target.replace("tengen@", f"{role}@")
    with pytest.raises(s2p.MigrationError, match="lacks the INSERT privilege on table games"):
        s2p.migrate(STORE, str(scratch), reader)
