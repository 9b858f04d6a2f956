"""Game databases made by the backend itself: through its HTTP API and its own store (tests/games_db.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ansible_collections.tengen.ops.plugins.module_utils import sqlite_backup as sb

from tests.games_db import store_games
from tests.service_servers import Server, create, play, request, start_backend

DEAD_ENGINE = "http://127.0.0.1:9"  # human games need no engine; an AI reply simply fails

# (size, komi, opponent, moves by alternating colours) for the games played over HTTP.
HTTP_GAMES = [
    (9, 7.5, "human", []),  # created, nothing played
    (9, 0.5, "human", ["E5", "C3", "G7", "pass"]),
    (13, -3.5, "human", ["D4", "K10", "pass", "pass"]),  # finished by two passes: scored
    (13, 150, "human", ["G7", "resign"]),  # resigned
    (19, 6.5, "human", ["D4", "Q16", "C3", "R17", "Q4", "D16", "K10"]),
    (19, 7.5, "ai", []),  # against the AI, the human to play first
]


def play_games(backend: Server) -> dict[str, dict]:
    """Play HTTP_GAMES on a running backend; returns each game's final view, by id."""
    views: dict[str, dict] = {}
    for size, komi, opponent, moves in HTTP_GAMES:
        game, tokens = create(backend, size=size, komi=komi, opponent=opponent)
        colours = ["B", "W"]
        for number, move in enumerate(moves):
            status, game = play(backend, game["id"], tokens[colours[number % 2]], move)
            assert status == 200, game
        views[game["id"]] = game
    return views


def make_games_database(tmp: Path) -> tuple[Path, dict[str, dict]]:
    """The backend (SQLite) plays the HTTP games, then its store adds the rest; returns the database
    and the views the backend served before it stopped."""
    backend = start_backend(tmp, DEAD_ENGINE)
    try:
        views = play_games(backend)
        for game_id in views:
            status, data = request("GET", f"{backend.url}/api/games/{game_id}")
            assert status == 200
            views[game_id] = data
    finally:
        assert backend.stop() == 0
    db = tmp / "tengen.db"
    store_games(db)
    return db, views


def backup(db: Path, backup_dir: Path) -> str:
    result = sb.create_backup(str(db), str(backup_dir))
    return result.manifest["name"]


def unpack_latest(backup_dir: Path, dest: Path) -> Path:
    sb.fetch_and_unpack(str(dest), backup_dir=str(backup_dir))
    return dest


def sqlite_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return sb.table_row_counts(conn)
    finally:
        conn.close()
