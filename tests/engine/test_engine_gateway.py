"""The engine gateway with real GNU Go processes behind it."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tengen_app.rules import Game

from tests.service_servers import Server, request


def children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def metric(server: Server, name: str) -> float:
    text = request("GET", f"{server.url}/metrics")[1]
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def wait_until(predicate, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_health_and_readiness(gateway: Server) -> None:
    assert request("GET", f"{gateway.url}/healthz") == (200, {"status": "ok"})
    assert request("GET", f"{gateway.url}/readyz") == (200, {"status": "ready", "engine": "gnugo"})
    assert len(children(gateway.proc.pid)) == 2


@pytest.mark.parametrize("size", [9, 13, 19])
def test_a_legal_move_comes_back(gateway: Server, size: int) -> None:
    moves = [["B", "C3"], ["W", "pass"], ["B", "D4"]]
    status, data = request(
        "POST", f"{gateway.url}/move", {"size": size, "komi": 7.5, "moves": moves, "color": "W"}
    )
    assert status == 200, data
    assert data["engine"] == "GNU Go"
    game = Game(size, 7.5, moves)
    game.play("W", data["move"])  # raises if the move is not legal here
    assert data["move"] != "pass"  # an almost empty board: GNU Go plays a stone


@pytest.mark.parametrize("level", [1, 10])
def test_gnu_go_plays_at_the_level_asked_for(gateway: Server, level: int) -> None:
    # GNU Go takes the level by GTP (`level N`) before each move: a refused command would be a 422.
    moves = [["B", "C3"], ["W", "pass"], ["B", "D4"]]
    body = {"size": 9, "komi": 7.5, "moves": moves, "color": "W", "gnugo_level": level}
    status, data = request("POST", f"{gateway.url}/move", body)
    assert status == 200, data
    Game(9, 7.5, moves).play("W", data["move"])


def test_pass_is_lower_case(gateway: Server) -> None:
    # Black owns the whole 5x5 board bar one point: White has nothing useful to play.
    moves = []
    for vertex in ("A1", "B2", "C3", "D4", "E5", "A3", "B4", "C5", "E1", "D2"):
        moves += [["B", vertex], ["W", "pass"]]
    status, data = request(
        "POST", f"{gateway.url}/move", {"size": 5, "komi": 0.5, "moves": moves, "color": "W"}
    )
    assert status == 200 and data["move"] in ("pass", "resign"), data


BAD = [
    ({"komi": 7.5, "moves": [], "color": "B"}, "size"),
    ({"size": 25, "moves": [], "color": "B"}, "size"),
    ({"size": 9, "komi": "x", "color": "B"}, "komi"),
    ({"size": 9, "color": "green"}, "color"),
    ({"size": 9, "color": "B", "rules": "tromp-taylor"}, "rules"),
    ({"size": 9, "color": "B", "rules": "japanese"}, "chinese rules only"),
    ({"size": 9, "color": "B", "moves": "E5"}, "moves"),
    ({"size": 9, "color": "B", "moves": [["B", "Z9"]]}, "moves[0]"),
    ({"size": 9, "color": "B", "moves": [["B"]]}, "moves[0]"),
]


@pytest.mark.parametrize(("body", "word"), BAD)
def test_bad_input_is_refused(gateway: Server, body: dict, word: str) -> None:
    status, data = request("POST", f"{gateway.url}/move", body)
    assert status == 400 and word in data["error"], data


def test_malformed_and_oversized_bodies(gateway: Server) -> None:
    assert request("POST", f"{gateway.url}/move", raw=b"{nope")[0] == 400
    assert request("POST", f"{gateway.url}/move", raw=b"[]")[0] == 400
    assert request("POST", f"{gateway.url}/move", raw=b'{"x": "' + b"a" * 200_000 + b'"}')[0] == 413


def test_an_illegal_position_is_refused_and_the_engine_stays_in_step(gateway: Server) -> None:
    body = {"size": 9, "moves": [["B", "E5"], ["W", "E5"]], "color": "B"}
    status, data = request("POST", f"{gateway.url}/move", body)
    assert status == 422 and "illegal" in data["error"]
    status, data = request("POST", f"{gateway.url}/move", {"size": 9, "moves": [["B", "E5"]], "color": "W"})
    assert status == 200 and data["move"] != "E5"


def test_analysis_needs_katago(gateway: Server) -> None:
    status, data = request("POST", f"{gateway.url}/analyze", {"size": 9, "color": "B"})
    assert status == 501 and "KataGo" in data["error"]


def test_a_full_queue_answers_503_at_once(start_gateway, busy_position) -> None:
    server = start_gateway(TENGEN_ENGINE_PROCESSES="1", TENGEN_ENGINE_QUEUE="1", TENGEN_GNUGO_LEVEL="5")
    slow = {"size": 19, "moves": busy_position, "color": "B"}
    results: dict[str, tuple] = {}

    def send(name: str) -> None:
        results[name] = request("POST", f"{server.url}/move", slow)

    first = threading.Thread(target=send, args=("first",))
    first.start()
    wait_until(lambda: metric(server, "tengen_engine_inflight") == 1)
    queued = threading.Thread(target=send, args=("queued",))
    queued.start()
    wait_until(lambda: metric(server, "tengen_engine_inflight") == 2)

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(f"{server.url}/move", data=json.dumps(slow).encode()))
    # The refusal came back while both earlier requests were still being served or queued.
    assert "first" not in results and "queued" not in results
    assert refused.value.code == 503 and refused.value.headers["Retry-After"] == "1"
    assert "full" in json.loads(refused.value.read())["error"]
    first.join(60)
    queued.join(60)
    assert results["first"][0] == 200 and results["queued"][0] == 200
    assert (
        'tengen_engine_requests_total{route="/move",status="503"} 1.0'
        in request("GET", f"{server.url}/metrics")[1]
    )


def test_a_killed_engine_process_is_replaced(start_gateway) -> None:
    server = start_gateway(TENGEN_ENGINE_PROCESSES="1")
    (old,) = children(server.proc.pid)  # the GNU Go process
    os.kill(old, signal.SIGKILL)
    # The next request gets a move from a fresh process, whether the watcher or the request found it dead.
    status, data = request("POST", f"{server.url}/move", {"size": 9, "moves": [["B", "E5"]], "color": "W"})
    assert status == 200, data
    wait_until(lambda: len(children(server.proc.pid) - {old}) == 1)
    assert old not in children(server.proc.pid)
    assert metric(server, "tengen_engine_restarts_total") == 1
    assert request("GET", f"{server.url}/readyz")[0] == 200


def test_an_idle_dead_process_is_replaced_by_the_watcher(start_gateway) -> None:
    server = start_gateway(TENGEN_ENGINE_PROCESSES="1")
    (old,) = children(server.proc.pid)
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: metric(server, "tengen_engine_restarts_total") == 1)
    wait_until(lambda: len(children(server.proc.pid) - {old}) == 1)


def test_a_slow_answer_times_out_and_the_process_is_replaced(start_gateway, busy_position) -> None:
    server = start_gateway(TENGEN_ENGINE_PROCESSES="1", TENGEN_ENGINE_TIMEOUT="0.3", TENGEN_GNUGO_LEVEL="5")
    (old,) = children(server.proc.pid)
    status, data = request("POST", f"{server.url}/move", {"size": 19, "moves": busy_position, "color": "B"})
    assert status == 504 and "no answer" in data["error"]
    status, data = request("POST", f"{server.url}/move", {"size": 9, "moves": [], "color": "B"})
    assert status == 200
    assert old not in children(server.proc.pid)


def test_the_queue_wait_is_measured_apart_from_the_thinking(start_gateway, busy_position) -> None:
    server = start_gateway(TENGEN_ENGINE_PROCESSES="1", TENGEN_ENGINE_QUEUE="2", TENGEN_GNUGO_LEVEL="5")
    slow = {"size": 19, "moves": busy_position, "color": "B"}
    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(request("POST", f"{server.url}/move", slow)[0]))
    first.start()
    wait_until(lambda: metric(server, "tengen_engine_inflight") == 1)
    # The second request finds the only process busy and waits for it.
    assert request("POST", f"{server.url}/move", slow)[0] == 200
    first.join(60)
    assert results == [200]
    assert metric(server, "tengen_engine_queue_wait_seconds_count") == 2
    # The first went straight to the process; the second waited while it thought (over 50 ms).
    assert metric(server, 'tengen_engine_queue_wait_seconds_bucket{le="0.05"}') == 1
    assert metric(server, "tengen_engine_queue_wait_seconds_sum") > 0.05
