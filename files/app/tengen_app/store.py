"""Game storage: SQLite in WAL mode by default, PostgreSQL when DATABASE_URL is set.

Both speak the same small SQL. Every write is guarded by the game's version (the move count
it was read at), so two replicas racing on one game cannot both write: the loser re-reads.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Schema migrations, applied in order; schema_version records how far a database has come.
MIGRATIONS: list[str] = [
    """CREATE TABLE games (
        id TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        komi REAL NOT NULL,
        opponent TEXT NOT NULL,
        ai_color TEXT,
        black_token TEXT,
        white_token TEXT,
        moves TEXT NOT NULL,
        result TEXT,
        version INTEGER NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX games_updated_at ON games (updated_at)",
    # The AI's strength (a name of tengen_app.engine.LEVELS; NULL: a game between players).
    "ALTER TABLE games ADD COLUMN level TEXT",
    # Whether the engine's evaluation (the analysis bar) is asked after each move: 1 or 0.
    "ALTER TABLE games ADD COLUMN analysis INTEGER NOT NULL DEFAULT 0",
    # The engine's last evaluation of the position at the game's version (JSON), NULL until it answers.
    "ALTER TABLE games ADD COLUMN evaluation TEXT",
    # The dead stones of a game ended by two passes (a JSON list of vertices), NULL until judged.
    "ALTER TABLE games ADD COLUMN dead TEXT",
    # The colours whose player accepted the judged result (a JSON list), NULL while none did.
    "ALTER TABLE games ADD COLUMN accepted TEXT",
]

COLUMNS = (
    "id, size, komi, opponent, ai_color, black_token, white_token, moves, result, version,"
    " created_at, updated_at, level, analysis, evaluation, dead, accepted"
)
PLACEHOLDERS = ", ".join("?" * len(COLUMNS.split(",")))


@dataclass
class GameRecord:
    id: str
    size: int
    komi: float
    opponent: str  # "ai" or "human"
    ai_color: str | None
    black_token: str | None
    white_token: str | None
    moves: list[list[str]]
    result: str | None
    version: int
    created_at: float
    updated_at: float
    level: str | None = None
    analysis: bool = False
    evaluation: dict | None = None  # {"version": n, "black_win_rate": ..., "black_score_lead": ...}
    dead: list[str] | None = None
    accepted: list[str] | None = None

    @classmethod
    def from_row(cls, row: Any) -> GameRecord:
        values = list(row)
        values[7] = json.loads(values[7])
        values[13] = bool(values[13])
        values[14] = json.loads(values[14]) if values[14] is not None else None
        values[15] = json.loads(values[15]) if values[15] is not None else None
        values[16] = json.loads(values[16]) if values[16] is not None else None
        return cls(*values)


class Conflict(Exception):
    """The game changed since it was read."""


class StorageFull(Exception):
    """The database's file system has no room left: nothing was written, and the same write
    goes through again once space is freed."""


class ReadOnly(Exception):
    """The database refuses writes on purpose (a rollback to the VM is copying it): nothing was
    written, and the service reads on."""


# How SQLite syncs the WAL: FULL (the default) at every commit, so an acknowledged move survives
# a power loss; NORMAL only at checkpoints (a crash of the process loses nothing, a power loss
# the last commits). See the README's Durability.
SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")


