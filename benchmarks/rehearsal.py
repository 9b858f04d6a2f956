#!/usr/bin/env python3
"""What one more backend replica buys: the single VM against the rehearsal, in one run.

  python benchmarks/rehearsal.py --vm CONTAINER [--seconds 20] [--sockets 200] [--keep]

Both on the same sandbox VM, measured from the same place (clients in containers of the backend
image on the VM's Docker engine):
- the VM as site.yml deploys it: Caddy (TLS) -> nginx -> one backend process on SQLite, reached
  on its HTTPS port from the Compose network;
- the rehearsal (playbooks/scale-out/rehearse.yml) on the same VM: HAProxy standing in for the
  ALB -> two backend replicas on PostgreSQL, their broadcasts relayed through Redis.

1. Moves per second: players each play their own 19x19 game (a move POSTed, then awaited on the
   game's WebSocket), from several client containers: nginx allows each address 50 API requests
   a second (game_stack_nginx_api_rate), so each container paces its players under that, and
   both paths get the same offered load. Moves/s achieved and the round trip's p50/p99.
2. WebSocket broadcast: N sockets watch one game through the load balancer (on the rehearsal
   half of them on each replica), a move is played, and the delay until every socket has it;
   p50/p99 over the moves.

Any failure (an HTTP status other than the one expected, a connection error, a socket closed or
silent) ends the benchmark with an error and prints no figure.

The rehearsal must run on the VM: the e2e session keeps it with TENGEN_KEEP_SANDBOX=1
TENGEN_KEEP_REHEARSAL=1 (pytest tests/e2e/test_rehearsal.py -k health_check); this benchmark
then removes it as the session would have, unless --keep.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.test_rehearsal import NETWORK, STACK, remove_rehearsal  # noqa: E402

# Runs in a container of the backend image (python3-aiohttp is there).
CLIENT = r"""
import asyncio, json, ssl, sys, time
import aiohttp
mode, url, sni = sys.argv[1:4]
ctx = ssl.create_default_context(cafile="/ca.crt") if url.startswith("https") else None
extra = {"server_hostname": sni, "headers": {"Host": sni}} if ctx else {}
wsurl = url.replace("http", "ws", 1)
COLUMNS = "ABCDEFGHJKLMNOPQRST"
SAFE = [f"{c}{r}" for c in COLUMNS for r in (4, 16)]  # Black row 4, White row 16: no capture
failures = []

async def new_game(s):
    async with s.post(f"{url}/api/games", json={"size": 19, "opponent": "human"}, **extra) as r:
        if r.status != 201:
            raise RuntimeError(f"POST /api/games: HTTP {r.status}")
        g = await r.json()
    return g["game"]["id"], g["tokens"]

async def play(s, gid, tokens, i):
    body = {"move": SAFE[i], "token": tokens["B" if i % 2 == 0 else "W"]}
    async with s.post(f"{url}/api/games/{gid}/moves", json=body, **extra) as r:
        if r.status != 200:
            raise RuntimeError(f"POST move: HTTP {r.status} {(await r.text())[:80]}")

async def until(ws, moves):
    while True:
        msg = await ws.receive(timeout=30)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"WebSocket: {msg.type!r} {msg.data!r}")
        data = json.loads(msg.data)
        if data.get("type") == "game" and len(data["game"]["moves"]) >= moves:
            return time.perf_counter()

async def moves_mode(players, rate, start, seconds):
    latencies = []
    gap = players / rate  # each player's least time between two moves: the container's pace
    async def player(s):
        await asyncio.sleep(max(0.0, start - time.time()))
        stop = start + seconds
        while time.time() < stop:
            gid, tokens = await new_game(s)
            async with s.ws_connect(f"{wsurl}/ws/games/{gid}", **extra) as ws:
                await until(ws, 0)
                for i in range(len(SAFE)):
                    t0 = time.perf_counter()
                    if time.time() >= stop:
                        return
                    await play(s, gid, tokens, i)
                    latencies.append(await until(ws, i + 1) - t0)
                    await asyncio.sleep(max(0.0, gap - (time.perf_counter() - t0)))
    late = time.time() - start
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=ctx or False)) as s:
        await asyncio.gather(*(player(s) for _ in range(players)))
    return {"late": late, "latencies": latencies}

async def broadcast_mode(sockets, moves):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=ctx or False)) as s:
        gid, tokens = await new_game(s)
        socks = []
        for _ in range(sockets):
            ws = await s.ws_connect(f"{wsurl}/ws/games/{gid}", **extra)
            await until(ws, 0)
            socks.append(ws)
        delays = []
        for i in range(moves):
            waiting = [asyncio.create_task(until(ws, i + 1)) for ws in socks]
            t0 = time.perf_counter()
            await play(s, gid, tokens, i)
            delays += [t - t0 for t in await asyncio.gather(*waiting)]
        for ws in socks:
            await ws.close()
    return {"latencies": delays}

