"""Move the backend's data from a verified SQLite backup into PostgreSQL, and prove the copy.

Used by the module ``tengen.ops.sqlite_to_postgres`` and by ``benchmarks/migrate.py``.

The target's schema is never written here: it comes from the backend's own migrations
(``tengen_app.store``), imported from the backend's code (``load_backend``) and applied by the
backend's own ``PostgresStore.migrate()``, so the tables are exactly those the backend creates and
expects, and a new migration in the backend needs no change here. The scratch copy of the backup is
brought to the same version by the backend's ``SqliteStore.migrate()``, as the backend would at start.

Each value is converted to the Python type of its PostgreSQL column (as PostgreSQL reports it), not
guessed from SQLite's loose storage classes: integers stored as text, 0/1 booleans, ISO or epoch
timestamps, JSON text. Rows go in with COPY, in batches, inside one transaction that also empties
the tables first (``replace``) and resets the sequences; the transaction commits only after the
verification passed, so a failed run leaves the target as it was.

Verification: per table, the row count and a checksum computed by the same function on both sides
over a canonical rendering of each row's typed values. The checksum is the sum modulo 2**256 of the
rows' sha256 digests, so neither side needs to sort the rows (and no collation can differ).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import hashlib
import importlib
import json
import re
import sqlite3
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

MASK = "********"
VERSION_TABLE = "schema_version"
INTEGER_LIMITS = {"smallint": 1 << 15, "integer": 1 << 31, "bigint": 1 << 63}
INTEGER_TYPES = set(INTEGER_LIMITS)
FLOAT_TYPES = {"real", "double precision"}
TIMESTAMP_TYPES = {"timestamp with time zone", "timestamp without time zone"}
INT_TEXT = re.compile(r"^\s*[+-]?\d+\s*$")
TRUE_TEXT = {"1", "t", "true", "y", "yes", "on"}
FALSE_TEXT = {"0", "f", "false", "n", "no", "off"}
MOD = 1 << 256

ProgressFn = Callable[[str], None]


class MigrationError(Exception):
    """A step failed or a check refused; the message says which and why (never with the password)."""


class VerificationFailed(MigrationError):
    """The target's counts or checksums differ from the source; ``tables`` names the tables."""

    def __init__(self, message: str, tables: list[str]) -> None:
        super().__init__(message)
        self.tables = tables


# --------------------------------------------------------------------------- the URL


def url_password(url: str) -> str | None:
    parsed = urllib.parse.urlsplit(url)
    if parsed.password:
        return urllib.parse.unquote(parsed.password)
    for key, value in urllib.parse.parse_qsl(parsed.query):
        if key == "password":
            return value
    return None


def mask_url(url: str) -> str:
    """The URL with its password replaced, fit for messages and results."""
    parsed = urllib.parse.urlsplit(url)
    netloc = parsed.netloc
    if parsed.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{hostport}"
    query = urllib.parse.urlencode(
        [(k, MASK if k == "password" else v) for k, v in urllib.parse.parse_qsl(parsed.query)], safe=":*"
    )
    return urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path, query, parsed.fragment))


def scrub(text: str, url: str) -> str:
    """Remove the URL's password from any text (an error message that might quote it)."""
    password = url_password(url)
    if password:
        text = text.replace(password, MASK).replace(urllib.parse.quote(password, safe=""), MASK)
    return text


def check_url(url: str) -> None:
    if not url.startswith(("postgresql://", "postgres://")):
        raise MigrationError("database_url must be a postgresql:// URL")


# --------------------------------------------------------------------------- the backend's code


def load_backend(backend_path: str | None) -> Any:
    """The backend's ``tengen_app.store`` module: from ``backend_path`` (the directory holding the
    ``tengen_app`` package: ``files/app`` in the repository, ``/opt/tengen`` in the backend image),
    or from the Python path when unset."""
    if backend_path:
        import os

        if not os.path.isfile(os.path.join(backend_path, "tengen_app", "store.py")):
            raise MigrationError(f"backend_path: {backend_path} holds no tengen_app/store.py")
        if backend_path not in sys.path:
            sys.path.insert(0, backend_path)
    try:
        store = importlib.import_module("tengen_app.store")
    except ImportError as exc:
        raise MigrationError(f"the backend's code (tengen_app.store) cannot be imported: {exc}") from exc
    for name in ("MIGRATIONS", "PostgresStore", "SqliteStore"):
        if not hasattr(store, name):
            raise MigrationError(f"{store.__file__} has no {name}: not the backend's store module")
    return store


