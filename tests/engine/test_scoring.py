"""POST /score: recorded end positions, their dead stones as each engine judges them, and the count.

GNU Go runs for real (`final_status_list dead`); KataGo's path (ownership from `kata-raw-nn`)
runs against the fake KataGo, whose ownership marks a lone stone inside a territory as dead.
"""

from __future__ import annotations

import pytest
from tengen_engine.board import Board, parse

from tests.service_servers import request

# Black walls column E, White column F (9x9); then a white stone dies inside Black's area
# (B5) and a black one inside White's (H5). Nobody captured anything.
WALLS = [m for row in range(1, 10) for m in (["B", f"E{row}"], ["W", f"F{row}"])]
DEAD_STONES = [*WALLS, ["B", "H5"], ["W", "B5"]]
# The same walls; White's B5 is captured during the game and White fills two points of its own.
CAPTURE = [*WALLS, ["B", "A5"], ["W", "B5"], ["B", "C5"], ["W", "H1"], ["B", "B4"], ["W", "H2"], ["B", "B6"]]

# (moves, rules) -> dead stones, Black's points, White's points (komi 7.5), result.
# Area: stones + territory. Territory: empty points and dead stones' points + prisoners.
EXPECTED = {
    ("dead", "chinese"): (["B5", "H5"], 45, 43.5, "B+1.5"),
    ("dead", "japanese"): (["B5", "H5"], 35 + 1 + 1, 26 + 1 + 1 + 7.5, "B+1.5"),
    ("capture", "chinese"): ([], 13 + 32, 11 + 25 + 7.5, "B+1.5"),
    ("capture", "japanese"): ([], 32 + 1, 25 + 7.5, "B+0.5"),
}
POSITIONS = {"dead": DEAD_STONES, "capture": CAPTURE}


@pytest.mark.parametrize("engine", ["gnugo", "katago"])
@pytest.mark.parametrize("rules", ["chinese", "japanese"])
def test_recorded_end_positions_score_correctly(start_gateway, katago, engine, rules) -> None:
    if engine == "gnugo":
        url = start_gateway(TENGEN_ENGINE_RULES=rules).url  # GNU Go plays one rule set per pool
    else:
        url = katago.server.url
    for label, moves in POSITIONS.items():
        dead, black, white, result = EXPECTED[(label, rules)]
        body = {"size": 9, "komi": 7.5, "rules": rules, "moves": moves}
        status, data = request("POST", f"{url}/score", body)
        assert status == 200, (label, data)
        assert data["dead"] == dead, (engine, label)
        assert data["score"] == {"B": black, "W": white}, (engine, label)
        assert data["result"] == result and data["rules"] == rules


def test_score_refuses_bad_input_and_illegal_moves(katago) -> None:
    url = katago.server.url
    status, data = request("POST", f"{url}/score", {"size": 9, "rules": "aga", "moves": []})
    assert status == 400 and "rules" in data["error"]
    status, data = request("POST", f"{url}/score", {"size": 9, "moves": [["B", "E5"], ["W", "E5"]]})
    assert status == 422 and "illegal move" in data["error"]


def test_the_board_replays_captures_and_counts_prisoners() -> None:
    board = Board(9, [(c, v) for c, v in CAPTURE])
    assert parse("B5") not in board.stones and board.captured == {"B": 0, "W": 1}
    assert board.stones[parse("A5")] == "B" and len(board.stones) == 24
    # A dead chain is taken off as a whole and counted as prisoners under japanese rules.
    board = Board(9, [(c, v) for c, v in DEAD_STONES])
    assert board.score({parse("B5")}, "japanese", 0.5) == {
        "score": {"B": 37.0, "W": 0.5},  # H5 alive: White's area is no territory
        "result": "B+36.5",
    }
    assert board.score(set(), "chinese", 0) == {"score": {"B": 10.0, "W": 10.0}, "result": "0"}