try:
    import uvloop
    run = uvloop.run
except ImportError:
    run = asyncio.run
if mode == "moves":
    players, rate, start, seconds = int(sys.argv[4]), *map(float, sys.argv[5:8])
    print(json.dumps(run(moves_mode(players, rate, start, seconds))))
else:
    print(json.dumps(run(broadcast_mode(int(sys.argv[4]), int(sys.argv[5])))))
"""

CA = "/var/lib/tengen-caddy/data/caddy/pki/authorities/local/root.crt"
VM = ""


def vm(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", "exec", "-i", VM, *cmd], capture_output=True, text=True, check=False, **kw
    )


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def client(image: str, network: str, *args: str) -> dict:
    """One client container on `network`; its JSON result, or SystemExit naming the failure."""
    proc = vm(
        "docker", "run", "--rm", "-i", "--network", network, "-v", f"{CA}:/ca.crt:ro",
        "--user", "0", "--entrypoint", "python3", image, "-", *args,
        input=CLIENT,
    )  # fmt: skip
    if proc.returncode:
        raise SystemExit(f"a client failed, no figure: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def moves_per_second(
    image: str, network: str, url: str, args: argparse.Namespace
) -> tuple[float, list[float]]:
    start = time.time() + 5 + 4 * args.clients  # every container up before the players begin
    with ThreadPoolExecutor(args.clients) as pool:
        results = list(
            pool.map(
                lambda _: client(
                    image,
                    network,
                    "moves",
                    url,
                    "localhost",
                    str(args.players),
                    str(args.rate),
                    str(start),
                    str(args.seconds),
                ),  # fmt: skip
                range(args.clients),
            )
        )
    late = max(r["late"] for r in results)
    if late > 0:
        raise SystemExit(f"a client container started {late:.1f} s after the others began, no figure")
    latencies = [x for r in results for x in r["latencies"]]
    if not latencies:
        raise SystemExit("no move came back, no figure")
    return len(latencies) / args.seconds, latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--vm", required=True, help="the sandbox VM's container (site.yml and the rehearsal on it)"
    )
    parser.add_argument("--seconds", type=float, default=20, help="length of each moves run")
    parser.add_argument("--clients", type=int, default=6, help="client containers (addresses) per moves run")
    parser.add_argument("--players", type=int, default=4, help="players per client container")
    parser.add_argument("--rate", type=float, default=40, help="moves a second per client container, at most")
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--moves", type=int, default=20, help="moves broadcast to the sockets")
    parser.add_argument("--keep", action="store_true", help="leave the rehearsal running")
    args = parser.parse_args()
    global VM
    VM = args.vm
    try:
        ledger = json.loads(vm("cat", "/opt/tengen/releases.json").stdout)
        image = ledger["releases"][0]["images"]["backend"]
        backends = vm(
            "docker", "ps", "-q", "--filter", "label=tengen.rehearsal.service=backend"
        ).stdout.split()
        if len(backends) != 2:
            raise SystemExit(f"the rehearsal must run two backend replicas on {VM}; found {len(backends)}")
        paths = {
            "one VM (Caddy, nginx, 1 backend, SQLite)": ("tengen_default", "https://caddy"),
            "rehearsal (HAProxy, 2 backends, PostgreSQL, Redis)": (
                NETWORK,
                f"http://{STACK}-rehearsal-alb:18443",
            ),
        }
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        figures = []
        for name, (network, url) in paths.items():
            rate, latencies = moves_per_second(image, network, url, args)
            delays = client(
                image, network, "broadcast", url, "localhost", str(args.sockets), str(args.moves)
            )["latencies"]
            figures.append((name, rate, latencies, delays))
    finally:
        if not args.keep:
            remove_rehearsal(lambda *cmd: vm(*cmd))
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    print(
        f"machine: {cores} cores shared by the VM, both stacks, the clients and other work "
        f"(load average {load} at the start)"
    )
    offered = args.clients * args.rate
    print(
        f"moves: {args.clients} client addresses x {args.players} players, at most {offered:.0f} moves/s "
        f"offered, {args.seconds:.0f} s; broadcast: {args.sockets} sockets, {args.moves} moves"
    )
    for name, rate, latencies, delays in figures:
        print(
            f"{name}: {rate:.1f} moves/s (round trip p50 {pct(latencies, 50) * 1000:.1f} ms, "
            f"p99 {pct(latencies, 99) * 1000:.1f} ms); broadcast p50 {pct(delays, 50) * 1000:.1f} ms, "
            f"p99 {pct(delays, 99) * 1000:.1f} ms"
        )
    (_, one, _, one_b), (_, two, _, two_b) = figures
    ratio = pct(two_b, 99) / pct(one_b, 99)
    print(
        f"one more replica: {two / one:.2f}x the moves/s, {ratio:.2f}x the broadcast p99 "
        "(on one machine's cores: the overhead, not the scaling)"
    )


if __name__ == "__main__":
    main()