def sqlite_schema_version(conn: sqlite3.Connection) -> int:
    has = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
    ).fetchone()[0]
    if not has:
        raise MigrationError(f"the backup has no {VERSION_TABLE} table: it is not the backend's database")
    return conn.execute(f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}").fetchone()[0]


def _migrate(db: Any) -> int:
    """Run one of the backend's stores' own migrate() on its database; the number of steps applied."""

    async def run() -> int:
        await db.open()
        try:
            return await db.migrate()
        finally:
            await db.close()

    return asyncio.run(run())


def upgrade_sqlite(store: Any, path: str) -> int:
    """Bring a scratch copy to the backend's latest schema with the backend's own SQLite migration."""
    return _migrate(store.SqliteStore(path))


def migrate_postgres(store: Any, url: str) -> int:
    """Create or upgrade the target's schema with the backend's own PostgreSQL migration."""
    return _migrate(store.PostgresStore(url))


# --------------------------------------------------------------------------- tables and types


@dataclass
class Column:
    name: str
    data_type: str  # information_schema.columns.data_type: "integer", "double precision", "jsonb", ...
    nullable: bool
    default: str | None = None


@dataclass
class Table:
    name: str
    columns: list[Column]
    sequences: list[tuple[str, str]] = field(default_factory=list)  # (column, sequence)

    @property
    def column_list(self) -> str:
        return ", ".join(quote(c.name) for c in self.columns)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]


def postgres_tables(pg: Any, names: Iterable[str]) -> dict[str, Table]:
    """The columns of ``names`` in the target's current schema, as PostgreSQL declares them."""
    tables: dict[str, Table] = {}
    for name in names:
        rows = pg.execute(
            "SELECT column_name, data_type, is_nullable = 'YES', column_default"
            " FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s"
            " ORDER BY ordinal_position",
            (name,),
        ).fetchall()
        if not rows:
            continue
        table = Table(name, [Column(*row) for row in rows])
        for column in table.columns:
            seq = pg.execute("SELECT pg_get_serial_sequence(%s, %s)", (quote(name), column.name)).fetchone()[
                0
            ]
            if seq:
                table.sequences.append((column.name, seq))
        tables[name] = table
    return tables


def _bad(value: Any, what: str) -> MigrationError:
    shown = repr(value)
    return MigrationError(f"{shown[:60]} is not {what}")


def convert(value: Any, column: Column) -> Any:
    """A SQLite value as the Python value of its PostgreSQL column's type; MigrationError if it has none."""
    if value is None:
        return None
    kind = column.data_type
    if kind in INTEGER_TYPES:
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and INT_TEXT.match(value):
            number = int(value)
        else:
            raise _bad(value, "an integer")
        # SQLite's integers are 64-bit whatever the declared type; PostgreSQL's integer is 32-bit.
        if not -INTEGER_LIMITS[kind] <= number < INTEGER_LIMITS[kind]:
            raise _bad(value, f"in the range of PostgreSQL's {kind}")
        return number
    if kind in FLOAT_TYPES:
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise _bad(value, "a number") from None
        raise _bad(value, "a number")
    if kind == "numeric":
        try:
            return decimal.Decimal(str(value).strip())
        except decimal.InvalidOperation:
            raise _bad(value, "a number") from None
    if kind == "boolean":
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in TRUE_TEXT | FALSE_TEXT:
            return value.strip().lower() in TRUE_TEXT
        raise _bad(value, "a boolean (0/1, true/false)")
    if kind in TIMESTAMP_TYPES:
        moment = _timestamp(value)
        if kind == "timestamp without time zone":
            return moment.astimezone(dt.UTC).replace(tzinfo=None)
        return moment
    if kind == "date":
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip()[:10])
            except ValueError:
                raise _bad(value, "an ISO date") from None
        return _timestamp(value).date()
    if kind in ("json", "jsonb"):
        text = value.decode() if isinstance(value, bytes) else value if isinstance(value, str) else None
        if text is None:
            text = json.dumps(value)
        try:
            json.loads(text)
        except ValueError:
            raise _bad(value, "JSON") from None
        if kind == "jsonb" and "\\u0000" in text:
            raise _bad(value, "JSON PostgreSQL can store (\\u0000)")
        return text
    if kind == "bytea":
        return value if isinstance(value, bytes) else str(value).encode()
    # text, character varying, character and anything else PostgreSQL parses from text
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            raise _bad(value, "UTF-8 text") from None
    if isinstance(value, float):
        value = repr(value)
    text = str(value)
    if "\x00" in text:
        raise _bad(value, "text PostgreSQL can store (NUL character)")
    return text


