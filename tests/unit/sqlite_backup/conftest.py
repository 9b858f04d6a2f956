"""Fixtures for the SQLite backup tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlite_helpers import make_db, sqlite_backup


@pytest.fixture
def sb():
    return sqlite_backup


@pytest.fixture
def live_db(tmp_path: Path) -> Path:
    (tmp_path / "live").mkdir()
    return make_db(tmp_path / "live" / "tengen.db")


@pytest.fixture
def key() -> str:
    import base64

    return base64.b64encode(os.urandom(32)).decode()
