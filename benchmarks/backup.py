#!/usr/bin/env python3
"""Benchmark the SQLite backup under a steady write load and print the figures.

    python benchmarks/backup.py [--size-mb 1024] [--writers 2] [--rate 20] [--dir /var/tmp]

Builds a database of about --size-mb in the backend's own schema, made by its own migrations (games
with 60-200 moves as JSON, random tokens), starts --writers processes that each play --rate moves per
second as the backend stores them (read, append, version-guarded UPDATE, synchronous=FULL) and time
every commit, then measures:
  * `cp` of the database file, then an online backup (copy, integrity_check, zstd, sha256, manifest):
    the backup's time as a ratio to cp's;
  * the writers' p50/p99 commit latency during a quiet window against during the backup;
  * restore time (checksum, decompress, sha256, integrity_check, row counts) as a ratio to cp's, and
    the compressed size.
Figures vary with the machine and its load; they are printed, never asserted. A run that fails (a
writer, the backup or the restore) prints the error and no figure.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "collections"))
sys.path.insert(0, str(REPO))
from ansible_collections.tengen.ops.plugins.module_utils import sqlite_backup as sb  # noqa: E402

from tests import games_db  # noqa: E402  (the backend's schema, by its own migrations)


def build(path: Path, size_mb: int) -> int:
    """The backend's schema by its own migrations, filled with games of 60-200 moves until size_mb."""
    games_db.migrate(path)
    rng = random.Random(1)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")  # building only; the writers use the backend's setting
    target = size_mb * 1024 * 1024
    n = 0
    while True:
        batch = [games_db.game(f"g{i:09d}", rng.randrange(60, 200), rng) for i in range(n, n + 5_000)]
        with conn:
            games_db.insert(conn, batch)
        n += len(batch)
        pages, page_size = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size"))
        if pages * page_size >= target:
            break
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return n


def writer(db: str, games: int, rate: float, stop, out) -> None:
    """Plays moves as the backend stores them: read the game, append a move, version-guarded UPDATE."""
    store = games_db.STORE
    conn = sqlite3.connect(db, timeout=60, isolation_level=None)
    conn.execute("PRAGMA synchronous=FULL")  # the backend's setting (files/app/README.md, Durability)
    rng = random.Random(os.getpid())
    period = 1.0 / rate
    samples: list[tuple[float, float]] = []
    next_at = time.monotonic()
    while not stop.is_set():
        game_id = f"g{rng.randrange(games):09d}"
        start = time.monotonic()
        conn.execute("BEGIN IMMEDIATE")
        record = store.GameRecord.from_row(
            conn.execute(f"SELECT {store.COLUMNS} FROM games WHERE id = ?", (game_id,)).fetchone()
        )
        record.moves.append(["B" if len(record.moves) % 2 == 0 else "W", "D4"])
        conn.execute(store.UPDATE_SQL, store._update_args(record))
        conn.execute("COMMIT")
        samples.append((start, time.monotonic() - start))
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))
    out.send(samples)


