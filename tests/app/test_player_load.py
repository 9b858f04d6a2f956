"""The shared player load finds what it is there to find: on a healthy backend nothing, and on a
backend that crashes and comes back with an older database, the failed requests, the broken
WebSockets and the acknowledged moves that were lost."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import time
from pathlib import Path

from tests.player_load import Game, PlayerLoad, human_move, legal_points
from tests.service_servers import APP_DIR, Server, start_backend, start_python


def test_human_games_never_capture():
    black = {human_move(n) for n in range(0, 60, 2)}
    white = {human_move(n) for n in range(1, 60, 2)}
    assert len(black) == len(white) == 30
    assert max(int(v[1:]) for v in black) + 1 < min(int(v[1:]) for v in white)  # rows apart


def test_ai_games_offer_only_moves_the_rules_accept():
    board = [
        ".X.......",
        "X.X......",
        ".X.......",
        ".........",
        ".........",
        ".........",
        ".........",
        ".........",
        "........X",
    ]
    points = legal_points(board)
    assert "B8" not in points  # surrounded: suicide, or a ko recapture
    assert "A9" not in points and "J1" not in points and "B9" not in points  # no empty neighbour, or taken
    assert points[0] == "E5" and len(points) == 81 - 5 - 2  # five stones, two points shut in


def test_a_failed_move_found_stored_is_expected_from_then_on():
    load = PlayerLoad("http://127.0.0.1:9")
    human = Game("h", {}, "human", acknowledged=[["B", "A1"], ["W", "A19"]])
    # The server fell after storing B1 and before answering: the move is there, next in line.
    assert load._stored_anyway(human, {"moves": [["B", "A1"], ["W", "A19"], ["B", "B1"]]}, "B", "B1")
    assert human.acknowledged[-1] == ["B", "B1"] and load.report.stored_unanswered == 1
    # Not stored (or stored elsewhere in the game): the move is to be sent again.
    assert not load._stored_anyway(human, {"moves": [["B", "A1"], ["W", "A19"], ["B", "B1"]]}, "W", "B19")
    assert not load._stored_anyway(human, {"moves": [["B", "A1"], ["W", "A19"]]}, "W", "A19")
    ai = Game("a", {}, "ai", acknowledged=[["B", "E5"]])
    assert load._stored_anyway(ai, {"moves": [["B", "E5"], ["W", "C3"], ["B", "D4"]]}, "B", "D4")
    assert ai.acknowledged == [["B", "E5"], ["B", "D4"]] and load.report.stored_unanswered == 2
    assert len(human.acknowledged) == 3 and load.report.moves == 0  # never counted as acknowledged


def test_a_healthy_backend_gives_a_clean_report(backend: Server):
    with PlayerLoad(backend.url, humans=2, ai_players=3, pause=0.1) as load:
        time.sleep(12)
        # Read in this order: games only grow, so no more watchers are open than games were made.
        open_then = load.report.websockets_open
        games_then = len(load.games)
    report = load.report
    assert report.clean, report.details()
    assert report.moves > 20 and report.ai_replies >= 10
    assert report.requests > report.moves
    assert 0 < open_then <= games_then  # one watcher per game
    assert report.websockets_open == 0  # every watcher closed once the load stopped


def test_a_crash_that_loses_writes_is_counted(tmp_path: Path, engine: Server):
    backend = start_backend(tmp_path, engine.url)
    db = Path(backend.env["TENGEN_DB_PATH"])
    snapshot = tmp_path / "snapshot.db"
    with PlayerLoad(backend.url, humans=3, ai_players=1) as load:
        time.sleep(2)
        with sqlite3.connect(db) as live, sqlite3.connect(snapshot) as copy:
            live.backup(copy)
        acknowledged_at_snapshot = load.report.moves
        time.sleep(2)
        assert load.report.moves > acknowledged_at_snapshot
        backend.stop(signal.SIGKILL)
        # The database of an earlier moment comes back: every move acknowledged since is gone.
        for leftover in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            leftover.unlink(missing_ok=True)
        shutil.copy(snapshot, db)
        time.sleep(1)
        restarted = start_python("tengen_app", APP_DIR, backend.env, f"{backend.url}/healthz", backend.log)
        time.sleep(3)
    restarted.terminate()
    restarted.wait(timeout=20)
    report = load.report
    assert not report.clean
    assert any("Errno 111" in f or "Connect" in f for f in report.failures), report.failures[:5]
    assert any("WebSocket" in f for f in report.failures), report.failures[:5]
    assert any("not stored" in lost for lost in report.lost), report.summary()
