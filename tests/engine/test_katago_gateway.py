"""The gateway's KataGo paths, run against the fake KataGo (tests/engine/fake_katago.py).

KataGo itself cannot be had on the test machines; the fake checks its command line and speaks
KataGo's GTP dialect (kata-set-rules, kata-raw-nn) so that every KataGo-only path of the
gateway runs here. What it cannot stand in for: KataGo's strength, speed and memory.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tengen_app.rules import Game

from tests.engine.conftest import FAKE_KATAGO, KATAGO_CONFIG
from tests.engine.test_engine_gateway import children, metric, wait_until
from tests.service_servers import ENGINE_DIR, request

MOVES = [["B", "E5"], ["W", "C3"], ["B", "D4"]]


def test_the_command_line_carries_the_configuration(start_katago) -> None:
    katago = start_katago(
        TENGEN_KATAGO_MAX_VISITS="42", TENGEN_KATAGO_MAX_TIME="3.5", TENGEN_KATAGO_THREADS="2"
    )
    (start,) = katago.events("start")
    assert start["argv"] == [
        "gtp",
        "-model",
        str(katago.model),
        "-config",
        str(KATAGO_CONFIG),
        "-override-config",
        "maxVisits=42,maxTime=3.5,numSearchThreads=2",
    ]
    # The fake accepted that command line and our config file (it refuses unknown keys).
    assert [e["event"] for e in katago.events()][:3] == ["start", "ready", "command"]
    assert request("GET", f"{katago.server.url}/readyz") == (200, {"status": "ready", "engine": "katago"})


def run_gateway(env: dict, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run the gateway in the foreground until it exits (it should: its engine cannot start)."""
    return subprocess.run(
        [sys.executable, "-m", "tengen_engine"],
        cwd=ENGINE_DIR,
        env={**os.environ, "TENGEN_ENGINE": "katago", "TENGEN_KATAGO_BIN": str(FAKE_KATAGO), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_an_engine_refusing_its_command_line_stops_the_gateway_with_a_message(tmp_path) -> None:
    done = run_gateway(
        {
            "TENGEN_KATAGO_MODEL": str(tmp_path / "missing.bin.gz"),
            "TENGEN_KATAGO_CONFIG": str(KATAGO_CONFIG),
            "TENGEN_ENGINE_PORT": "0",
        }
    )
    assert done.returncode == 1
    assert "the engine did not start: the engine exited with code 1 before answering" in done.stderr
    assert "Could not open model file" in done.stderr  # KataGo's own reason, from its stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_an_engine_stuck_while_loading_is_given_up_after_the_start_timeout(tmp_path) -> None:
    model = tmp_path / "model.bin.gz"
    model.write_bytes(b"x")
    done = run_gateway(
        {
            "TENGEN_KATAGO_MODEL": str(model),
            "TENGEN_KATAGO_CONFIG": str(KATAGO_CONFIG),
            "TENGEN_ENGINE_PORT": "0",
            "TENGEN_ENGINE_START_TIMEOUT": "1",
            "FAKE_KATAGO_LOAD_SECONDS": "600",
        }
    )
    assert done.returncode == 1
    assert "the engine did not start: the engine did not answer within 1 s of starting" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("rules", ["chinese", "japanese"])
def test_a_move_under_each_rule_set(katago, rules: str) -> None:
    body = {"size": 9, "komi": 6.5, "rules": rules, "moves": MOVES, "color": "W"}
    status, data = request("POST", f"{katago.server.url}/move", body)
    assert status == 200, data
    assert data["engine"] == "KataGo"
    Game(9, 6.5, MOVES).play("W", data["move"])  # raises if the move is not legal here
    # The rules go in before komi and the moves, so that KataGo judges the moves under them.
    assert katago.commands()[-9:] == [
        "boardsize 9",
        "clear_board",
        f"kata-set-rules {rules}",
        "komi 6.5",
        "play B E5",
        "play W C3",
        "play B D4",
        "kata-set-param maxVisits 100",  # the gateway's own strength: the request names none
        "genmove W",
    ]


@pytest.mark.parametrize(
    ("moves", "why"),
    [
        ([["B", "E5"], ["W", "E5"]], "occupied"),
        ([["B", "A2"], ["W", "pass"], ["B", "B1"], ["W", "A1"]], "suicide"),
    ],
)
def test_an_illegal_move_is_refused_and_the_engine_stays_in_step(katago, moves, why) -> None:
    status, data = request("POST", f"{katago.server.url}/move", {"size": 9, "moves": moves, "color": "B"})
    assert status == 422 and "illegal move" in data["error"], (why, data)
    status, data = request("POST", f"{katago.server.url}/move", {"size": 9, "moves": MOVES, "color": "W"})
    assert status == 200 and data["move"] not in ("E5", "C3", "D4")


@pytest.mark.parametrize("size", [2, 3, 9, 19])
def test_analysis_gives_black_win_rate_score_lead_and_ownership(katago, size: int) -> None:
    moves = [["B", "A1"], ["W", "B2"]] if size < 9 else MOVES
    black = {v for c, v in moves if c == "B"}
    color = "B" if len(moves) % 2 == 0 else "W"
    body = {"size": size, "komi": 7.5, "moves": moves, "color": color, "ownership": True}
    status, data = request("POST", f"{katago.server.url}/analyze", body)
    assert status == 200, data
    assert katago.commands()[-1] == "kata-raw-nn 0"
    assert set(data) == {
        "black_win_rate",
        "white_win_rate",
        "black_score_lead",
        "best_moves",
        "ownership",
        "to_play",
        "engine",
    }
    # The fake's network: White leads by komi + White's stones - Black's, win rate 0.5 + lead / 40.
    white_lead = 7.5 + (len(moves) - len(black)) - len(black)
    assert data["black_score_lead"] == -white_lead
    assert data["black_win_rate"] == pytest.approx(1 - min(0.99, 0.5 + white_lead / 40))
    assert data["black_win_rate"] + data["white_win_rate"] == pytest.approx(1)
    assert data["to_play"] == color and data["engine"] == "KataGo"
    # One value per point, keyed by vertex, from Black's side.
    ownership = data["ownership"]
    assert len(ownership) == size * size
    for vertex in black:
        assert ownership[vertex] > 0
    for color, vertex in moves:
        if color == "W":
            assert ownership[vertex] < 0
    assert all(value == 0 for vertex, value in ownership.items() if vertex not in {v for _, v in moves})
    # The network's favourite moves: legal points of the board or a pass, never an occupied one.
    played = {v for _, v in moves}
    assert 1 <= len(data["best_moves"]) <= 5
    for best in data["best_moves"]:
        assert best["move"] not in played and 0 <= best["prior"] <= 1
        assert best["move"] == "pass" or best["move"] in ownership


def test_analysis_without_ownership_leaves_it_out(katago) -> None:
    status, data = request("POST", f"{katago.server.url}/analyze", {"size": 9, "moves": MOVES, "color": "W"})
    assert status == 200 and "ownership" not in data and "symmetry" not in data


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"size": 9, "moves": MOVES, "color": "B"}, "W here"),
        ({"size": 9, "moves": [], "color": "W"}, "B here"),
        ({"size": 9, "moves": [], "color": "B", "ownership": "yes"}, "ownership"),
        ({"size": 9, "komi": 6.3, "moves": [], "color": "B"}, "multiple of 0.5"),
    ],
)
def test_analysis_refuses_a_question_kata_raw_nn_cannot_answer(katago, body, word) -> None:
    before = len(katago.commands())
    status, data = request("POST", f"{katago.server.url}/analyze", body)
    assert status == 400 and word in data["error"], data
    assert len(katago.commands()) == before  # refused before the engine was asked