def _timestamp(value: Any) -> dt.datetime:
    """ISO text (with or without a zone, which then means UTC) or seconds since the epoch."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if isinstance(value, str):
        text = value.strip()
        try:
            return dt.datetime.fromtimestamp(float(text), dt.UTC)
        except ValueError:
            pass
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise _bad(value, "an ISO or epoch timestamp") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    raise _bad(value, "an ISO or epoch timestamp")


# --------------------------------------------------------------------------- canonical rendering


def _canonical_json(value: Any) -> str:
    return json.dumps(json.loads(value), sort_keys=True, separators=(",", ":"))


def _canonical_timestamp(value: Any) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.isoformat()


# Columns whose values need a canonical form beyond repr(): JSON (jsonb keeps neither spacing nor key
# order), timestamps (whatever zone the session reports them in), numbers of arbitrary precision, bytes.
_CANONICAL: dict[str, Callable[[Any], Any]] = {
    "json": _canonical_json,
    "jsonb": _canonical_json,
    "timestamp with time zone": _canonical_timestamp,
    "timestamp without time zone": _canonical_timestamp,
    "date": lambda value: value.isoformat(),
    "numeric": lambda value: str(decimal.Decimal(value).normalize()),
    "bytea": lambda value: bytes(value).hex(),
}


def row_renderer(columns: list[Column]) -> Callable[[Iterable[Any]], bytes]:
    """A function rendering one row's typed values as bytes, the same for both sides.

    repr() of the tuple: exact for floats (shortest round-trip digits), quoted and escaped for text,
    so NULL (None) and the text 'None' differ and no text can forge a field boundary. Each column
    has one type on both sides, so the values to compare are always of the same Python types.
    """
    special = [(i, _CANONICAL[c.data_type]) for i, c in enumerate(columns) if c.data_type in _CANONICAL]
    width = len(columns)

    def render(values: Iterable[Any]) -> bytes:
        row = list(values)
        if len(row) != width:
            raise MigrationError(f"a row of {len(row)} values for {width} columns")
        for index, canonical in special:
            if row[index] is not None:
                row[index] = canonical(row[index])
        return repr(tuple(row)).encode("utf-8", "surrogatepass")

    return render


def render_row(values: Iterable[Any], columns: list[Column]) -> bytes:
    return row_renderer(columns)(values)


class Checksum:
    """Order-independent: the sum of the rows' sha256 digests modulo 2**256, and the count."""

    def __init__(self) -> None:
        self.total = 0
        self.rows = 0

    def add(self, row: bytes) -> None:
        self.total = (self.total + int.from_bytes(hashlib.sha256(row).digest(), "big")) % MOD
        self.rows += 1

    def result(self) -> dict[str, Any]:
        return {"rows": self.rows, "checksum": f"{self.total:064x}"}


# Column types whose SQLite values need no conversion when they already are of this Python type.
_READY: dict[str, type] = {
    "text": str,
    "character varying": str,
    "double precision": float,
    "real": float,
}


