#!/usr/bin/env python3
"""Figures for the whole stack on the sandbox VM (`make demo` first), printed, never asserted.

  python benchmarks/stack.py [--sockets 1000] [--skip-release]

1. A release under the shared player load (tests/player_load.py: human games, AI games and
   WebSocket watchers): its counts while playbooks/deploy.yml releases a new backend image (goal:
   0 failed, 0 lost, 0 stale), and the release's duration. A release that failed, or a load that
   saw a failure, ends the benchmark with an error and prints no release figure.
2. A no-op site.yml: its duration (and its changed count, which should be 0).
3. WebSockets held through Caddy and nginx: N sockets watch one game and every move is
   broadcast to all; p50/p99 of the broadcast, against the same clients reaching the backend
   directly. The clients run in a container on the VM's Compose network, so both paths are
   measured from the same place.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.player_load import PlayerLoad  # noqa: E402
from tests.stack_checks import https_context  # noqa: E402

VM = os.environ.get("TENGEN_SANDBOX", "tengen-sandbox")
ENV = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
BIN = Path(sys.executable).parent

# Runs inside the VM in a container of the backend image (python3-aiohttp is there).
WS_CLIENT = r"""
import asyncio, json, re, ssl, sys, time, statistics, resource
import aiohttp
url, api, n, moves, sni, metrics = sys.argv[1:7]
n, moves = int(n), int(moves)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ctx = ssl.create_default_context(cafile="/ca.crt") if url.startswith("wss") else None
extra = {"server_hostname": sni, "headers": {"Host": sni}} if ctx else {}
async def arrival(ws):
    await ws.receive()
    return time.perf_counter()  # stamped on arrival, not when the loop gets round to counting it
async def fanout(s):
    async with s.get(metrics) as r:
        text = await r.text()
    total = float(re.search(r"^tengen_broadcast_seconds_sum (\S+)$", text, re.M).group(1))
    count = float(re.search(r"^tengen_broadcast_seconds_count (\S+)$", text, re.M).group(1))
    return total, count
async def main():
    conn = aiohttp.TCPConnector(limit=0, ssl=ctx or False)
    async with aiohttp.ClientSession(connector=conn) as s:
        async with s.post(api + "/api/games", json={"size": 19, "opponent": "human"}, **extra) as r:
            g = await r.json()
        gid, tok = g["game"]["id"], g["tokens"]
        socks = []
        for i in range(n):
            ws = await s.ws_connect(f"{url}/ws/games/{gid}", **extra)
            await ws.receive()
            socks.append(ws)
        lat = []
        cols = "ABCDEFGHJKLMNOPQRST"
        sum0, count0 = await fanout(s)
        for m in range(moves):
            colour = "B" if m % 2 == 0 else "W"
            vertex = f"{cols[m % 19]}{m // 19 + 1}"
            waiters = [asyncio.create_task(arrival(w)) for w in socks]
            t0 = time.perf_counter()
            body = {"move": vertex, "token": tok[colour]}
            async with s.post(f"{api}/api/games/{gid}/moves", json=body, **extra) as r:
                assert r.status == 200, await r.text()
            lat.extend((t - t0) * 1000 for t in await asyncio.gather(*waiters))
        sum1, count1 = await fanout(s)
        held = sum(1 for w in socks if not w.closed)
        for w in socks:
            await w.close()
        lat.sort()
        print(json.dumps({"held": held, "p50": statistics.median(lat), "p99": lat[int(len(lat) * 0.99) - 1],
                          "fanout_ms": (sum1 - sum0) / max(count1 - count0, 1) * 1000}))
try:  # the backend image has uvloop: the clients cost less of the VM's CPU that the stack needs
    import uvloop
    uvloop.run(main())
except ImportError:
    asyncio.run(main())
