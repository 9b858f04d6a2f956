#!/usr/bin/env python3
"""Rows per second moving the backend's SQLite database into PostgreSQL: ours against pgloader's.

    python benchmarks/migrate.py [--size-mb 1024] [--dir /var/tmp] [--batch-rows 5000]

1. Generates a database of about --size-mb with the backend's own migrations and realistic games
   (9x9, 13x13 and 19x19; against the AI or a human; new, in play, scored or resigned; move lists of
   the lengths such games reach), written in bulk.
2. Starts a throwaway PostgreSQL cluster (tests/service_servers.py) and runs the code of
   tengen.ops.sqlite_to_postgres on the file: the backend's migration, COPY, sequences and the
   verification (counts and checksums) in one transaction. Prints the copy's rows per second and the
   whole run's.
3. Runs Debian's pgloader (when installed) on the same file into a second database and prints its
   rows per second, then whether its result passes our verification (and the tables that do not)
   and how its schema differs from the backend's. When it fails with its defaults, it runs again
   with fewer rows prefetched (its heap is fixed), and says so.
4. Runs the steps of the cutover that refuse writes (the final backup, its verification, the move
   and its verification) on the same file and prints their time: the cutover's write downtime
   but for the copy of the backup to the controller and the switches around it.
A run that failed prints its error and no figure. Figures vary with the machine and its load; they
are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "collections")]

from ansible_collections.tengen.ops.plugins.module_utils import sqlite_backup as sb  # noqa: E402
from ansible_collections.tengen.ops.plugins.module_utils import sqlite_to_postgres as s2p  # noqa: E402

from tests.service_servers import APP_DIR, Postgres  # noqa: E402

STORE = s2p.load_backend(str(APP_DIR))
LETTERS = "ABCDEFGHJKLMNOPQRST"


def move_lists(rng: random.Random, count: int) -> list[tuple[int, str, str | None]]:
    """(size, moves JSON, result) of `count` plausible games, reused across rows to generate quickly."""
    games = []
    for _ in range(count):
        size = rng.choice((9, 9, 13, 19, 19, 19))
        length = rng.choice((0, rng.randint(1, 40), rng.randint(40, size * size), rng.randint(100, 320)))
        length = min(length, size * size)
        moves = [
            ["BW"[i % 2], f"{LETTERS[rng.randrange(size)]}{rng.randrange(size) + 1}"] for i in range(length)
        ]
        result = None
        ending = rng.random()
        if length and ending < 0.3:
            moves += [["BW"[length % 2], "pass"], ["BW"[(length + 1) % 2], "pass"]]
            result = f"{rng.choice('BW')}+{rng.randint(0, 60)}.5"
        elif length and ending < 0.5:
            moves.append(["BW"[length % 2], "resign"])
            result = f"{'BW'[(length + 1) % 2]}+R"
        games.append((size, json.dumps(moves), result))
    return games


def generate(path: Path, size_mb: int, seed: int = 7) -> int:
    async def schema() -> None:
        store = STORE.SqliteStore(str(path))
        await store.open()
        await store.migrate()
        await store.close()

    asyncio.run(schema())
    rng = random.Random(seed)
    pool = move_lists(rng, 2000)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    # The first twelve columns: the later ones (level, analysis, ...) keep their defaults.
    columns = ", ".join(name.strip() for name in STORE.COLUMNS.split(",")[:12])
    sql = f"INSERT INTO games ({columns}) VALUES ({', '.join('?' * 12)})"
    target = size_mb * 1024 * 1024
    now = time.time()
    n = 0
    while True:
        rows = []
        for _ in range(20_000):
            size, moves, result = pool[rng.randrange(len(pool))]
            ai = rng.random() < 0.6
            ai_color = rng.choice("BW") if ai else None
            created = now - rng.uniform(0, 3e7)
            rows.append(
                (
                    f"{n:016x}",
                    size,
                    rng.choice((6.5, 7.5, 0.5, 5.5)),
                    "ai" if ai else "human",
                    ai_color,
                    None if ai_color == "B" else os.urandom(18).hex(),
                    None if ai_color == "W" else os.urandom(18).hex(),
                    moves,
                    result,
                    moves.count("[") - 1,
                    created,
                    created + rng.uniform(0, 7200),
                )
            )
            n += 1
        conn.executemany(sql, rows)
        conn.commit()
        pages, page_size = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size"))
        if pages * page_size >= target:
            break
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    return n


def ours(db: Path, url: str, batch_rows: int) -> None:
    lines: list[str] = []
    started = time.monotonic()
    try:
        result = s2p.migrate(STORE, str(db), url, batch_rows=batch_rows, progress=lines.append)
    except s2p.MigrationError as exc:
        print(f"ours: FAILED: {exc}")
        return
    seconds = time.monotonic() - started
    copy = result["tables"]["games"]
    verdict = "FAILED" if result["verification"]["mismatched"] else "passed"
    print(
        f"ours: {result['rows']} rows copied at {copy['rows_per_second']} rows/s "
        f"(COPY, {copy['seconds']:.1f} s); with the backend's migration, sequences and verification "
        f"{result['rows'] / seconds:.0f} rows/s ({seconds:.1f} s); verification: {verdict}"
    )


def cutover(db: Path, url: str, work: Path, batch_rows: int) -> None:
    """The steps of playbooks/scale-out/cutover.yml that run while writes are refused, on this file,
    with the same code: the final backup (the VM's settings: gzip, encrypted), its verification and
    unpacking, the move and its verification."""
    key = base64.b64encode(os.urandom(32)).decode()
    steps: dict[str, float] = {}
    try:
        started = time.monotonic()
        made = sb.create_backup(str(db), str(work / "backups"), compression="gzip", key=key)
        steps["final backup"] = time.monotonic() - started
        started = time.monotonic()
        sb.fetch_and_unpack(str(work / "scratch.db"), backup_dir=str(work / "backups"), key=key)
        steps["backup verified and unpacked"] = time.monotonic() - started
        started = time.monotonic()
        s2p.migrate(STORE, str(work / "scratch.db"), url, replace=True, batch_rows=batch_rows)
        steps["move and verification"] = time.monotonic() - started
    except (sb.BackupError, s2p.MigrationError) as exc:
        print(f"cutover: FAILED: {exc}")
        return
    size = os.path.getsize(made.path) / 2**20
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in steps.items())
    print(
        f"cutover, writes refused on this file: {sum(steps.values()):.1f} s ({parts}); add the copy of "
        f"the {size:.0f} MiB backup from the VM to the controller at your link's speed, and the switches "
        "(maintenance, the stack's check, DNS, Caddy's reload) measured on the sandbox"
    )


def pgloader(db: Path, url: str, rows: int, workdir: Path, backend_url: str, options: list[str]) -> bool:
    exe = shutil.which("pgloader")
    if not exe:
        print("pgloader: not installed (apt-get install pgloader); no figure")
        return True
    label = f"pgloader {' '.join(options)}".strip()
    started = time.monotonic()
    run = subprocess.run(
        [exe, "--root-dir", str(workdir / "pgloader"), *options, f"sqlite://{db}", url],
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    if run.returncode != 0:
        output = (run.stderr + run.stdout).strip()
        why = "heap exhausted" if "Heap exhausted" in output else output[-400:]
        print(f"{label}: FAILED (exit {run.returncode} after {seconds:.0f} s): {why}")
        return False
    print(
        f"{label}: {rows} rows at {rows / seconds:.0f} rows/s ({seconds:.1f} s, schema and indexes included)"
    )
    try:
        verification = s2p.verify(str(db), url)
    except s2p.MigrationError as exc:
        print(f"pgloader's result: our verification could not run: {exc}")
        return True
    if verification["mismatched"]:
        print(f"pgloader's result FAILS our verification: {s2p.describe_mismatch(verification)}")
    else:
        print("pgloader's result passes our verification (counts and checksums)")
    theirs, backend = columns(url), columns(backend_url)
    differences = [
        f"{name} {theirs.get(name, 'missing')} (the backend's migrations: {kind})"
        for name, kind in backend.items()
        if theirs.get(name) != kind
    ]
    print(f"pgloader's schema against the backend's: {'; '.join(differences) or 'identical'}")
    return True


def columns(url: str) -> dict[str, str]:
    """Every column of the public tables as 'type [not null] [default ...]', by table.column."""
    pg = s2p.connect(url)
    try:
        rows = pg.execute(
            "SELECT table_name || '.' || column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_schema = 'public'"
            " ORDER BY table_name, ordinal_position"
        ).fetchall()
    finally:
        pg.close()
    return {
        name: kind + ("" if nullable == "YES" else " not null") + (f" default {default}" if default else "")
        for name, kind, nullable, default in rows
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument(
        "--dir", default=None, help="where to put the generated file (default: the system's tmp)"
    )
    parser.add_argument("--batch-rows", type=int, default=5000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tengen-migrate-bench-", dir=args.dir))
    postgres = None
    try:
        db = work / "tengen.db"
        started = time.monotonic()
        rows = generate(db, args.size_mb)
        print(
            f"generated {db.stat().st_size / 2**20:.0f} MiB, {rows} games with the backend's migrations "
            f"in {time.monotonic() - started:.1f} s; "
            f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
        )
        postgres = Postgres().start()
        backend_url = postgres.new_database()
        ours(db, backend_url, args.batch_rows)
        cutover(db, postgres.new_database(), work, args.batch_rows)
        if not pgloader(db, postgres.new_database(), rows, work, backend_url, []):
            # Its defaults prefetch 100000 rows per table into SBCL's fixed heap; try again with fewer.
            pgloader(
                db, postgres.new_database(), rows, work, backend_url, ["--with", "prefetch rows = 10000"]
            )
    finally:
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