def sqlite_rows(conn: sqlite3.Connection, table: Table) -> Iterator[tuple]:
    """Rows of a source table in the target's column order, converted to the target's types."""
    cursor = conn.execute(f"SELECT rowid, {table.column_list} FROM {quote(table.name)}")
    columns = table.columns
    ready_types = [_READY.get(c.data_type) for c in columns]
    while True:
        batch = cursor.fetchmany(2000)
        if not batch:
            return
        for row in batch:
            out = []
            for value, column, ready in zip(row[1:], columns, ready_types, strict=True):
                # The common case, a value already of its column's Python type, skips convert().
                if value is None or (type(value) is ready and (ready is not str or "\x00" not in value)):
                    out.append(value)
                    continue
                try:
                    out.append(convert(value, column))
                except MigrationError as exc:
                    raise MigrationError(f"{table.name}.{column.name} (rowid {row[0]}): {exc}") from None
            yield tuple(out)


def sqlite_checksum(conn: sqlite3.Connection, table: Table) -> dict[str, Any]:
    checksum = Checksum()
    render = row_renderer(table.columns)
    for row in sqlite_rows(conn, table):
        checksum.add(render(row))
    return checksum.result()


def postgres_checksum(pg: Any, table: Table) -> dict[str, Any]:
    checksum = Checksum()
    # JSON comes back as its text (jsonb's normalised form): a parsed JSON null would look like NULL.
    select = ", ".join(quote(c.name) + ("::text" if _is_json(c) else "") for c in table.columns)
    statement = f"COPY (SELECT {select} FROM {quote(table.name)}) TO STDOUT (FORMAT BINARY)"
    with pg.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(["text" if _is_json(c) else _pg_type(c) for c in table.columns])
        render = row_renderer(table.columns)
        for row in copy.rows():
            checksum.add(render(row))
    return checksum.result()


def _is_json(column: Column) -> bool:
    return column.data_type in ("json", "jsonb")


def _pg_type(column: Column) -> str:
    return {
        "smallint": "int2",
        "integer": "int4",
        "bigint": "int8",
        "real": "float4",
        "double precision": "float8",
        "boolean": "bool",
        "timestamp with time zone": "timestamptz",
        "timestamp without time zone": "timestamp",
        "character varying": "varchar",
        "character": "bpchar",
    }.get(column.data_type, column.data_type)


def compare(source: dict[str, dict[str, Any]], target: dict[str, dict[str, Any]]) -> list[str]:
    """Names of the tables whose count or checksum differs (or that one side lacks)."""
    return sorted(name for name in set(source) | set(target) if source.get(name) != target.get(name))


# --------------------------------------------------------------------------- the target


def connect(url: str, timeout: int = 10) -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the host
        raise MigrationError(
            "psycopg 3 is needed on the host running this (Debian: python3-psycopg)"
        ) from exc
    try:
        # autocommit: each check is its own statement; the copy opens one explicit transaction.
        return psycopg.connect(url, connect_timeout=timeout, autocommit=True)
    except psycopg.Error as exc:
        raise MigrationError(f"cannot connect to {mask_url(url)}: {scrub(str(exc).strip(), url)}") from None


def inspect_target(pg: Any, table_names: Iterable[str]) -> dict[str, Any]:
    """Whether the target can be written and which of the backend's tables already hold rows."""
    recovery, read_only, schema, can_create = pg.execute(
        "SELECT pg_is_in_recovery(), current_setting('transaction_read_only'), current_schema(),"
        " has_schema_privilege(current_schema(), 'CREATE')"
    ).fetchone()
    pg.rollback()
    if recovery:
        raise MigrationError("the target is a read-only standby (in recovery)")
    if read_only == "on":
        raise MigrationError("the target is read-only (transaction_read_only is on)")
    if schema is None:
        raise MigrationError("the target has no schema on its search_path to create the tables in")
    rows: dict[str, int] = {}
    for name in table_names:
        exists = pg.execute("SELECT to_regclass(%s)", (quote(name),)).fetchone()[0]
        if exists is None:
            if not can_create:
                raise MigrationError(f"the target's user may not create tables in schema {schema}")
            continue
        # One privilege per call: with several, has_table_privilege is true when any one is held.
        for privilege in ("SELECT", "INSERT", "TRUNCATE"):
            if not pg.execute("SELECT has_table_privilege(%s, %s)", (quote(name), privilege)).fetchone()[0]:
                raise MigrationError(f"the target's user lacks the {privilege} privilege on table {name}")
        rows[name] = pg.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0]
    pg.rollback()
    return {"schema": schema, "rows": rows}


