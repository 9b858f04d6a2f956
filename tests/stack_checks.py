"""Checks of a running tengen stack from outside, as a player's browser reaches it.

Shared by the molecule verifiers, the end-to-end tests, `scripts/smoke` and the benchmarks:
HTTPS verified against the stack's CA, a game against the AI through /api with the moves pushed
over /ws, and the project's playbooks run against a molecule scenario's VM.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import aiohttp

from tests.conftest import REPO
from tests.e2e.sandbox import run_playbook


def https_context(ca_file: str) -> ssl.SSLContext:
    """Verification against the stack's root certificate only (never turned off)."""
    return ssl.create_default_context(cafile=ca_file)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return None


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def get(url: str, ctx: ssl.SSLContext | None = None, headers: dict[str, str] | None = None) -> Response:
    """One GET, redirects not followed, HTTP errors returned rather than raised."""
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=ctx))
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=15) as resp:
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        return Response(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


@dataclass
class GameResult:
    game_id: str
    our_move: str
    ai_move: str
    pushed: list[dict] = field(default_factory=list)  # the game states pushed over /ws


async def _play_vs_ai(base: str, ctx: ssl.SSLContext, move: str, timeout: float) -> GameResult:
    wsbase = base.replace("https://", "wss://", 1)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.post(f"{base}/api/games", json={"size": 9}, ssl=ctx) as resp:
            assert resp.status == 201, f"creating a game answered {resp.status}: {await resp.text()}"
            created = await resp.json()
        game_id = created["game"]["id"]
        token = created["tokens"]["B"]
        pushed: list[dict] = []
        async with session.ws_connect(f"{wsbase}/ws/games/{game_id}", ssl=ctx) as ws:
            first = json.loads((await ws.receive(timeout=timeout)).data)
            assert first["type"] == "game" and first["game"]["moves"] == []
            async with session.post(
                f"{base}/api/games/{game_id}/moves", json={"move": move, "token": token}, ssl=ctx
            ) as resp:
                assert resp.status == 200, f"the move answered {resp.status}: {await resp.text()}"
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = await ws.receive(timeout=max(deadline - time.monotonic(), 0.1))
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise AssertionError(f"the WebSocket ended before the AI answered: {msg.type}")
                data = json.loads(msg.data)
                if data.get("type") != "game":
                    continue
                pushed.append(data["game"])
                moves = data["game"]["moves"]
                if len(moves) >= 2:
                    return GameResult(game_id, moves[0][1], moves[1][1], pushed)
        raise AssertionError(f"no AI reply was pushed within {timeout} s")


def play_vs_ai(base: str, ctx: ssl.SSLContext, move: str = "E5", timeout: float = 60) -> GameResult:
    """Create a 9x9 game against the AI, play `move`, and wait for the AI's reply over /ws."""
    return asyncio.run(_play_vs_ai(base, ctx, move, timeout))


def get_game(base: str, ctx: ssl.SSLContext, game_id: str) -> Response:
    return get(f"{base}/api/games/{game_id}", ctx)


def molecule_playbook(name: str, *extra_vars: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run one of the project's playbooks against the molecule scenario's VM, as an operator would."""
    args = [arg for var in extra_vars for arg in ("-e", var)]
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    run = run_playbook(inventory, REPO / "playbooks" / name, *args, timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return run
