"""Game databases in the backend's own schema: made by its own migrations, rows written as its store
writes them (games with their moves as JSON, schema_version). Shared by the backup and migration
tests and benchmarks/backup.py, so that none of them tests a schema the backend does not have."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import sqlite3
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP_DIR = REPO / "files" / "app"
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

from tengen_app import store as STORE  # noqa: E402

LETTERS = "ABCDEFGHJKLMNOPQRST"
INSERT_SQL = f"INSERT INTO games ({STORE.COLUMNS}) VALUES ({STORE.PLACEHOLDERS})"


def migrate(path: Path) -> Path:
    """An empty database made by the backend's store itself: WAL, its migrations, schema_version."""

    async def run() -> None:
        store = STORE.SqliteStore(str(path))
        await store.open()
        await store.migrate()
        await store.close()

    asyncio.run(run())
    return path


def store_games(db: Path) -> None:
    """Games written through the backend's own store (migrating first): the AI's games, with NULL
    tokens and results, fractional epoch times and the longest move lists a 19x19 game makes."""

    async def write() -> None:
        store = STORE.SqliteStore(str(db))
        await store.open()
        await store.migrate()
        long_game = [
            ["B" if i % 2 == 0 else "W", f"{'ABCDEFGHJKLMNOPQRST'[i % 19]}{i // 19 + 1}"] for i in range(361)
        ]
        records = [
            STORE.GameRecord(
                "ai-finished",
                19,
                7.5,
                "ai",
                "W",
                "tok-b",
                None,
                long_game + [["W", "resign"]],
                "B+R",
                362,
                1764670000.123456,
                1764673600.654321,
            ),
            STORE.GameRecord(
                "ai-black",
                9,
                0.0,
                "ai",
                "B",
                None,
                "tok-w",
                [["B", "E5"]],
                None,
                1,
                1764670000.0,
                1764670001.5,
            ),
            STORE.GameRecord("unicode-é", 13, 5.5, "human", None, "tök", "t'w\\\t\"", [], None, 0, 0.1, 1e-7),
        ]
        for record in records:
            await store.create(record)
        await store.close()

    asyncio.run(write())


def schema_version() -> int:
    return len(STORE.MIGRATIONS)


def token(rng: random.Random, length: int = 43) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(length)).decode()[:length]


def game(
    game_id: str, moves: int, rng: random.Random, size: int = 19, token_length: int = 43
) -> STORE.GameRecord:
    """A human game with ``moves`` moves on random points, as the backend records one."""
    played = [
        ["B" if i % 2 == 0 else "W", f"{LETTERS[rng.randrange(size)]}{rng.randrange(size) + 1}"]
        for i in range(moves)
    ]
    return STORE.GameRecord(
        game_id,
        size,
        7.5,
        "human",
        None,
        token(rng, token_length),
        token(rng, token_length),
        played,
        None,
        moves,
        1764670000.0 + moves,
        1764670000.0 + 2 * moves,
    )


def insert(conn: sqlite3.Connection, games: list[STORE.GameRecord]) -> None:
    conn.executemany(INSERT_SQL, [STORE._row(g) for g in games])


def make_db(
    path: Path,
    games: int = 50,
    moves: int = 1000,
    journal_mode: str = "wal",
    token_length: int = 43,
    seed: int = 1,
) -> Path:
    """The backend's schema with ``games`` games holding ``moves`` moves in all (spread evenly)."""
    migrate(path)
    rng = random.Random(seed)
    conn = sqlite3.connect(path)
    if journal_mode != "wal":
        conn.execute(f"PRAGMA journal_mode={journal_mode}")
    with conn:
        insert(
            conn,
            [
                game(
                    f"g{i:06d}",
                    moves // games + (1 if i < moves % games else 0),
                    rng,
                    token_length=token_length,
                )
                for i in range(games)
            ],
        )
    conn.close()
    return path


def grow(db: Path, megabytes: int) -> None:
    """Add games with long random tokens: the copy grows by about this much, and gzip saves little."""
    rng = random.Random(os.urandom(8))
    conn = sqlite3.connect(db)
    with conn:
        insert(
            conn, [game(f"big{i:08d}", 1, rng, token_length=500) for i in range(megabytes * 1000)]
        )  # ~1 KiB each
    conn.close()


def move_counts(db: Path | str) -> dict[str, int]:
    """Every game's move count, as the backend's JSON holds it."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return dict(conn.execute("SELECT id, json_array_length(moves) FROM games"))
    finally:
        conn.close()


def drop_last_move(db: Path | str, game_id: str) -> None:
    """Lose a move inside a game: the row stays (row counts cannot see it), its moves are one fewer."""
    conn = sqlite3.connect(db)
    with conn:
        moves = STORE.json.loads(
            conn.execute("SELECT moves FROM games WHERE id = ?", (game_id,)).fetchone()[0]
        )
        conn.execute("UPDATE games SET moves = ? WHERE id = ?", (STORE.json.dumps(moves[:-1]), game_id))
    conn.close()


# A separate process that writes as the backend does, one transaction per move: it appends a move to
# one of the games already there (round robin, through the store's version-guarded UPDATE) and opens a
# new game "wNNNNNNNN" holding that move. A consistent snapshot after n commits therefore holds the new
# games w0..w(n-1) with no gap, and exactly n more moves in the older games.
WRITER = r"""
import os, sqlite3, sys, time
sys.path.insert(0, sys.argv[4])
from tengen_app import store as S
db, stop = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(db, timeout=30, isolation_level=None)
conn.execute("PRAGMA busy_timeout=30000")
ids = [row[0] for row in conn.execute("SELECT id FROM games WHERE id NOT LIKE 'w%' ORDER BY id")]
insert = f"INSERT INTO games ({S.COLUMNS}) VALUES ({S.PLACEHOLDERS})"
n = 0
while not os.path.exists(stop):
    conn.execute("BEGIN IMMEDIATE")
    row = conn.execute(f"SELECT {S.COLUMNS} FROM games WHERE id = ?", (ids[n % len(ids)],)).fetchone()
    record = S.GameRecord.from_row(row)
    record.moves.append(["B" if len(record.moves) % 2 == 0 else "W", "D4"])
    assert conn.execute(S.UPDATE_SQL, S._update_args(record)).rowcount == 1
    now = time.time()
    new = S.GameRecord(f"w{n:08d}", 9, 7.5, "human", None, "b", "w", [["B", "E5"]], None, 1, now, now)
    conn.execute(insert, S._row(new))
    conn.execute("COMMIT")
    n += 1
print(n)
"""


def snapshot_commits(db: Path | str, base_moves: int) -> int:
    """How many of the writer's commits a database holds, checking that they form one consistent
    prefix: no gap in the new games, and as many moves added to the older games as new games."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        # one statement: one read transaction, whatever the journal mode
        count, high, older = conn.execute(
            "SELECT (SELECT count(*) FROM games WHERE id LIKE 'w%'),"
            " (SELECT max(id) FROM games WHERE id LIKE 'w%'),"
            " (SELECT sum(json_array_length(moves)) FROM games WHERE id NOT LIKE 'w%')"
        ).fetchone()
    finally:
        conn.close()
    assert high is None or int(high[1:]) == count - 1, f"a gap in the writer's games ({count} up to {high})"
    assert older - base_moves == count, f"{older - base_moves} moves added to older games, {count} new games"
    return count