def copy_table(
    sqlite_conn: sqlite3.Connection,
    pg: Any,
    table: Table,
    total: int,
    batch_rows: int,
    progress: ProgressFn,
) -> dict[str, Any]:
    """COPY a table in batches of ``batch_rows`` rows (one COPY statement each). The source's checksum
    is taken on the way, over the very values sent, so the source is read once."""
    started = time.monotonic()
    checksum = Checksum()
    render = row_renderer(table.columns)
    done = 0
    last_report = started
    rows = sqlite_rows(sqlite_conn, table)
    statement = f"COPY {quote(table.name)} ({table.column_list}) FROM STDIN"
    with pg.cursor() as cur:
        while True:
            batch = 0
            with cur.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
                    checksum.add(render(row))
                    batch += 1
                    if batch >= batch_rows:
                        break
            done += batch
            now = time.monotonic()
            if batch < batch_rows or now - last_report >= 2:
                last_report = now
                rate = done / max(now - started, 1e-9)
                share = f"{100 * done / total:.0f}%" if total else "100%"
                progress(f"{table.name}: {done}/{total} rows ({share}), {rate:.0f} rows/s")
            if batch < batch_rows:
                break
    seconds = time.monotonic() - started
    return {
        "rows": done,
        "seconds": round(seconds, 3),
        "rows_per_second": round(done / max(seconds, 1e-9)),
        "source": checksum.result(),
    }


def reset_sequences(pg: Any, table: Table) -> dict[str, int]:
    """Each serial/identity sequence continues after the largest copied value."""
    out = {}
    for column, sequence in table.sequences:
        value = pg.execute(
            f"SELECT setval(%s, coalesce(max({quote(column)}), 0) + 1, false) FROM {quote(table.name)}",
            (sequence,),
        ).fetchone()[0]
        out[sequence] = value
    return out


# --------------------------------------------------------------------------- the whole move


@dataclass
class Plan:
    """What a migration will do, known before any change."""

    target: str  # masked URL
    schema_version: int  # of the backup
    backend_version: int  # the backend's latest migration
    tables: dict[str, int]  # rows to copy per table
    target_rows: dict[str, int]  # rows the backend's tables hold in the target now
    replace: bool

    @property
    def busy(self) -> dict[str, int]:
        """The backend's data tables that already hold rows in the target (schema_version aside:
        a backend that started against the target has filled it)."""
        return {n: c for n, c in self.target_rows.items() if c and n != VERSION_TABLE}

    def refusal(self) -> str:
        tables = ", ".join(f"{n}: {c} rows" for n, c in self.busy.items())
        return (
            f"the target {self.target} is not empty ({tables}) and differs from the backup;"
            " nothing changed. Set replace: true to empty and reload those tables"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "schema_version": self.schema_version,
            "backend_version": self.backend_version,
            "tables": self.tables,
            "target_rows": self.target_rows,
            "replace": self.replace,
        }


def plan(store: Any, sqlite_path: str, url: str, replace: bool) -> Plan:
    """Every check that needs no change: schema version, target reachable and writable, its rows."""
    check_url(url)
    known = len(store.MIGRATIONS)
    conn = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        version = sqlite_schema_version(conn)
        if version > known:
            raise MigrationError(
                f"the backup's schema version {version} is newer than the backend's migrations "
                f"(1..{known}): migrate with the backend code that wrote it"
            )
        names = sqlite_tables(conn)
        counts = {n: conn.execute(f"SELECT count(*) FROM {quote(n)}").fetchone()[0] for n in names}
    finally:
        conn.close()
    pg = connect(url)
    try:
        target = inspect_target(pg, names)
        if VERSION_TABLE in target["rows"]:
            at = pg.execute(f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}").fetchone()[0]
            if at > known:
                raise MigrationError(
                    f"the target's schema version {at} is newer than the backend's migrations (1..{known})"
                )
    finally:
        pg.close()
    return Plan(mask_url(url), version, known, counts, target["rows"], replace)


