"""Maintenance mode against real backends: writes refused with 503 + Retry-After, reads served,
WebSockets told and kept, no write half-applied, no AI move written once maintenance is on."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest

from tests.service_servers import (
    Postgres,
    Redis,
    Server,
    create,
    next_game,
    play,
    request,
    start_backend,
    start_engine,
)


def switch(path: Path, on: bool, reason: str = "moving to a bigger home", retry_after: int = 120) -> None:
    """Turn the flag on or off the way the playbook does: an atomic rename, or a removal."""
    if on:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"reason": reason, "retry_after": retry_after}))
        os.replace(tmp, path)
    else:
        path.unlink(missing_ok=True)


def wait_state(server: Server, active: bool, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, data = request("GET", f"{server.url}/maintenance")
        assert status == 200, data
        if data["active"] is active:
            return data
        assert time.monotonic() < deadline, f"{server.url} still reports {data}"
        time.sleep(0.05)


def post(url: str, body: dict) -> tuple[int, dict, dict]:
    """A POST that also returns the response headers."""
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


@pytest.fixture
def flagged(tmp_path: Path, engine: Server) -> Iterator[tuple[Server, Path]]:
    """A backend of its own (SQLite) whose flag file this test turns on and off."""
    flag = tmp_path / "maintenance.json"
    server = start_backend(tmp_path, engine.url, TENGEN_MAINTENANCE_FILE=str(flag))
    yield server, flag
    server.stop()


def test_writes_refused_reads_served_then_restored(flagged: tuple[Server, Path]) -> None:
    server, flag = flagged
    game, tokens = create(server, size=9, opponent="human")
    gid = game["id"]
    assert play(server, gid, tokens["B"], "E5")[0] == 200
    assert wait_state(server, False) == {"active": False}

    switch(flag, True, retry_after=90)
    state = wait_state(server, True)
    assert state["reason"] == "moving to a bigger home" and state["retry_after"] == 90
    for url, body in (
        (f"{server.url}/api/games/{gid}/moves", {"token": tokens["W"], "move": "C3"}),
        (f"{server.url}/api/games/{gid}/pass", {"token": tokens["W"]}),
        (f"{server.url}/api/games/{gid}/resign", {"token": tokens["W"]}),
        (f"{server.url}/api/games", {"size": 9}),
    ):
        status, headers, data = post(url, body)
        assert status == 503 and headers["Retry-After"] == "90", (url, status, data)
        assert "maintenance" in data["error"] and "moving to a bigger home" in data["error"]
        assert data["maintenance"]["retry_after"] == 90
    assert request("PUT", f"{server.url}/api/games/{gid}")[0] == 503
    assert request("DELETE", f"{server.url}/api/games/{gid}")[0] == 503
    status, data = request("GET", f"{server.url}/api/games/{gid}")
    assert status == 200 and data["moves"] == [["B", "E5"]] and data["version"] == 1
    status, sgf = request("GET", f"{server.url}/api/games/{gid}/sgf")
    assert status == 200 and "B[ee]" in sgf
    assert request("GET", f"{server.url}/readyz")[0] == 200  # still serving reads: stays behind the balancer

    switch(flag, False)
    wait_state(server, False)
    assert play(server, gid, tokens["W"], "C3")[0] == 200
    assert create(server, size=9)[0]["id"]


def test_websockets_are_told_and_stay_open(flagged: tuple[Server, Path]) -> None:
    server, flag = flagged
    game, tokens = create(server, size=9, opponent="human")

    async def flow() -> tuple[dict, dict, dict, dict]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{server.url}/ws/games/{game['id']}") as ws:
                await next_game(ws)
                await asyncio.to_thread(switch, flag, True)
                on = json.loads((await ws.receive(timeout=10)).data)
                # A player who joins during maintenance is told at once.
                async with session.ws_connect(f"{server.url}/ws/games/{game['id']}") as late:
                    await next_game(late)
                    late_on = json.loads((await late.receive(timeout=10)).data)
                await ws.send_str("ping")
                pong = json.loads((await ws.receive(timeout=10)).data)
                await asyncio.to_thread(switch, flag, False)
                off = json.loads((await ws.receive(timeout=10)).data)
                # Writes work again and still reach the same socket.
                assert (await asyncio.to_thread(play, server, game["id"], tokens["B"], "E5"))[0] == 200
                assert len((await next_game(ws))["moves"]) == 1
                assert not ws.closed
                return on, late_on, pong, off

    on, late_on, pong, off = asyncio.run(flow())
    assert on["type"] == "maintenance" and on["active"] is True and on["reason"] == "moving to a bigger home"
    assert on["retry_after"] == 120 and late_on == on | {"since": late_on["since"]}
    assert pong == {"type": "pong"}
    assert off == {"type": "maintenance", "active": False}


def test_writes_racing_the_switch_are_whole_or_refused(flagged: tuple[Server, Path]) -> None:
    """Players keep moving while the flag appears: each move answered 200 is stored, none after."""
    server, flag = flagged
    games = [create(server, size=19, opponent="human") for _ in range(8)]
    # Black fills the board from the bottom row, White from the top: no stone ever touches another
    # colour within the moves played here, so every move is legal until maintenance refuses it.
    columns = "ABCDEFGHJKLMNOPQRST"
    black = [f"{c}{row}" for row in range(1, 10) for c in columns]
    white = [f"{c}{row}" for row in range(19, 10, -1) for c in columns]
    accepted_so_far = []

    def play_game(index: int) -> list[tuple[str, int]]:
        game, tokens = games[index]
        answers = []
        for n in range(len(black) + len(white)):
            move = black[n // 2] if n % 2 == 0 else white[n // 2]
            status, _ = play(server, game["id"], tokens["BW"[n % 2]], move)
            answers.append((move, status))
            if status != 200:
                break
            accepted_so_far.append(move)
        return answers

    with ThreadPoolExecutor(len(games)) as pool:
        futures = [pool.submit(play_game, i) for i in range(len(games))]
        while len(accepted_so_far) < 40:  # switch while every player is in the middle of a game
            assert not any(f.done() for f in futures), [f.result() for f in futures if f.done()]
            time.sleep(0.01)
        switch(flag, True)
        results = [f.result(timeout=60) for f in futures]
    wait_state(server, True)

    for (game, _), answers in zip(games, results, strict=True):
        assert answers[-1][1] == 503 and {status for _, status in answers[:-1]} <= {200}, answers
        accepted = [move for move, status in answers if status == 200]
        status, data = request("GET", f"{server.url}/api/games/{game['id']}")
        assert status == 200
        assert [m[1] for m in data["moves"]] == accepted and data["version"] == len(accepted)


def test_an_ai_move_pending_at_the_switch_is_not_written(tmp_path: Path) -> None:
    """The engine (paused with SIGSTOP) answers only after maintenance is on: the move is dropped,
    and asked again once maintenance is off."""
    (tmp_path / "engine").mkdir()
    engine = start_engine(tmp_path / "engine", TENGEN_ENGINE_PROCESSES="1")
    flag = tmp_path / "maintenance.json"
    server = start_backend(tmp_path, engine.url, TENGEN_MAINTENANCE_FILE=str(flag))
    try:
        game, tokens = create(server, size=9, opponent="ai", color="black")
        engine.proc.send_signal(signal.SIGSTOP)
        try:
            assert play(server, game["id"], tokens["B"], "E5")[0] == 200
            time.sleep(0.5)  # the backend's request to the engine is on its way
            switch(flag, True)
            wait_state(server, True)
        finally:
            engine.proc.send_signal(signal.SIGCONT)
        # The engine answers once resumed; the backend reaches its write check and drops the move.
        deadline = time.monotonic() + 30
        while not any(
            json.loads(line).get("msg") == "engine move dropped: maintenance"
            for line in server.output().splitlines()
        ):
            assert time.monotonic() < deadline, "the engine's answer never reached the write check"
            time.sleep(0.1)
        status, data = request("GET", f"{server.url}/api/games/{game['id']}")
        assert status == 200 and data["moves"] == [["B", "E5"]] and data["version"] == 1

        switch(flag, False)
        wait_state(server, False)
        deadline = time.monotonic() + 20
        while len(data["moves"]) < 2:
            assert time.monotonic() < deadline, "the AI was not asked again after maintenance"
            time.sleep(0.2)
            data = request("GET", f"{server.url}/api/games/{game['id']}")[1]
        assert data["moves"][1][0] == "W" and data["version"] == 2
    finally:
        server.stop()
        engine.stop()


def test_two_replicas_on_postgresql_both_refuse(
    tmp_path: Path, engine: Server, postgres: Postgres, redis_server: Redis
) -> None:
    flag = tmp_path / "shared" / "maintenance.json"
    flag.parent.mkdir()
    env = {
        "DATABASE_URL": postgres.new_database(),
        "REDIS_URL": redis_server.url,
        "TENGEN_MAINTENANCE_FILE": str(flag),
    }
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    one = start_backend(tmp_path / "one", engine.url, **env)
    two = start_backend(tmp_path / "two", engine.url, **env)
    try:
        game, tokens = create(one, size=9, opponent="human")
        switch(flag, True, retry_after=30)
        for server in (one, two):
            wait_state(server, True)
            status, headers, _ = post(
                f"{server.url}/api/games/{game['id']}/moves", {"token": tokens["B"], "move": "E5"}
            )
            assert status == 503 and headers["Retry-After"] == "30"
            assert request("GET", f"{server.url}/api/games/{game['id']}")[0] == 200
        switch(flag, False)
        wait_state(two, False)
        assert play(two, game["id"], tokens["B"], "E5")[0] == 200
        assert request("GET", f"{one.url}/api/games/{game['id']}")[1]["version"] == 1
    finally:
        one.stop()
        two.stop()


@pytest.mark.parametrize(
    ("raw", "reason", "retry_after"),
    [
        (b'{"reason": "disk swap", "retry_after": 60}', "disk swap", 60),
        (b"", "scheduled maintenance", 300),
        (b"{not json", "scheduled maintenance", 300),
        (b'["a list"]', "scheduled maintenance", 300),
        (b'{"reason": " ", "retry_after": -5}', "scheduled maintenance", 300),
        (b'{"retry_after": true}', "scheduled maintenance", 300),
    ],
)
def test_any_flag_file_means_maintenance(tmp_path: Path, raw: bytes, reason: str, retry_after: int) -> None:
    from tengen_app.maintenance import Flag

    flag = Flag(str(tmp_path / "maintenance.json"))
    assert flag.read() is None
    (tmp_path / "maintenance.json").write_bytes(raw)
    notice = flag.read()
    assert notice is not None and (notice.reason, notice.retry_after) == (reason, retry_after)
    (tmp_path / "maintenance.json").unlink()
    assert flag.read() is None
