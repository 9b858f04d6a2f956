"""Fixtures for the SQLite backup tests."""

from __future__ import annotations

import os
import subprocess
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


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MiB tmpfs: mounting needs root (the test machines run as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)
