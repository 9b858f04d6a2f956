"""The backend's HTTP API and WebSockets, on a real server with SQLite and a real engine gateway."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import sqlite3
import subprocess
import sys

import aiohttp
import pytest

from tests.service_servers import APP_DIR, Server, create, next_game, play, request, start_backend


def test_health_ready_and_metrics(backend: Server) -> None:
    assert request("GET", f"{backend.url}/healthz") == (200, {"status": "ok"})
    assert request("GET", f"{backend.url}/readyz") == (200, {"status": "ready", "engine": "up"})

    def created() -> float:
        status, text = request("GET", f"{backend.url}/metrics")
        assert status == 200
        assert "tengen_websockets_open" in text and "tengen_engine_wait_seconds_count" in text
        line = 'tengen_http_requests_total{method="POST",route="/api/games",status="201"} '
        return sum(float(row[len(line) :]) for row in text.splitlines() if row.startswith(line))

    before = created()
    create(backend, size=9)
    assert created() == before + 1


def test_logs_are_json_lines(backend: Server) -> None:
    request("GET", f"{backend.url}/api/games/0000000000000000")
    lines = [line for line in backend.output().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]
    assert any(
        e["msg"] == "request" and e["status"] == 404 and e["path"].endswith("/0000000000000000")
        for e in entries
    )
    assert not any(e.get("path") == "/healthz" for e in entries)  # probes stay out of the info log


def test_two_players_over_http_and_websocket(backend: Server) -> None:
    game, tokens = create(backend, size=9, opponent="human", komi=6.5)
    assert set(tokens) == {"B", "W"} and game["ai_color"] is None

    async def flow() -> list[dict]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{backend.url}/ws/games/{game['id']}") as ws:
                seen = [await next_game(ws)]
                for color, move in (("B", "E5"), ("W", "C3"), ("B", "pass"), ("W", "pass")):
                    status, _ = await asyncio.to_thread(play, backend, game["id"], tokens[color], move)
                    assert status == 200
                    seen.append(await next_game(ws))
                return seen

    seen = asyncio.run(flow())
    assert [len(g["moves"]) for g in seen] == [0, 1, 2, 3, 4]
    final = seen[-1]
    assert final["status"] == "finished" and final["to_play"] is None
    assert final["result"] == final["score"]["result"]
    assert final["board"][4][4] == "B" and final["board"][6][2] == "W"
    status, sgf = request("GET", f"{backend.url}/api/games/{game['id']}/sgf")
    assert status == 200 and "KM[6.5]" in sgf and ";B[ee];W[cg];B[];W[]" in sgf


def test_the_ai_answers_over_the_websocket(backend: Server) -> None:
    game, tokens = create(backend, size=9, opponent="ai", color="black")
    assert set(tokens) == {"B"} and game["ai_color"] == "W"

    async def flow() -> dict:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{backend.url}/ws/games/{game['id']}") as ws:
                await next_game(ws)
                status, _ = await asyncio.to_thread(play, backend, game["id"], tokens["B"], "E5")
                assert status == 200
                assert len((await next_game(ws))["moves"]) == 1
                return await next_game(ws)

    after = asyncio.run(flow())
    assert len(after["moves"]) == 2 and after["moves"][1][0] == "W"
    assert after["to_play"] == "B"
    # The AI's stone is on the board (GNU Go does not pass or resign on move 2).
    assert sum(row.count("W") for row in after["board"]) == 1
    assert 'tengen_moves_total{by="ai"}' in request("GET", f"{backend.url}/metrics")[1]


def test_the_ai_opens_when_the_player_takes_white(backend: Server) -> None:
    game, tokens = create(backend, size=13, color="white")
    assert set(tokens) == {"W"} and game["ai_color"] == "B"

    async def flow() -> dict:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{backend.url}/ws/games/{game['id']}") as ws:
                state = await next_game(ws)
                while not state["moves"]:
                    state = await next_game(ws)
                return state

    assert asyncio.run(flow())["moves"][0][0] == "B"


def test_resign_ends_the_game(backend: Server) -> None:
    game, tokens = create(backend, size=19, opponent="human")
    status, data = play(backend, game["id"], tokens["B"], "resign")
    assert status == 200 and data["result"] == "W+R" and data["status"] == "finished" and "score" not in data


BAD_CREATE = [
    ({"size": 7}, "size"),
    ({"size": "9"}, "size"),
    ({"size": 9, "komi": "a lot"}, "komi"),
    ({"size": 9, "komi": 6.3}, "komi"),
    ({"size": 9, "opponent": "robot"}, "opponent"),
    ({"size": 9, "color": "green"}, "color"),
]


@pytest.mark.parametrize(("body", "word"), BAD_CREATE)
def test_bad_new_games_are_refused(backend: Server, body: dict, word: str) -> None:
    status, data = request("POST", f"{backend.url}/api/games", body)
    assert status == 400 and word in data["error"]


def test_bad_bodies_are_refused(backend: Server) -> None:
    assert request("POST", f"{backend.url}/api/games", raw=b"{not json")[0] == 400
    assert request("POST", f"{backend.url}/api/games", raw=b"[1, 2]")[0] == 400
    status, data = request(
        "POST", f"{backend.url}/api/games", raw=b'{"size": 9, "x": "' + b"a" * 100_000 + b'"}'
    )
    assert status == 413 and "larger" in data["error"]
    assert request("GET", f"{backend.url}/api/nothing-here")[0] == 404


def test_bad_moves_change_nothing(backend: Server) -> None:
    game, tokens = create(backend, size=9, opponent="human")
    gid = game["id"]
    assert play(backend, gid, tokens["B"], "E5")[0] == 200
    before = request("GET", f"{backend.url}/api/games/{gid}")[1]
    cases = [
        (play(backend, gid, tokens["W"], "E5"), 409, "occupied"),
        (play(backend, gid, tokens["B"], "D4"), 409, "turn"),
        (play(backend, gid, tokens["W"], "Z9"), 400, "vertex"),
        (play(backend, gid, "not-a-token", "D4"), 403, "token"),
        (request("POST", f"{backend.url}/api/games/{gid}/moves", {"move": "D4"}), 401, "token"),
        (
            request("POST", f"{backend.url}/api/games/{gid}/moves", {"token": tokens["W"], "move": 5}),
            400,
            "move",
        ),
        (request("POST", f"{backend.url}/api/games/{gid}/moves", raw=b"{oops"), 400, "JSON"),
        (play(backend, "0000000000000000", tokens["W"], "D4"), 404, "no game"),
    ]
    for (status, data), want_status, word in cases:
        assert status == want_status, data
        assert word in data["error"]
    assert request("GET", f"{backend.url}/api/games/{gid}")[1] == before
    assert request("GET", f"{backend.url}/api/games/0000000000000000")[0] == 404
    assert request("GET", f"{backend.url}/api/games/0000000000000000/sgf")[0] == 404


def test_a_finished_game_takes_no_more_moves(backend: Server) -> None:
    game, tokens = create(backend, size=9, opponent="human")
    play(backend, game["id"], tokens["B"], "resign")
    before = request("GET", f"{backend.url}/api/games/{game['id']}")[1]
    status, data = play(backend, game["id"], tokens["W"], "E5")
    assert status == 409 and "over" in data["error"]
    assert request("GET", f"{backend.url}/api/games/{game['id']}")[1] == before


def test_games_survive_a_restart_and_sigterm_closes_websockets_with_1012(tmp_path, engine: Server) -> None:
    first = start_backend(tmp_path, engine.url)
    game, tokens = create(first, size=9, opponent="human")
    play(first, game["id"], tokens["B"], "C3")
    play(first, game["id"], tokens["W"], "G7")

    async def watch_then_terminate() -> tuple[int | None, int]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{first.url}/ws/games/{game['id']}") as ws:
                await next_game(ws)
                first.proc.send_signal(signal.SIGTERM)
                msg = await asyncio.wait_for(ws.receive(), 20)
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                code = ws.close_code
        return code, await asyncio.to_thread(first.proc.wait, 20)

    close_code, exit_code = asyncio.run(watch_then_terminate())
    assert close_code == 1012
    assert exit_code == 0
    with sqlite3.connect(tmp_path / "tengen.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    second = start_backend(tmp_path, engine.url)
    try:
        status, data = request("GET", f"{second.url}/api/games/{game['id']}")
        assert status == 200 and data["moves"] == [["B", "C3"], ["W", "G7"]]
        assert play(second, game["id"], tokens["B"], "E5")[0] == 200
    finally:
        second.stop()


def test_migrate_is_safe_to_run_twice(tmp_path) -> None:
    env = {"TENGEN_DB_PATH": str(tmp_path / "m.db"), "PATH": "/usr/bin:/bin"}
    outputs = []
    for _ in range(2):
        run = subprocess.run(
            [sys.executable, "-m", "tengen_app", "migrate"],
            cwd=APP_DIR,
            env=env,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stderr
        outputs.append(json.loads(run.stdout.splitlines()[-1])["applied"])
    assert outputs[0] >= 1 and outputs[1] == 0
    with sqlite3.connect(tmp_path / "m.db") as db:
        assert db.execute("SELECT count(*) FROM games").fetchone() == (0,)


def metric(server: Server, name: str) -> float:
    """The value of one unlabelled sample of the backend's /metrics."""
    status, text = request("GET", f"{server.url}/metrics")
    assert status == 200
    values = [float(row.split()[1]) for row in text.splitlines() if row.split(" ")[0] == name]
    assert len(values) == 1, (name, text)
    return values[0]