def migrate(
    store: Any,
    sqlite_path: str,
    url: str,
    *,
    replace: bool = False,
    batch_rows: int = 5000,
    progress: ProgressFn = lambda line: None,
) -> dict[str, Any]:
    """Copy a verified SQLite database (a scratch copy: it may be upgraded in place) into ``url``."""
    the_plan = plan(store, sqlite_path, url, replace)
    if the_plan.busy and not replace:
        raise MigrationError(the_plan.refusal())
    upgraded = 0
    if the_plan.schema_version < the_plan.backend_version:
        upgraded = upgrade_sqlite(store, sqlite_path)
        progress(f"scratch copy upgraded by {upgraded} migration(s) to version {the_plan.backend_version}")
    try:
        applied = migrate_postgres(store, url)
    except Exception as exc:
        raise MigrationError(
            f"the backend's migration of {mask_url(url)} failed: {scrub(str(exc), url)}"
        ) from None
    progress(f"target schema at version {the_plan.backend_version} ({applied} migration(s) applied)")

    started = time.monotonic()
    conn = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    pg = connect(url)
    try:
        names = sqlite_tables(conn)
        tables = postgres_tables(pg, names)
        missing = [n for n in names if n not in tables]
        if missing:
            raise MigrationError(
                f"the backend's migrations create no table {', '.join(missing)} in the target"
            )
        counts = {n: conn.execute(f"SELECT count(*) FROM {quote(n)}").fetchone()[0] for n in names}
        for name in names:
            extra = _column_mismatch(conn, tables[name])
            if extra:
                raise MigrationError(f"{name}: {extra}")
        # One transaction: emptying, copying, sequences and verification commit together or not at all.
        with pg.transaction():
            pg.execute("SET LOCAL synchronous_commit = off")
            data = [n for n in names if n != VERSION_TABLE]
            if replace and data:
                pg.execute("TRUNCATE " + ", ".join(quote(n) for n in data))
            copied: dict[str, Any] = {}
            sequences: dict[str, int] = {}
            for name in data:
                progress(f"{name}: copying {counts[name]} rows")
                copied[name] = copy_table(conn, pg, tables[name], counts[name], batch_rows, progress)
                sequences.update(reset_sequences(pg, tables[name]))
            progress("verifying counts and checksums")
            source = {n: copied[n].pop("source") for n in data}
            source.update({n: sqlite_checksum(conn, tables[n]) for n in names if n not in source})
            target = {n: postgres_checksum(pg, tables[n]) for n in names}
            verification = {"source": source, "target": target, "mismatched": compare(source, target)}
            if verification["mismatched"]:
                raise VerificationFailed(
                    "verification failed, nothing committed: " + describe_mismatch(verification),
                    verification["mismatched"],
                )
        seconds = time.monotonic() - started
        rows = sum(c["rows"] for c in copied.values())
        progress(f"done: {rows} rows in {seconds:.1f} s, {rows / max(seconds, 1e-9):.0f} rows/s")
    except MigrationError:
        raise
    except Exception as exc:
        raise MigrationError(
            f"copy into {mask_url(url)} failed, nothing committed: {scrub(str(exc), url)}"
        ) from None
    finally:
        conn.close()
        pg.close()
    return {
        "plan": the_plan.as_dict(),
        "upgraded_source_by": upgraded,
        "applied_migrations": applied,
        "tables": copied,
        "sequences": sequences,
        "verification": verification,
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / max(seconds, 1e-9)),
    }


def _column_mismatch(conn: sqlite3.Connection, table: Table) -> str | None:
    source = [row[1] for row in conn.execute(f"PRAGMA table_info({quote(table.name)})")]
    target = [c.name for c in table.columns]
    if set(source) != set(target):
        return f"columns differ: backup {source}, target {target}"
    return None


def verify_tables(conn: sqlite3.Connection, pg: Any, tables: list[Table]) -> dict[str, Any]:
    source = {t.name: sqlite_checksum(conn, t) for t in tables}
    target = {t.name: postgres_checksum(pg, t) for t in tables}
    return {"source": source, "target": target, "mismatched": compare(source, target)}


