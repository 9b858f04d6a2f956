"""Broadcasting a game event: every socket gets it once, a slow or broken socket holds up no other."""

from __future__ import annotations

import asyncio
import re

import aiohttp

from tests.app.broadcast_scenario import check_a_slow_reader_waits_alone_and_a_broken_one_stops_nobody
from tests.service_servers import Server, create, next_game, play, request


def test_a_slow_reader_waits_alone_and_a_broken_one_stops_nobody() -> None:
    check_a_slow_reader_waits_alone_and_a_broken_one_stops_nobody()


def test_broadcasts_are_counted_in_the_metrics(backend: Server) -> None:
    game, tokens = create(backend, size=9, opponent="human")

    def broadcasts() -> float:
        text = request("GET", f"{backend.url}/metrics")[1]
        found = re.search(r"^tengen_broadcast_seconds_count (\S+)$", text, re.M)
        assert found, "tengen_broadcast_seconds is missing from /metrics"
        return float(found.group(1))

    before = broadcasts()

    async def watch_two_moves() -> list[int]:
        async with aiohttp.ClientSession() as session:
            sockets = [await session.ws_connect(f"{backend.url}/ws/games/{game['id']}") for _ in range(3)]
            for ws in sockets:
                await next_game(ws)
            for color, move in (("B", "E5"), ("W", "C3")):
                assert (await asyncio.to_thread(play, backend, game["id"], tokens[color], move))[0] == 200
            seen = [len((await next_game(ws))["moves"]) for ws in sockets for _ in range(2)]
            for ws in sockets:
                await ws.close()
            return seen

    assert asyncio.run(watch_two_moves()) == [1, 2] * 3
    assert broadcasts() == before + 2
