"""The backend with several engine gateways (real GNU Go): balancing, an engine lost and taken back."""

from __future__ import annotations

import re
import signal
import time

import pytest

from tests.service_servers import Server, create, play, request, start_backend, start_engine


def engine_metrics(backend: Server) -> dict[tuple[str, str], float]:
    """{(metric, labels): value} of the backend's per-engine series."""
    text = request("GET", f"{backend.url}/metrics")[1]
    found = {}
    for line in text.splitlines():
        match = re.match(
            r"(tengen_engine_(?:up|inflight|requests_total|transitions_total))\{(.*)\} (\S+)$", line
        )
        if match:
            found[(match[1], match[2])] = float(match[3])
    return found


def answered(backend: Server, engine: Server) -> float:
    return engine_metrics(backend).get(
        ("tengen_engine_requests_total", f'engine="{engine.url}",outcome="ok"'), 0
    )


def up(backend: Server, engine: Server) -> float:
    return engine_metrics(backend)[("tengen_engine_up", f'engine="{engine.url}"')]


def wait_until(predicate, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.1)


CANDIDATES = [f"{column}{row}" for row in (5, 3, 7, 4, 6, 2, 8) for column in "EGCDFHBJA"]


def free_vertex(backend: Server, game_id: str) -> str:
    taken = {vertex for _, vertex in request("GET", f"{backend.url}/api/games/{game_id}")[1]["moves"]}
    return next(vertex for vertex in CANDIDATES if vertex not in taken)


def ai_turns(backend: Server, games: list[tuple[dict, dict]], turns: int) -> None:
    """The player moves `turns` times in every game; each request succeeds and the AI answers each."""
    for _ in range(turns):
        for game, tokens in games:
            status, data = play(backend, game["id"], tokens["B"], free_vertex(backend, game["id"]))
            assert status == 200, data
        for game, _ in games:
            wait_until(
                lambda g=game: request("GET", f"{backend.url}/api/games/{g['id']}")[1]["to_play"] == "B",
                timeout=60,
                what=f"the AI's reply in {game['id']}",
            )


@pytest.fixture
def two_engines(tmp_path):
    engines = [start_engine(tmp_path, TENGEN_ENGINE_PROCESSES="1") for _ in range(2)]
    yield engines
    for engine in engines:
        engine.stop()


def test_moves_spread_over_engines_and_survive_one_lost_and_restarted(tmp_path, two_engines) -> None:
    one, two = two_engines
    backend = start_backend(
        tmp_path,
        "",
        TENGEN_ENGINE_URLS=f"{one.url},{two.url}",
        TENGEN_ENGINE_PROBE_INTERVAL="0.3",
        TENGEN_ENGINE_REQUEST_TIMEOUT="10",
    )
    try:
        games = [create(backend, size=9, opponent="ai", color="black") for _ in range(4)]
        ai_turns(backend, games, 2)
        assert answered(backend, one) > 0 and answered(backend, two) > 0  # both are used

        one.stop(signal.SIGKILL)
        before = answered(backend, two)
        ai_turns(backend, games, 2)  # every player request answered, every AI reply comes
        assert up(backend, one) == 0
        assert answered(backend, two) >= before + 8

        restarted = start_engine(
            tmp_path, TENGEN_ENGINE_PORT=one.url.rsplit(":", 1)[1], TENGEN_ENGINE_PROCESSES="1"
        )
        two_engines.append(restarted)
        wait_until(lambda: up(backend, one) == 1, what="the restarted engine taken back")
        before = answered(backend, one)
        ai_turns(backend, games, 2)
        assert answered(backend, one) > before  # used again
        series = engine_metrics(backend)
        assert series[("tengen_engine_transitions_total", f'engine="{one.url}",to="down"')] == 1
        assert series[("tengen_engine_transitions_total", f'engine="{one.url}",to="up"')] == 1
    finally:
        backend.stop()


def test_every_engine_down_a_move_waits_and_is_answered_when_one_comes_back(tmp_path) -> None:
    from tests.conftest import free_port

    port = free_port()
    backend = start_backend(
        tmp_path,
        f"http://127.0.0.1:{port}",
        TENGEN_ENGINE_PROBE_INTERVAL="0.3",
        TENGEN_ENGINE_TIMEOUT="60",
    )
    engine = None
    try:
        game, tokens = create(backend, size=9, opponent="ai", color="black")
        status, data = play(backend, game["id"], tokens["B"], "E5")
        assert status == 200, data
        time.sleep(2)  # the first attempt has failed: the engine is out, the move waits
        assert request("GET", f"{backend.url}/api/games/{game['id']}")[1]["to_play"] == "W"
        engine = start_engine(tmp_path, TENGEN_ENGINE_PORT=str(port))
        wait_until(
            lambda: request("GET", f"{backend.url}/api/games/{game['id']}")[1]["to_play"] == "B",
            what="the AI's reply once an engine is back",
        )
    finally:
        backend.stop()
        if engine is not None:
            engine.stop()


