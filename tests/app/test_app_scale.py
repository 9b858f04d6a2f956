"""PostgreSQL and Redis modes, against real servers: several backends serving one game."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import psycopg

from tests.app.test_app_api import create, next_game, play
from tests.conftest import wait_for_http
from tests.service_servers import APP_DIR, Postgres, Redis, Server, request, start_backend


def fresh_database(postgres: Postgres) -> str:
    return postgres.new_database()


def test_migrate_on_postgresql_is_safe_to_run_twice(postgres: Postgres) -> None:
    url = fresh_database(postgres)
    applied = []
    for _ in range(2):
        run = subprocess.run(
            [sys.executable, "-m", "tengen_app", "migrate"],
            cwd=APP_DIR,
            env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stderr
        applied.append(json.loads(run.stdout.splitlines()[-1])["applied"])
    assert applied[0] >= 1 and applied[1] == 0
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM games").fetchone() == (0,)


def test_games_live_in_postgresql_across_restarts(tmp_path, engine: Server, postgres: Postgres) -> None:
    url = fresh_database(postgres)
    first = start_backend(tmp_path, engine.url, DATABASE_URL=url)
    try:
        game, tokens = create(first, size=9, opponent="human")
        assert play(first, game["id"], tokens["B"], "E5")[0] == 200
        assert request("GET", f"{first.url}/readyz")[0] == 200
    finally:
        assert first.stop() == 0
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT moves, version FROM games WHERE id = %s", (game["id"],)).fetchone()
    assert json.loads(row[0]) == [["B", "E5"]] and row[1] == 1
    assert not (tmp_path / "tengen.db").exists()  # nothing went to SQLite
    second = start_backend(tmp_path, engine.url, DATABASE_URL=url)
    try:
        status, data = request("GET", f"{second.url}/api/games/{game['id']}")
        assert status == 200 and data["moves"] == [["B", "E5"]]
    finally:
        second.stop()


def test_two_backends_serve_one_game_through_redis_and_postgresql(
    tmp_path, engine: Server, postgres: Postgres, redis_server: Redis
) -> None:
    url = fresh_database(postgres)
    env = {"DATABASE_URL": url, "REDIS_URL": redis_server.url}
    one = start_backend(tmp_path, engine.url, **env)
    two = start_backend(tmp_path, engine.url, **env)
    try:
        assert request("GET", f"{two.url}/readyz") == (200, {"status": "ready", "engine": "up"})
        game, tokens = create(one, size=9, opponent="human")
        gid = game["id"]

        async def watch_two_play_one() -> list[dict]:
            async with aiohttp.ClientSession() as session:
                async with (
                    session.ws_connect(f"{two.url}/ws/games/{gid}") as ws_two,
                    session.ws_connect(f"{one.url}/ws/games/{gid}") as ws_one,
                ):
                    await next_game(ws_two)
                    await next_game(ws_one)
                    status, _ = await asyncio.to_thread(play, one, gid, tokens["B"], "E5")
                    assert status == 200
                    seen = [await next_game(ws_two), await next_game(ws_one)]
                    status, _ = await asyncio.to_thread(play, two, gid, tokens["W"], "C3")
                    assert status == 200
                    seen += [await next_game(ws_two), await next_game(ws_one)]
                    return seen

        seen = asyncio.run(watch_two_play_one())
        assert [g["moves"] for g in seen[:2]] == [[["B", "E5"]]] * 2
        assert [g["moves"] for g in seen[2:]] == [[["B", "E5"], ["W", "C3"]]] * 2

        # Black sends two different moves to the two replicas at once: exactly one is played.
        with ThreadPoolExecutor(2) as pool:
            results = list(
                pool.map(
                    lambda args: play(*args), [(one, gid, tokens["B"], "D4"), (two, gid, tokens["B"], "F6")]
                )
            )
        statuses = sorted(status for status, _ in results)
        assert statuses == [200, 409], results
        final = request("GET", f"{one.url}/api/games/{gid}")[1]
        assert len(final["moves"]) == 3 and final["to_play"] == "W"
    finally:
        one.stop()
        two.stop()


def test_replicas_resubscribe_after_redis_restarts(tmp_path, engine: Server, postgres: Postgres) -> None:
    redis_server = Redis().start()  # its own server: this test stops it
    url = fresh_database(postgres)
    env = {"DATABASE_URL": url, "REDIS_URL": redis_server.url}
    one = start_backend(tmp_path, engine.url, **env)
    two = start_backend(tmp_path, engine.url, **env)
    try:
        game, tokens = create(one, size=9, opponent="human")
        redis_server.stop()
        status, data = request("GET", f"{two.url}/readyz")
        assert status == 503 and any(reason.startswith("pubsub") for reason in data["reasons"])
        redis_server.start()  # the same port again
        wait_for_http(f"{two.url}/readyz", timeout=20)

        async def move_seen_elsewhere() -> dict:
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(f"{two.url}/ws/games/{game['id']}") as ws:
                    await next_game(ws)
                    # The subscriber reconnects within a few seconds; until then a push may be missed.
                    for attempt, vertex in enumerate(("E5", "D4", "C3", "F6", "G7", "B2")):
                        color = "B" if attempt % 2 == 0 else "W"
                        assert (await asyncio.to_thread(play, one, game["id"], tokens[color], vertex))[
                            0
                        ] == 200
                        try:
                            return await next_game(ws, timeout=3)
                        except TimeoutError:
                            continue
                    raise AssertionError("no move reached the other replica after Redis came back")

        seen = asyncio.run(move_seen_elsewhere())
        assert seen["moves"] and seen["moves"][-1][0] in ("B", "W")
    finally:
        one.stop()
        two.stop()
        redis_server.stop()
