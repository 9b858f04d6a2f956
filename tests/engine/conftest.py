"""Fixtures for the engine gateway tests: real GNU Go processes, or the fake KataGo, behind the gateway."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.service_servers import APP_DIR, ENGINE_DIR, Server, start_engine

sys.path.insert(0, str(APP_DIR))
sys.path.insert(0, str(ENGINE_DIR))


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


FAKE_KATAGO = Path(__file__).with_name("fake_katago.py")
KATAGO_CONFIG = REPO / "files" / "engine" / "katago" / "gtp.cfg"


@dataclass
class Katago:
    """A gateway running the fake KataGo (tests/engine/fake_katago.py), and what the fake logged."""

    server: Server
    events_file: Path
    trap_file: Path
    model: Path
    hold_file: Path

    def events(self, kind: str | None = None) -> list[dict]:
        if not self.events_file.exists():
            return []
        lines = self.events_file.read_text().splitlines()
        return [e for e in map(json.loads, lines) if kind is None or e["event"] == kind]

    def commands(self) -> list[str]:
        return [e["command"] for e in self.events("command")]

    def trap(self, action: str, command: str) -> None:
        """The next `command` makes the fake exit ("die") or stop answering ("hang")."""
        self.trap_file.write_text(f"{action} {command}")

    def hold(self) -> None:
        """Processes started from now on stay "loading" until release(): no timing involved."""
        self.hold_file.touch()

    def release(self) -> None:
        self.hold_file.unlink(missing_ok=True)


def launch_katago(tmp: Path, **env: str) -> Katago:
    """A gateway with TENGEN_ENGINE=katago in front of the fake KataGo, its files under `tmp`."""
    model = tmp / "model.bin.gz"
    model.write_bytes(b"not a network: the fake only checks that the file is there")
    events, trap, hold = tmp / "katago-events.jsonl", tmp / "katago-trap", tmp / "katago-hold"
    env = {
        "TENGEN_ENGINE": "katago",
        "TENGEN_KATAGO_BIN": str(FAKE_KATAGO),
        "TENGEN_KATAGO_MODEL": str(model),
        "TENGEN_KATAGO_CONFIG": str(KATAGO_CONFIG),
        "FAKE_KATAGO_LOG": str(events),
        "FAKE_KATAGO_TRAP": str(trap),
        "FAKE_KATAGO_HOLD": str(hold),
        **env,
    }
    return Katago(start_engine(tmp, **env), events, trap, model, hold)


@pytest.fixture(scope="module")
def katago(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Katago]:
    """One fake-KataGo gateway shared by a module's tests that neither trap nor restart it."""
    started = launch_katago(tmp_path_factory.mktemp("katago"))
    yield started
    started.server.stop()


@pytest.fixture
def start_katago(tmp_path: Path) -> Iterator:
    """Start a gateway in front of the fake KataGo, with settings of the test's choosing."""
    started: list[Server] = []

    def start(**env: str) -> Katago:
        katago = launch_katago(tmp_path, **env)
        started.append(katago.server)
        return katago

    yield start
    # Let a held process finish "loading" so that the gateway's stop is not waiting on it.
    (tmp_path / "katago-hold").unlink(missing_ok=True)
    for server in started:
        server.stop()