class Store:
    """The interface both backends implement."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def migrate(self) -> int: ...
    async def ping(self) -> None: ...
    async def create(self, game: GameRecord) -> None: ...
    async def get(self, game_id: str) -> GameRecord | None: ...
    async def update(self, game: GameRecord) -> None: ...
    async def delete_expired(self, finished_before: float | None, abandoned_before: float | None) -> int: ...

    async def evaluate(self, game_id: str, version: int, evaluation: dict) -> bool:
        """Keep the engine's evaluation of the game at `version`, without changing the version
        (it is no move); False when the game has moved on."""
        raise NotImplementedError

    async def probe_write(self) -> None:
        """Commit a write that changes nothing: StorageFull when there is no room for one."""


class SqliteStore(Store):
    """One connection used from a worker thread at a time; WAL lets readers go on during a write."""

    def __init__(self, path: str, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in SYNCHRONOUS:
            raise ValueError(
                f"TENGEN_SQLITE_SYNCHRONOUS must be one of {', '.join(SYNCHRONOUS)} (got {synchronous!r})"
            )
        self.path = path
        self.synchronous = synchronous.upper()
        self.conn: sqlite3.Connection | None = None
        self.lock = asyncio.Lock()

    async def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={self.synchronous}")
        self.conn.execute("PRAGMA busy_timeout=10000")

    async def close(self) -> None:
        if self.conn is not None:
            async with self.lock:
                self.conn.close()
                self.conn = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        async with self.lock:
            return await asyncio.to_thread(fn, *args)

    def _write(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        assert self.conn is not None
        try:
            return self.conn.execute(sql, args)
        except sqlite3.OperationalError as exc:
            # SQLITE_FULL: the WAL could not grow (ENOSPC). SQLite rolled the statement back.
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_FULL:
                raise
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise StorageFull(str(exc)) from None

    def _migrate(self) -> int:
        assert self.conn is not None
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            current = row[0] or 0
            for number, sql in enumerate(MIGRATIONS[current:], start=current + 1):
                conn.execute(sql)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return len(MIGRATIONS) - current

    async def migrate(self) -> int:
        return await self._run(self._migrate)

    async def ping(self) -> None:
        assert self.conn is not None
        # schema_version has a row per migration: constant time, however many games there are.
        await self._run(lambda: self.conn.execute(PING_SQL).fetchone())

    async def create(self, game: GameRecord) -> None:
        assert self.conn is not None
        await self._run(self._write, f"INSERT INTO games ({COLUMNS}) VALUES ({PLACEHOLDERS})", _row(game))

    async def get(self, game_id: str) -> GameRecord | None:
        assert self.conn is not None
        row = await self._run(
            lambda: self.conn.execute(f"SELECT {COLUMNS} FROM games WHERE id = ?", (game_id,)).fetchone()
        )
        return GameRecord.from_row(row) if row else None

    async def update(self, game: GameRecord) -> None:
        assert self.conn is not None
        cursor = await self._run(self._write, UPDATE_SQL, _update_args(game))
        if cursor.rowcount != 1:
            raise Conflict(game.id)
        game.version += 1

    async def evaluate(self, game_id: str, version: int, evaluation: dict) -> bool:
        assert self.conn is not None
        cursor = await self._run(self._write, EVALUATE_SQL, (json.dumps(evaluation), game_id, version))
        return cursor.rowcount == 1

    async def probe_write(self) -> None:
        # Rewriting the header's user_version (unused here) with its own value commits one page.
        def probe() -> None:
            assert self.conn is not None
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            self._write(f"PRAGMA user_version={int(version)}")

        await self._run(probe)

    async def delete_expired(self, finished_before: float | None, abandoned_before: float | None) -> int:
        assert self.conn is not None
        deleted = 0
        for sql, cutoff in zip(EXPIRE_SQL, (finished_before, abandoned_before), strict=True):
            if cutoff is not None:
                deleted += (await self._run(self._write, sql, (cutoff,))).rowcount
        return deleted


class PostgresStore(Store):
    """psycopg's async connection; one connection, serialised, is plenty for a backend replica here."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None
        self.lock = asyncio.Lock()

    async def open(self) -> None:
        import psycopg

        self.conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    async def _execute(self, sql: str, args: tuple = ()) -> Any:
        import psycopg.errors

        async with self.lock:
            for attempt in (1, 2):
                if self.conn is None or self.conn.closed:
                    await self.open()
                try:
                    return await self.conn.execute(sql.replace("?", "%s"), args)
                except psycopg.errors.ReadOnlySqlTransaction as exc:
                    raise ReadOnly(str(exc)) from None
                except psycopg.errors.AdminShutdown:
                    # The server ended this idle session (the database was made read-only, or it
                    # restarted): the statement never ran, so it is sent once more on a new one.
                    await self.close()
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    async def migrate(self) -> int:
        async with self.lock:
            # An advisory lock keeps two replicas from migrating at the same time.
            async with self.conn.transaction():
                await self.conn.execute("SELECT pg_advisory_xact_lock(31337)")
                # Nothing is written when the schema is up to date, so that a replica also starts
                # on a database made read-only (a rollback to the VM is copying it).
                found = await (await self.conn.execute("SELECT to_regclass('schema_version')")).fetchone()
                current = 0
                if found[0] is not None:
                    row = await (
                        await self.conn.execute("SELECT max(version) FROM schema_version")
                    ).fetchone()
                    current = row[0] or 0
                else:
                    await self.conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                for number, sql in enumerate(MIGRATIONS[current:], start=current + 1):
                    await self.conn.execute(sql)
                    await self.conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
        return len(MIGRATIONS) - current

    async def ping(self) -> None:
        await self._execute(PING_SQL)

    async def create(self, game: GameRecord) -> None:
        await self._execute(f"INSERT INTO games ({COLUMNS}) VALUES ({PLACEHOLDERS})", _row(game))

    async def get(self, game_id: str) -> GameRecord | None:
        # psycopg's client-side cursor holds the whole result once execute returns.
        cursor = await self._execute(f"SELECT {COLUMNS} FROM games WHERE id = ?", (game_id,))
        row = await cursor.fetchone()
        return GameRecord.from_row(row) if row else None

    async def update(self, game: GameRecord) -> None:
        cursor = await self._execute(UPDATE_SQL, _update_args(game))
        if cursor.rowcount != 1:
            raise Conflict(game.id)
        game.version += 1

    async def evaluate(self, game_id: str, version: int, evaluation: dict) -> bool:
        cursor = await self._execute(EVALUATE_SQL, (json.dumps(evaluation), game_id, version))
        return cursor.rowcount == 1

    async def delete_expired(self, finished_before: float | None, abandoned_before: float | None) -> int:
        deleted = 0
        for sql, cutoff in zip(EXPIRE_SQL, (finished_before, abandoned_before), strict=True):
            if cutoff is not None:
                deleted += (await self._execute(sql, (cutoff,))).rowcount
        return deleted