def test_a_slow_start_does_not_delay_the_timeout(start_katago) -> None:
    # A request whose engine hangs answers 504 at its deadline while the replacement is still
    # loading: the fake is held in its load until released, so the order is certain.
    katago = start_katago(TENGEN_ENGINE_TIMEOUT="1", TENGEN_KATAGO_MAX_TIME="0.5")
    katago.hold()
    katago.trap("hang", "genmove")
    status, data = request("POST", f"{katago.server.url}/move", {"size": 9, "moves": MOVES, "color": "W"})
    assert status == 504 and "no answer" in data["error"]
    wait_until(lambda: len(katago.events("holding")) == 1)  # the replacement is loading
    assert len(katago.events("ready")) == 1
    assert request("GET", f"{katago.server.url}/readyz")[0] == 503  # loading: not ready
    # A request in the meantime waits for a free process only until its own deadline.
    status, data = request("POST", f"{katago.server.url}/move", {"size": 9, "moves": MOVES, "color": "W"})
    assert status == 504, data
    assert len(katago.events("ready")) == 1
    katago.release()
    wait_until(lambda: len(katago.events("ready")) == 2)
    wait_until(lambda: request("GET", f"{katago.server.url}/readyz")[0] == 200)
    status, data = request("POST", f"{katago.server.url}/move", {"size": 9, "moves": MOVES, "color": "W"})
    assert status == 200, data