@contextmanager
def as_the_timer_runs_it() -> Iterator[None]:
    """CPU and I/O priority as tengen-backup.service sets them (Nice=10, IOSchedulingClass=idle), for
    this thread and what it starts (zstd, the checking threads); the writers keep theirs."""
    tid = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, tid)
    os.setpriority(os.PRIO_PROCESS, tid, 10)
    subprocess.run(["ionice", "-c", "3", "-p", str(tid)], check=True)
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, tid, before)  # the restore runs as a restore does, unbounded
        subprocess.run(["ionice", "-c", "2", "-n", "4", "-p", str(tid)], check=True)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=20.0, help="commits per second per writer")
    parser.add_argument("--quiet-seconds", type=float, default=15.0)
    parser.add_argument("--compression", default="zstd", choices=list(sb.COMPRESSIONS))
    parser.add_argument("--dir", default="/var/tmp")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tengen-bench-", dir=args.dir))
    try:
        figures = run(args, work)
    except Exception as exc:  # a failed run prints no figure, only why it failed
        sys.exit(f"benchmark failed, no figures: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(figures))


def run(args: argparse.Namespace, work: Path) -> list[str]:
    """The whole run; its figures as lines, printed only once every step has succeeded."""
    out: list[str] = []
    db = work / "tengen.db"
    t = time.monotonic()
    games = build(db, args.size_mb)
    size = db.stat().st_size
    out.append(
        f"database: {size / 2**20:.0f} MiB, {games} games (backend schema v{games_db.schema_version()}), "
        f"built in {time.monotonic() - t:.1f} s"
    )

    t = time.monotonic()
    subprocess.run(["cp", str(db), str(work / "cp.db")], check=True)
    subprocess.run(["sync", str(work / "cp.db")], check=True)  # the backup fsyncs too
    cp_time = time.monotonic() - t
    (work / "cp.db").unlink()

    stop = mp.Event()
    pipes, procs = [], []
    try:
        for _ in range(args.writers):
            recv, send = mp.Pipe(duplex=False)
            proc = mp.Process(target=writer, args=(str(db), games, args.rate, stop, send))
            proc.start()
            pipes.append(recv)
            procs.append(proc)
        time.sleep(1.0)
        quiet = (time.monotonic(), time.monotonic() + args.quiet_seconds)
        time.sleep(args.quiet_seconds)
        c0 = time.monotonic()
        sb.online_copy(str(db), str(work / "copy-only.db"), describe=False)  # the backup's own copy
        c1 = time.monotonic()
        (work / "copy-only.db").unlink()
        time.sleep(1.0)
        b0 = time.monotonic()
        with as_the_timer_runs_it():
            result = sb.create_backup(str(db), str(work / "backups"), compression=args.compression)
        b1 = time.monotonic()
        stop.set()
        samples = [s for pipe in pipes for s in pipe.recv()]
    finally:
        stop.set()
        for proc in procs:
            proc.join(timeout=60)
    if any(proc.exitcode != 0 for proc in procs):
        raise RuntimeError(f"a writer failed (exit statuses {[proc.exitcode for proc in procs]})")

    during = [lat for at, lat in samples if b0 <= at <= b1]
    copying = [lat for at, lat in samples if c0 <= at <= c1]
    before = [lat for at, lat in samples if quiet[0] <= at <= quiet[1]]

    if not (before and during and copying):
        raise RuntimeError("the writers committed nothing in a window they must cover")
    t = time.monotonic()
    sb.unpack_backup(result.path, result.manifest, str(work / "restored.db"))
    restore_time = time.monotonic() - t

    m = result.manifest
    backup_time = b1 - b0
    out.append(f"cp + sync of the file:     {cp_time:.1f} s")
    out.append(f"online copy alone:         {c1 - c0:.1f} s = {(c1 - c0) / cp_time:.1f} x cp")
    out.append(
        f"online backup ({args.compression}):     {backup_time:.1f} s = {backup_time / cp_time:.1f} x cp"
    )
    out.append(
        "  (copy + integrity_check + compression + sha256 + row counts + manifest, fsynced; "
        "Nice=10, I/O class idle as its unit)"
    )
    out.append(
        f"writers' commits:          p50 {pct(before, 50):.1f} ms, p99 {pct(before, 99):.1f} ms quiet "
        f"({len(before)} commits) against p50 {pct(during, 50):.1f} ms, p99 {pct(during, 99):.1f} ms "
        f"during the backup ({len(during)} commits), max {max(during, default=0) * 1000:.0f} ms: "
        f"p99 {pct(during, 99) / pct(before, 99):.1f} x quiet"
    )
    out.append(
        f"  during the online copy alone: p50 {pct(copying, 50):.1f} ms, p99 {pct(copying, 99):.1f} ms "
        f"({len(copying)} commits)"
    )
    out.append(f"restore (verify + unpack): {restore_time:.1f} s = {restore_time / cp_time:.1f} x cp")
    out.append(
        f"compressed size:           {m['file_size'] / 2**20:.0f} MiB of {m['db_size'] / 2**20:.0f} MiB "
        f"({m['file_size'] / m['db_size']:.0%})"
    )
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    out.append(f"load average at the end:   {load} on {os.cpu_count()} CPUs")
    out.append(f"writers' actual rate:      {len(samples) / (b1 - quiet[0]):.0f} commits/s in all")
    out.append(f"rows in the backup:        {m['tables']}, moves {m.get('game_moves')}")
    return out


if __name__ == "__main__":
    main()