PING_SQL = "SELECT max(version) FROM schema_version"
# Finished games and unfinished (abandoned) ones, by the time of their last move.
EXPIRE_SQL = (
    "DELETE FROM games WHERE result IS NOT NULL AND updated_at < ?",
    "DELETE FROM games WHERE result IS NULL AND updated_at < ?",
)

UPDATE_SQL = (
    "UPDATE games SET moves = ?, result = ?, analysis = ?, evaluation = ?, dead = ?, accepted = ?,"
    " version = version + 1, updated_at = ? WHERE id = ? AND version = ?"
)
EVALUATE_SQL = "UPDATE games SET evaluation = ? WHERE id = ? AND version = ?"


def _row(game: GameRecord) -> tuple:
    return (
        game.id,
        game.size,
        game.komi,
        game.opponent,
        game.ai_color,
        game.black_token,
        game.white_token,
        json.dumps(game.moves),
        game.result,
        game.version,
        game.created_at,
        game.updated_at,
        game.level,
        1 if game.analysis else 0,
        _json_or_null(game.evaluation),
        _json_or_null(game.dead),
        _json_or_null(game.accepted),
    )


def _json_or_null(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _update_args(game: GameRecord) -> tuple:
    game.updated_at = time.time()
    return (
        json.dumps(game.moves),
        game.result,
        1 if game.analysis else 0,
        _json_or_null(game.evaluation),
        _json_or_null(game.dead),
        _json_or_null(game.accepted),
        game.updated_at,
        game.id,
        game.version,
    )


def make_store(database_url: str | None, db_path: str, sqlite_synchronous: str = "FULL") -> Store:
    if database_url:
        if not database_url.startswith(("postgres://", "postgresql://")):
            raise ValueError("DATABASE_URL must be a postgresql:// URL")
        return PostgresStore(database_url)
    return SqliteStore(db_path, sqlite_synchronous)
