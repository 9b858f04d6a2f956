#!/usr/bin/env python3
"""Figures for the game service, measured on this machine with real processes.

  python benchmarks/service.py [--quick] [--synchronous NORMAL FULL] [--moves-only]

1. Move round trip: concurrent players each POST a move and wait until the game's WebSocket
   pushes it back; moves/s and p50/p99 of that round trip (SQLite backend), once per SQLite
   `synchronous` setting asked for (TENGEN_SQLITE_SYNCHRONOUS), each on a fresh database.
2. WebSockets per backend process: N sockets watch one game; a move is broadcast to all; the
   largest N whose broadcast p99 stays under 100 ms (the clients share the machine's cores).
3. Engine move latency p50/p95 per GNU Go level, on 9x9 and 19x19 middle-game positions.
4. Image sizes of the tengen/*:test images, when Docker has them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "files" / "app")]

from tengen_app.rules import Game, IllegalMove  # noqa: E402

from tests.service_servers import start_backend, start_engine  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


async def new_game(session: aiohttp.ClientSession, url: str) -> tuple[str, dict]:
    async with session.post(f"{url}/api/games", json={"size": 19, "opponent": "human"}) as resp:
        data = await resp.json()
    return data["game"]["id"], data["tokens"]


# Black fills row 4, White row 16: long chains with many liberties, so no capture ever interferes.
SAFE_MOVES = [vertex for column in "ABCDEFGHJKLMNOPQRST" for vertex in (f"{column}4", f"{column}16")]


async def round_trips(url: str, players: int, seconds: float) -> tuple[int, list[float]]:
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def player(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < stop:
            gid, tokens = await new_game(session, url)
            async with session.ws_connect(f"{url}/ws/games/{gid}") as ws:
                await ws.receive()
                for index, vertex in enumerate(SAFE_MOVES):
                    if time.monotonic() >= stop:
                        return
                    token = tokens["B" if index % 2 == 0 else "W"]
                    started = time.monotonic()
                    async with session.post(
                        f"{url}/api/games/{gid}/moves", json={"token": token, "move": vertex}
                    ) as resp:
                        assert resp.status == 200, await resp.text()
                    while True:
                        data = json.loads((await ws.receive()).data)
                        if data["type"] == "game" and len(data["game"]["moves"]) == index + 1:
                            break
                    latencies.append(time.monotonic() - started)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(player(session) for _ in range(players)))
    return len(latencies), latencies


async def broadcast(url: str, sockets: int, moves: int = 5) -> list[float]:
    """Open `sockets` WebSockets on one game, play `moves` moves; the delay to every socket."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        gid, tokens = await new_game(session, url)
        conns = []
        for start in range(0, sockets, 200):
            batch = [
                session.ws_connect(f"{url}/ws/games/{gid}") for _ in range(start, min(sockets, start + 200))
            ]
            conns += await asyncio.gather(*batch)
        await asyncio.gather(*(ws.receive() for ws in conns))
        delays: list[float] = []
        for index in range(moves):
            sent = time.monotonic()

            async def arrival(ws, sent: float = sent) -> float:
                await ws.receive()
                return time.monotonic() - sent

            waiting = [asyncio.create_task(arrival(ws)) for ws in conns]
            token = tokens["B" if index % 2 == 0 else "W"]
            async with session.post(
                f"{url}/api/games/{gid}/moves", json={"token": token, "move": SAFE_MOVES[index]}
            ) as resp:
                assert resp.status == 200
            delays += await asyncio.gather(*waiting)
            await asyncio.sleep(0.2)
        await asyncio.gather(*(ws.close() for ws in conns))
    return delays


def position(size: int, stones: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    game = Game(size, 7.5)
    while len(game.moves) < stones:
        try:
            game.play(game.to_play, f"{rng.choice('ABCDEFGHJKLMNOPQRST'[:size])}{rng.randint(1, size)}")
        except IllegalMove:
            continue
    return game.moves


async def engine_latency(url: str, size: int, stones: int, samples: int) -> list[float]:
    times = []
    async with aiohttp.ClientSession() as session:
        for seed in range(samples):
            moves = position(size, stones, seed)
            started = time.monotonic()
            body = {"size": size, "komi": 7.5, "moves": moves, "color": "B" if stones % 2 == 0 else "W"}
            async with session.post(f"{url}/move", json=body) as resp:
                assert resp.status == 200, await resp.text()
            times.append(time.monotonic() - started)
    return times


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def image_sizes() -> list[str]:
    try:
        out = subprocess.run(
            ["docker", "images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}", "tengen/*"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line for line in out.splitlines() if "test" in line.split()[0] or "debian" in line]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer samples")
    parser.add_argument(
        "--synchronous",
        nargs="+",
        default=["NORMAL"],
        choices=["NORMAL", "FULL", "EXTRA"],
        help="SQLite synchronous settings to measure the move round trip with (default NORMAL)",
    )
    parser.add_argument("--moves-only", action="store_true", help="the move round trip alone")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = Path(tempfile.mkdtemp(prefix="tengen-bench-"))
    engine = start_engine(tmp, TENGEN_ENGINE_PROCESSES="1")
    backend = None
    try:
        cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
        print(f"machine: {cores} cores, load average {load()}, python {sys.version.split()[0]}, SQLite (WAL)")
        seconds = 5 if args.quick else 15
        for synchronous in args.synchronous:
            if backend is not None:
                backend.stop()
            home = Path(tempfile.mkdtemp(prefix=f"sync-{synchronous}-", dir=tmp))
            backend = start_backend(
                home,
                engine.url,
                TENGEN_LOG_LEVEL="warning",
                TENGEN_SQLITE_SYNCHRONOUS=synchronous,
                TENGEN_WEBSOCKETS_PER_PLAYER="0",  # every socket of the broadcast comes from here
            )
            for players in (1, 10, 50):
                count, lat = asyncio.run(round_trips(backend.url, players, seconds))
                print(
                    f"move round trip, synchronous={synchronous}, {players:>2} players: "
                    f"{count / seconds:7.1f} moves/s, p50 {ms(pct(lat, 50))}, p99 {ms(pct(lat, 99))}"
                )
        if args.moves_only:
            return
        best = 0
        for sockets in (100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000, 8000):
            delays = asyncio.run(broadcast(backend.url, sockets))
            p99 = pct(delays, 99)
            print(f"broadcast to {sockets:>5} sockets: p50 {ms(pct(delays, 50))}, p99 {ms(p99)}")
            if p99 >= 0.1:
                break
            best = sockets
        print(f"=> one backend process holds {best} concurrent WebSockets with broadcast p99 < 100 ms")
    finally:
        if backend is not None:
            backend.stop()
        engine.stop()
    samples = (5, 2) if args.quick else (20, 6)
    for level in (1, 5, 10):
        engine = start_engine(
            tmp, TENGEN_ENGINE_PROCESSES="1", TENGEN_GNUGO_LEVEL=str(level), TENGEN_ENGINE_TIMEOUT="600"
        )
        try:
            for size, stones, count in ((9, 20, samples[0]), (19, 60, samples[1])):
                times = asyncio.run(engine_latency(engine.url, size, stones, count))
                print(
                    f"GNU Go level {level:>2}, {size}x{size} ({stones} stones, {count} positions): "
                    f"p50 {ms(statistics.median(times))}, p95 {ms(pct(times, 95))}"
                )
        finally:
            engine.stop()
    for line in image_sizes():
        print(f"image {line}")
    print(f"load average at the end: {load()} (other work on the machine skews every figure above)")


if __name__ == "__main__":
    main()