def test_a_single_engine_url_still_works(backend: Server, engine: Server) -> None:
    game, tokens = create(backend, size=9, opponent="ai", color="black")
    ai_turns(backend, [(game, tokens)], 1)
    assert answered(backend, engine) >= 1 and up(backend, engine) == 1


def test_bad_engine_urls_are_refused_at_start() -> None:
    from tengen_app.engine import parse_urls

    assert parse_urls(" http://a:8001/ , http://b:8001,http://a:8001") == ["http://a:8001", "http://b:8001"]
    with pytest.raises(ValueError, match="must start with http"):
        parse_urls("http://a:8001,b:8001")
    with pytest.raises(ValueError, match="no engine URL"):
        parse_urls(" , ")


def test_a_frozen_engine_times_out_is_taken_out_and_back_when_it_thaws(tmp_path, two_engines) -> None:
    slow, fine = two_engines
    backend = start_backend(
        tmp_path,
        "",
        TENGEN_ENGINE_URLS=f"{slow.url},{fine.url}",
        TENGEN_ENGINE_PROBE_INTERVAL="0.3",
        TENGEN_ENGINE_REQUEST_TIMEOUT="2",
    )
    try:
        games = [create(backend, size=9, opponent="ai", color="black") for _ in range(3)]
        slow.proc.send_signal(signal.SIGSTOP)  # it accepts connections and never answers
        ai_turns(backend, games, 2)
        assert up(backend, slow) == 0
        assert answered(backend, slow) == 0 and answered(backend, fine) >= 6
        slow.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: up(backend, slow) == 1, what="the thawed engine taken back")
    finally:
        slow.proc.send_signal(signal.SIGCONT)
        backend.stop()


def test_the_backend_sends_the_engine_secret_and_a_wrong_one_keeps_the_engine_out(tmp_path) -> None:
    token = "s3cret-0123456789abcdef"
    engine = start_engine(tmp_path, TENGEN_ENGINE_TOKEN=token)
    right = start_backend(tmp_path, engine.url, TENGEN_ENGINE_TOKEN=token)
    wrong = start_backend(
        tmp_path,
        engine.url,
        TENGEN_ENGINE_TOKEN=token + "x",
        TENGEN_ENGINE_PROBE_INTERVAL="0.3",
        TENGEN_ENGINE_TIMEOUT="3",
    )
    try:
        game, tokens = create(right, size=9, opponent="ai", color="black")
        ai_turns(right, [(game, tokens)], 1)
        assert answered(right, engine) == 1

        game, tokens = create(wrong, size=9, opponent="ai", color="black")
        assert play(wrong, game["id"], tokens["B"], "E5")[0] == 200
        failed = ("tengen_engine_requests_total", f'engine="{engine.url}",outcome="failed"')
        wait_until(lambda: engine_metrics(wrong).get(failed, 0) >= 1, what="the refused request")
        time.sleep(1)  # several probes: /readyz passes, /metrics refuses the token, so it stays out
        assert up(wrong, engine) == 0
        assert request("GET", f"{wrong.url}/api/games/{game['id']}")[1]["to_play"] == "W"
    finally:
        for server in (right, wrong, engine):
            server.stop()


def test_readiness_does_not_wait_for_a_frozen_engine(tmp_path, two_engines) -> None:
    frozen, fine = two_engines
    backend = start_backend(tmp_path, "", TENGEN_ENGINE_URLS=f"{frozen.url},{fine.url}")
    frozen.proc.send_signal(signal.SIGSTOP)  # its probe would take the whole 3 s timeout
    try:
        started = time.monotonic()
        status, data = request("GET", f"{backend.url}/readyz")
        assert status == 200, data
        assert time.monotonic() - started < 2.5
    finally:
        frozen.proc.send_signal(signal.SIGCONT)
        backend.stop()


def test_an_engine_that_stops_answering_mid_game_hands_its_moves_to_another(tmp_path, two_engines) -> None:
    """An engine VM that vanishes leaves the backend's pooled connections to it open, with no
    reset: a move sent on one would wait out the request timeout (300 s here, longer than the
    players wait). The probes take the engine out and the moves it holds go to the other one."""
    lost, fine = two_engines
    backend = start_backend(
        tmp_path,
        "",
        TENGEN_ENGINE_URLS=f"{lost.url},{fine.url}",
        TENGEN_ENGINE_PROBE_INTERVAL="0.3",
        TENGEN_ENGINE_REQUEST_TIMEOUT="300",
        TENGEN_ENGINE_TIMEOUT="600",
    )
    try:
        games = [create(backend, size=9, opponent="ai", color="black") for _ in range(4)]
        ai_turns(backend, games, 2)
        assert answered(backend, lost) > 0  # it holds pooled connections now
        lost.proc.send_signal(signal.SIGSTOP)
        ai_turns(backend, games, 2)  # each AI reply within ai_turns' wait, none waits 300 s
        assert up(backend, lost) == 0 and up(backend, fine) == 1
        lost.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: up(backend, lost) == 1, what="the engine taken back once it answers")
    finally:
        lost.proc.send_signal(signal.SIGCONT)
        backend.stop()