def verify(sqlite_path: str, url: str) -> dict[str, Any]:
    """Compare a SQLite database with the PostgreSQL tables of the same names; changes nothing."""
    check_url(url)
    conn = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    pg = connect(url)
    try:
        names = sqlite_tables(conn)
        tables = postgres_tables(pg, names)
        missing = [n for n in names if n not in tables]
        present = [tables[n] for n in names if n in tables]
        result = verify_tables(conn, pg, present)
        for name in missing:
            result["source"][name] = sqlite_checksum_plain(conn, name)
        result["mismatched"] = sorted(set(result["mismatched"]) | set(missing))
        pg.rollback()
        return result
    finally:
        conn.close()
        pg.close()


def sqlite_checksum_plain(conn: sqlite3.Connection, name: str) -> dict[str, Any]:
    """Count of a source table the target lacks (no types to convert to)."""
    return {"rows": conn.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0], "checksum": None}


def describe_mismatch(
    verification: dict[str, Any], source: str = "the backup", target: str = "the target"
) -> str:
    """One clause per mismatched table, naming it; ``source`` names the SQLite side."""
    parts = []
    for name in verification["mismatched"]:
        src = verification["source"].get(name) or {}
        dst = verification["target"].get(name) or {}
        if src.get("rows") != dst.get("rows"):
            parts.append(f"table {name}: {src.get('rows')} rows in {source}, {dst.get('rows')} in {target}")
        else:
            parts.append(f"table {name}: same row count ({src.get('rows')}) but the checksums differ")
    return "; ".join(parts)


# --------------------------------------------------------------------------- the way back


def _to_sqlite(value: Any) -> Any:
    """A PostgreSQL value as SQLite stores it; the forward conversion reads each one back unchanged."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def postgres_version(pg: Any, known: int) -> int:
    if pg.execute("SELECT to_regclass(%s)", (VERSION_TABLE,)).fetchone()[0] is None:
        raise MigrationError(f"the source has no {VERSION_TABLE} table: the backend never migrated it")
    version = pg.execute(f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}").fetchone()[0]
    if version != known:
        raise MigrationError(
            f"the source's schema version {version} is not the backend's latest ({known}):"
            " use the backend code that runs against it"
        )
    return version


def plan_export(store: Any, url: str, dest: str) -> dict[str, Any]:
    """Checks before any change: the source answers and is at the backend's schema version, the
    destination's directory is writable. Returns the rows per table to copy."""
    import os

    check_url(url)
    directory = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise MigrationError(f"dest: {directory} is not a writable directory")
    pg = connect(url)
    try:
        version = postgres_version(pg, len(store.MIGRATIONS))
        names = _backend_tables(store, directory)
        tables = postgres_tables(pg, names)
        missing = [n for n in names if n not in tables]
        if missing:
            raise MigrationError(f"the source lacks the backend's tables {', '.join(missing)}")
        counts = {n: pg.execute(f"SELECT count(*) FROM {quote(n)}").fetchone()[0] for n in names}
    finally:
        pg.close()
    return {"source": mask_url(url), "dest": dest, "schema_version": version, "tables": counts}


def _backend_tables(store: Any, directory: str) -> list[str]:
    """The tables the backend's SQLite migrations create, found by running them on a scratch file."""
    import os
    import tempfile

    fd, path = tempfile.mkstemp(prefix=".tmp-schema-", suffix=".db", dir=directory)
    os.close(fd)
    try:
        upgrade_sqlite(store, path)
        conn = sqlite3.connect(path)
        try:
            return sqlite_tables(conn)
        finally:
            conn.close()
    finally:
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(path + suffix)
            except FileNotFoundError:
                pass


def verify_export(dest: str, url: str) -> dict[str, Any]:
    """Compare an existing SQLite file with the PostgreSQL source (a snapshot of it); changes nothing."""
    return verify(dest, url)


