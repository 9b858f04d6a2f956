"""Fixtures for the engine gateway tests: real GNU Go processes behind the gateway."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator

import pytest

from tests.service_servers import APP_DIR, Server, start_engine

sys.path.insert(0, str(APP_DIR))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_engine(tmp_path_factory.mktemp("gateway"), TENGEN_ENGINE_PROCESSES="2")
    yield server
    server.stop()


@pytest.fixture
def start_gateway(tmp_path) -> Iterator:
    """Start a gateway with settings of the test's choosing; stopped afterwards."""
    started: list[Server] = []

    def start(**env: str) -> Server:
        server = start_engine(tmp_path, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def busy_position() -> list[list[str]]:
    """A legal 19x19 middle game of 60 scattered stones: GNU Go thinks a second or more over it."""
    from tengen_app.rules import Game, IllegalMove

    rng = random.Random(7)
    game = Game(19, 7.5)
    while len(game.moves) < 60:
        vertex = f"{rng.choice('ABCDEFGHJKLMNOPQRST')}{rng.randint(1, 19)}"
        try:
            game.play(game.to_play, vertex)
        except IllegalMove:
            continue
    return game.moves