"""


INVENTORY: list[str] = []  # -i INVENTORY when --inventory is given


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, check=False, **kw)


def vm(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return run(["docker", "exec", "-i", VM, *cmd], **kw)


def ledger() -> dict:
    return json.loads(vm("cat", "/opt/tengen/releases.json").stdout)


def bench_release(base: str, ctx) -> None:
    live = ledger()["releases"][0]["images"]["backend"]
    tag = f"tengen/backend:bench-{int(time.time())}"
    build = subprocess.run(
        ["docker", "build", "-q", "-t", tag, "-"],
        input=f"FROM {live}\nLABEL org.tengen.bench={tag}\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode:
        sys.exit(f"building {tag} failed: {build.stderr}")
    started = time.monotonic()
    with PlayerLoad(base, ctx) as load:
        proc = run(
            [
                str(BIN / "ansible-playbook"),
                *INVENTORY,
                "playbooks/deploy.yml",
                "-e",
                f"game_stack_backend_image={tag}",
            ]
        )
        took = time.monotonic() - started
    report = load.report
    if proc.returncode:
        sys.exit(f"release: deploy.yml failed, no figure (load: {report.summary()})\n{proc.stdout[-2000:]}")
    if not report.clean:
        sys.exit(f"release: the load saw failures, no figure: {report.summary()}\n  {report.details()}")
    print(f"release under player load: {report.summary()}")
    print(f"release time: {took:.1f} s (deploy.yml ok, image shipped and health-gated)")


def bench_noop_site() -> None:
    started = time.monotonic()
    proc = run([str(BIN / "ansible-playbook"), *INVENTORY, "site.yml"])
    took = time.monotonic() - started
    changed = sum(int(m) for m in re.findall(r"changed=(\d+)", proc.stdout))
    print(f"no-op site.yml: {took:.1f} s (changed={changed}, rc={proc.returncode})")


def websockets_per_player(slot: str) -> int:
    """The WebSockets one player may open on the stack (0: no limit), from the live backend's
    environment file."""
    for line in vm("cat", f"/opt/tengen/backend-{slot}.env").stdout.splitlines():
        if line.startswith("TENGEN_WEBSOCKETS_PER_PLAYER="):
            return int(line.split("=", 1)[1].strip("'\""))
    return 0


def bench_websockets(sockets: int, moves: int) -> None:
    data = ledger()["releases"][0]
    image, slot = data["images"]["backend"], data["slot"]
    # Every socket comes from one container, that is one player: a limit below them refuses the rest.
    limit = websockets_per_player(slot)
    if 0 < limit < sockets:
        print(
            f"websockets: {sockets} sockets from one address exceed the stack's {limit} per player, "
            "no figure: deploy with -e game_stack_websockets_per_player=0 first"
        )
        return
    results = {}
    paths = {
        "caddy+nginx": ("wss://caddy", "https://caddy"),
        "backend directly": (f"ws://backend-{slot}:8000", f"http://backend-{slot}:8000"),
    }
    for name, (url, api) in paths.items():
        proc = vm(
            "docker", "run", "--rm", "-i", "--network", "tengen_default",
            "-v", "/var/lib/tengen-caddy/data/caddy/pki/authorities/local/root.crt:/ca.crt:ro",
            "--user", "0", "--entrypoint", "python3", image,
            "-", url, api, str(sockets), str(moves), "localhost", f"http://backend-{slot}:8000/metrics",
            input=WS_CLIENT,
        )  # fmt: skip
        if proc.returncode:
            print(f"websockets via {name}: FAILED {proc.stderr.strip().splitlines()[-1:]}")
            continue
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[name]
        print(
            f"websockets via {name}: {r['held']} held, broadcast p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms"
            f" (the backend's own fan-out: {r['fanout_ms']:.1f} ms per broadcast)"
        )
    if len(results) == 2:
        ratio = results["caddy+nginx"]["p99"] / max(results["backend directly"]["p99"], 0.001)
        print(
            f"broadcast p99 ratio caddy+nginx / direct: {ratio:.2f} (goal: p99 under 100 ms via the proxies)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="https://localhost:8443")
    parser.add_argument("--ca", default=str(REPO / ".sandbox" / "caddy-root.crt"))
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--skip-release", action="store_true")
    parser.add_argument("--inventory", help="another sandbox's inventory (default: ansible.cfg's)")
    parser.add_argument("--vm", help="that sandbox's container (default: $TENGEN_SANDBOX or tengen-sandbox)")
    args = parser.parse_args()
    global VM
    if args.inventory:
        INVENTORY.extend(["-i", args.inventory])
    if args.vm:
        VM = args.vm
    ctx = https_context(args.ca)
    bench_noop_site()  # first: after a release to another image, site.yml would release back
    if not args.skip_release:
        bench_release(args.url, ctx)
    bench_websockets(args.sockets, args.moves)


if __name__ == "__main__":
    main()