async def next_event(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 20) -> dict:
    while True:
        msg = await asyncio.wait_for(ws.receive(), timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data = json.loads(msg.data)
        if data["type"] == kind:
            return data


def test_the_backend_stays_ready_without_the_engine_and_the_ai_waits_for_it(tmp_path) -> None:
    from tests.service_servers import free_port, start_engine

    port = free_port()
    server = start_backend(tmp_path, f"http://127.0.0.1:{port}", TENGEN_ENGINE_PROBE_SECONDS="0.5")
    engine = None
    try:
        assert metric(server, "tengen_engine_available") == 0  # probed before the backend serves
        # Ready: the database answers; the engine's state is reported, not required.
        assert request("GET", f"{server.url}/readyz") == (200, {"status": "ready", "engine": "down"})
        game, tokens = create(server, size=9, color="white")  # the AI (black) opens
        assert game["engine"]["status"] == "down"

        async def flow() -> tuple[dict, dict, dict]:
            nonlocal engine
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(f"{server.url}/ws/games/{game['id']}") as ws:
                    assert (await next_game(ws))["moves"] == []
                    waiting = await next_event(ws, "engine")
                    url = f"{server.url}/api/games/{game['id']}"
                    status, seen = await asyncio.to_thread(request, "GET", url)
                    assert status == 200
                    engine = await asyncio.to_thread(start_engine, tmp_path, port)
                    state = await next_game(ws, timeout=30)
                    return waiting, seen, state

        waiting, seen, state = asyncio.run(flow())
        assert waiting["status"] == "waiting" and waiting["reason"] == "engine request failed"
        assert 0 < waiting["retry_in"] <= 10
        assert seen["moves"] == [] and seen["engine"] == {"status": "down", "reason": "engine request failed"}
        assert state["moves"][0][0] == "B" and state["engine"] == {"status": "up", "reason": None}
        assert metric(server, "tengen_engine_errors_total") >= 1
        assert metric(server, "tengen_engine_available") == 1
        assert request("GET", f"{server.url}/readyz") == (200, {"status": "ready", "engine": "up"})
        assert request("GET", f"{server.url}/healthz")[0] == 200
    finally:
        server.stop()
        if engine is not None:
            engine.stop()


def test_an_ai_move_gives_up_after_the_retry_budget_and_says_why(tmp_path) -> None:
    from tests.service_servers import free_port

    server = start_backend(tmp_path, f"http://127.0.0.1:{free_port()}", TENGEN_ENGINE_RETRY_SECONDS="2")
    try:
        game, _ = create(server, size=9, color="white")

        async def flow() -> tuple[list[dict], dict]:
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(f"{server.url}/ws/games/{game['id']}") as ws:
                    await next_game(ws)
                    waits = []
                    while True:
                        msg = json.loads((await asyncio.wait_for(ws.receive(), 20)).data)
                        if msg["type"] == "error":
                            return waits, msg
                        if msg["type"] == "engine":
                            waits.append(msg)

        waits, error = asyncio.run(flow())
        # Backoff: 0.5 s, then twice as long each time, the last pause cut to what is left of the
        # 2 s budget, then one more try and the error; never a pause announced but not waited.
        # (The first pause may come before the WebSocket is open.)
        delays = [w["retry_in"] for w in waits]
        steady, last = delays[:-1], delays[-1]
        assert steady and all(d in (0.5, 1.0) for d in steady), delays
        assert all(b == 2 * a for a, b in itertools.pairwise(steady)), delays
        assert 0 < last <= 2 * steady[-1] and sum(delays) <= 2, delays
        assert error["error"] == "the engine is not answering (engine request failed); reload to try again"
        assert request("GET", f"{server.url}/readyz")[0] == 200
    finally:
        server.stop()