def test_an_engine_dying_mid_request_is_replaced_and_the_request_answered(start_katago) -> None:
    katago = start_katago()
    (old,) = children(katago.server.proc.pid)
    katago.trap("die", "genmove")
    status, data = request("POST", f"{katago.server.url}/move", {"size": 9, "moves": MOVES, "color": "W"})
    assert status == 200, data
    assert [e["action"] for e in katago.events("trap")] == ["die"]
    assert len(katago.events("start")) == 2
    assert old not in children(katago.server.proc.pid)
    assert metric(katago.server, "tengen_engine_restarts_total") == 1
    # The replacement serves the next requests, moves and analysis alike.
    status, data = request("POST", f"{katago.server.url}/move", {"size": 9, "moves": MOVES, "color": "W"})
    assert status == 200 and data["engine"] == "KataGo", data
    status, data = request("POST", f"{katago.server.url}/analyze", {"size": 9, "moves": MOVES, "color": "W"})
    assert status == 200 and 0 <= data["black_win_rate"] <= 1, data
    assert len(katago.events("start")) == 2


def test_a_death_while_the_replacement_loads_answers_at_the_deadline(start_katago) -> None:
    # The request that finds its engine dead restarts it itself, but only within its deadline:
    # the held replacement cannot answer, so a 504 proves the request did not wait for it.
    katago = start_katago(TENGEN_ENGINE_TIMEOUT="1", TENGEN_KATAGO_MAX_TIME="0.5")
    katago.hold()
    katago.trap("die", "genmove")
    status, data = request("POST", f"{katago.server.url}/move", {"size": 9, "moves": MOVES, "color": "W"})
    assert status == 504 and "no answer within 1 s" in data["error"], data
    assert len(katago.events("ready")) == 1
    katago.release()
    wait_until(lambda: request("GET", f"{katago.server.url}/readyz")[0] == 200)
    status, data = request("POST", f"{katago.server.url}/move", {"size": 9, "moves": MOVES, "color": "W"})
    assert status == 200 and data["engine"] == "KataGo", data
    # One process runs: those given up while loading were killed, not left behind.
    assert len(children(katago.server.proc.pid)) == 1


def test_a_hanging_engine_gives_504_and_is_replaced(start_katago) -> None:
    katago = start_katago(TENGEN_ENGINE_TIMEOUT="1", TENGEN_KATAGO_MAX_TIME="0.5")
    (old,) = children(katago.server.proc.pid)
    katago.trap("hang", "kata-raw-nn")
    body = {"size": 19, "moves": MOVES, "color": "W"}
    status, data = request("POST", f"{katago.server.url}/analyze", body)
    assert status == 504 and "no answer within 1 s" in data["error"]
    wait_until(lambda: len(katago.events("ready")) == 2)
    wait_until(lambda: old not in children(katago.server.proc.pid))
    status, data = request("POST", f"{katago.server.url}/analyze", body)
    assert status == 200 and 0 <= data["black_win_rate"] <= 1


def test_a_move_is_searched_at_the_visits_it_asks_for(katago) -> None:
    body = {"size": 9, "komi": 6.5, "moves": MOVES, "color": "W", "visits": 400}
    status, data = request("POST", f"{katago.server.url}/move", body)
    assert status == 200, data
    assert katago.commands()[-2:] == ["kata-set-param maxVisits 400", "genmove W"]
    # The next request without a strength is back at the gateway's own, in the same process.
    status, data = request("POST", f"{katago.server.url}/move", {**body, "visits": None})
    assert status == 200, data
    assert katago.commands()[-2:] == ["kata-set-param maxVisits 100", "genmove W"]


@pytest.mark.parametrize(
    ("field", "value"), [("visits", 0), ("visits", 10001), ("visits", "400"), ("gnugo_level", 11)]
)
def test_a_strength_out_of_bounds_is_refused(katago, field: str, value: object) -> None:
    body = {"size": 9, "komi": 6.5, "moves": MOVES, "color": "W", field: value}
    status, data = request("POST", f"{katago.server.url}/move", body)
    assert status == 400 and data["error"].startswith(field), data