def export(
    store: Any,
    url: str,
    dest: str,
    *,
    batch_rows: int = 5000,
    progress: ProgressFn = lambda line: None,
) -> dict[str, Any]:
    """Write the backend's data from PostgreSQL into a new SQLite file at ``dest`` (replaced atomically
    only once it is complete and verified), with the schema of the backend's own SQLite migrations."""
    import os
    import tempfile

    the_plan = plan_export(store, url, dest)
    directory = os.path.dirname(os.path.abspath(dest))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-export-", suffix=".db", dir=directory)
    os.close(fd)
    os.unlink(tmp)  # the backend's SqliteStore creates the file itself
    started = time.monotonic()
    pg = connect(url)
    try:
        upgrade_sqlite(store, tmp)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=DELETE")  # the file must stand alone, no WAL beside it
            conn.execute("PRAGMA synchronous=OFF")  # fsync once, at the end
            names = sqlite_tables(conn)
            # One snapshot of the source for the copy and its checksums.
            with pg.transaction():
                pg.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                tables = postgres_tables(pg, names)
                copied: dict[str, Any] = {}
                source: dict[str, Any] = {}
                conn.execute("BEGIN")
                conn.execute(f"DELETE FROM {VERSION_TABLE}")
                for name in names:
                    total = pg.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0]
                    progress(f"{name}: copying {total} rows")
                    copied[name] = _export_table(pg, conn, tables[name], total, batch_rows, progress)
                    source[name] = copied[name].pop("source")
                conn.execute("COMMIT")
            progress("verifying counts and checksums")
            target = {n: sqlite_checksum(conn, tables[n]) for n in names}
            verification = {"source": source, "target": target, "mismatched": compare(source, target)}
            if verification["mismatched"]:
                raise VerificationFailed(
                    f"verification failed, {dest} left alone: " + describe_mismatch(verification),
                    verification["mismatched"],
                )
            check = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise MigrationError(f"the new file failed integrity_check: {check}")
        finally:
            conn.close()
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except MigrationError:
        raise
    except Exception as exc:
        message = scrub(str(exc), url)
        raise MigrationError(f"export from {mask_url(url)} failed, {dest} left alone: {message}") from None
    finally:
        pg.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            try:
                os.unlink(tmp + suffix)
            except FileNotFoundError:
                pass
    seconds = time.monotonic() - started
    rows = sum(c["rows"] for n, c in copied.items() if n != VERSION_TABLE)
    progress(f"done: {rows} rows in {seconds:.1f} s, {rows / max(seconds, 1e-9):.0f} rows/s")
    return {
        "plan": the_plan,
        "tables": copied,
        "verification": verification,
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / max(seconds, 1e-9)),
    }


def _export_table(
    pg: Any, conn: sqlite3.Connection, table: Table, total: int, batch_rows: int, progress: ProgressFn
) -> dict[str, Any]:
    started = last_report = time.monotonic()
    checksum = Checksum()
    render = row_renderer(table.columns)
    select = ", ".join(quote(c.name) + ("::text" if _is_json(c) else "") for c in table.columns)
    marks = ", ".join("?" * len(table.columns))
    insert = f"INSERT INTO {quote(table.name)} ({table.column_list}) VALUES ({marks})"
    done = 0
    batch: list[tuple] = []
    with (
        pg.cursor() as cur,
        cur.copy(f"COPY (SELECT {select} FROM {quote(table.name)}) TO STDOUT (FORMAT BINARY)") as copy,
    ):
        copy.set_types(["text" if _is_json(c) else _pg_type(c) for c in table.columns])
        for row in copy.rows():
            checksum.add(render(row))
            batch.append(tuple(_to_sqlite(v) for v in row))
            if len(batch) >= batch_rows:
                conn.executemany(insert, batch)
                done += len(batch)
                batch = []
                now = time.monotonic()
                if now - last_report >= 2:
                    last_report = now
                    progress(f"{table.name}: {done}/{total} rows, {done / (now - started):.0f} rows/s")
    conn.executemany(insert, batch)
    done += len(batch)
    seconds = time.monotonic() - started
    progress(f"{table.name}: {done}/{total} rows (100%), {done / max(seconds, 1e-9):.0f} rows/s")
    return {
        "rows": done,
        "seconds": round(seconds, 3),
        "rows_per_second": round(done / max(seconds, 1e-9)),
        "source": checksum.result(),
    }
