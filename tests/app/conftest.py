"""Fixtures for the backend tests: a real engine gateway (GNU Go), backends, Redis (PostgreSQL: in tests/)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.service_servers import APP_DIR, Redis, Server, start_backend, start_engine

sys.path.insert(0, str(APP_DIR))


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The engine gateway with GNU Go at level 1: quick enough for the AI's replies in tests."""
    server = start_engine(tmp_path_factory.mktemp("engine"), TENGEN_ENGINE_PROCESSES="2")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory, engine: Server) -> Iterator[Server]:
    """One backend (SQLite) for a module's tests: each test makes its own games."""
    server = start_backend(tmp_path_factory.mktemp("backend"), engine.url)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def katago(tmp_path_factory: pytest.TempPathFactory):
    """The engine gateway in front of the fake KataGo (tests/engine/fake_katago.py): analysis included."""
    from tests.engine.conftest import launch_katago

    started = launch_katago(tmp_path_factory.mktemp("katago"))
    yield started
    started.server.stop()


@pytest.fixture(scope="module")
def katago_backend(tmp_path_factory: pytest.TempPathFactory, katago) -> Iterator[Server]:
    """One backend (SQLite) whose engine is the fake KataGo's gateway."""
    server = start_backend(tmp_path_factory.mktemp("katago-backend"), katago.server.url)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Redis]:
    server = Redis().start()
    yield server
    server.stop()
