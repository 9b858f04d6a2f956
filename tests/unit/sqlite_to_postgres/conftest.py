"""Fixtures for the SQLite → PostgreSQL migration tests (PostgreSQL itself: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from games_data import backup, make_games_database


@pytest.fixture(scope="module")
def games(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A database the backend made and played in, and a verified backup of it."""
    tmp = tmp_path_factory.mktemp("games")
    db, views = make_games_database(tmp)
    backups = tmp / "backups"
    backups.mkdir()
    name = backup(db, backups)
    return {"db": db, "views": views, "backup_dir": backups, "backup": name, "tmp": tmp}


@pytest.fixture
def target(postgres) -> str:
    """The URL of a new, empty database."""
    return postgres.new_database()


@pytest.fixture
def scratch(games: dict, tmp_path: Path) -> Path:
    """A verified scratch copy of the games backup, as the module makes one."""
    from games_data import unpack_latest

    return unpack_latest(games["backup_dir"], tmp_path / "scratch.db")
