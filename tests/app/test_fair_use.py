"""Fair use: one player cannot starve the others of the engine, WebSockets or the database.

Players are told apart by their real source addresses: 127.0.0.1 and 127.0.0.2 (the whole of
127.0.0.0/8 is the loopback), so the backend sees two clients as it would behind the proxies.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from tengen_app.fairness import Fairness, FairQueue, Limits, client_address, parse_networks, player_key
from tengen_app.lifetime import DAY

from tests.service_servers import Server, create, next_game, play, request, start_backend, start_engine

TRUSTED = parse_networks("127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,fc00::/7")


def session_from(address: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def post_from(address: str, url: str, body: dict) -> tuple[int, dict, dict]:
    async with session_from(address) as session, session.post(url, json=body) as resp:
        return resp.status, await resp.json(content_type=None), dict(resp.headers)


# -- who is a player
def test_ipv6_players_are_keyed_on_their_64() -> None:
    assert player_key("2001:db8:1:2:aaaa::1") == player_key("2001:db8:1:2:ffff:1:2:3") == "2001:db8:1:2::/64"
    assert player_key("2001:db8:1:3::1") != player_key("2001:db8:1:2::1")
    assert player_key("2001:DB8::1") == "2001:db8::/64"
    assert player_key("::ffff:198.51.100.7") == "198.51.100.7"  # IPv4-mapped: the IPv4 address
    assert player_key("198.51.100.7") != player_key("198.51.100.8")


def test_the_address_comes_from_the_trusted_proxies_only() -> None:
    # Behind Caddy and nginx: nginx appends the address Caddy gave it.
    assert client_address("172.18.0.3", "198.51.100.7, 198.51.100.7", TRUSTED) == "198.51.100.7"
    # A player writing X-Forwarded-For: the entries left of the proxies' own are not believed.
    assert client_address("172.18.0.3", "203.0.113.9, 198.51.100.7, 10.0.0.5", TRUSTED) == "198.51.100.7"
    # A client reaching the backend directly cannot choose its address.
    assert client_address("198.51.100.7", "203.0.113.9", TRUSTED) == "198.51.100.7"
    assert client_address("172.18.0.3", "[2001:db8::5]:4711", TRUSTED) == "2001:db8::5"
    # Only proxies in the chain: the one farthest out.
    assert client_address("172.18.0.3", "10.1.1.1, 172.18.0.2", TRUSTED) == "10.1.1.1"


def test_bad_limits_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="TENGEN_AI_MOVES_PER_PLAYER"):
        Limits.from_env({"TENGEN_AI_MOVES_PER_PLAYER": "many"})
    with pytest.raises(ValueError, match="TENGEN_ENGINE_SLOTS"):
        Limits.from_env({"TENGEN_ENGINE_SLOTS": "0"})
    with pytest.raises(ValueError, match="TENGEN_TRUSTED_PROXIES"):
        Limits.from_env({"TENGEN_TRUSTED_PROXIES": "10.0.0.0/8,nowhere"})


def test_the_engine_queue_takes_players_in_turn() -> None:
    """One slot, busy; A queues four moves, then B one: B's goes second, not fifth."""

    async def scenario() -> list[str]:
        queue = FairQueue(1)
        served: list[str] = []
        release = asyncio.Event()

        async def hold() -> None:
            async with queue.slot("X"):
                await release.wait()

        async def ask(player: str, name: str) -> None:
            async with queue.slot(player):
                served.append(name)

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        waiting = [asyncio.create_task(ask("A", f"A{i}")) for i in range(1, 5)]
        waiting.append(asyncio.create_task(ask("B", "B1")))
        await asyncio.sleep(0)
        assert queue.queued() == 5 and served == []
        release.set()
        await asyncio.gather(holder, *waiting)
        assert queue.busy == 0 and queue.queued() == 0
        return served

    assert asyncio.run(scenario()) == ["A1", "B1", "A2", "A3", "A4"]


def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    async def scenario() -> list[str]:
        queue = FairQueue(1)
        served: list[str] = []
        release = asyncio.Event()

        async def hold() -> None:
            async with queue.slot("X"):
                await release.wait()

        async def ask(player: str) -> None:
            async with queue.slot(player):
                served.append(player)

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        gone, stays = asyncio.create_task(ask("A")), asyncio.create_task(ask("B"))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.gather(gone, return_exceptions=True)
        release.set()
        await asyncio.gather(holder, stays)
        assert queue.busy == 0
        return served

    assert asyncio.run(scenario()) == ["B"]


def test_what_a_request_holds_is_given_back_when_it_ends() -> None:
    """A WebSocket counts while its handler runs; an AI move claimed by a request that failed
    is given back, one handed to its task counts until the task is done."""
    fairness = Fairness(Limits(ai_moves_per_player=1, websockets_per_player=1))

    async def scenario() -> None:
        held = asyncio.Event()
        opened = asyncio.Event()

        async def watch(request: web.Request) -> web.Response:
            fairness.open_socket()
            opened.set()
            await held.wait()
            return web.Response()

        async def refused_write(request: web.Request) -> web.Response:
            fairness.claim_ai()
            raise web.HTTPServiceUnavailable()

        keys = []

        async def new_ai_game(request: web.Request) -> web.Response:
            fairness.claim_ai()
            keys.append(fairness.ai_started("g1"))
            return web.Response()

        def call(handler):
            return fairness.guard(make_mocked_request("GET", "/"), handler)

        first = asyncio.create_task(call(watch))
        await opened.wait()
        with pytest.raises(web.HTTPTooManyRequests):
            await call(watch)
        held.set()
        await first
        assert fairness.sockets == {}
        opened.clear()
        second = asyncio.create_task(call(watch))
        await opened.wait()  # the freed place is taken again
        await second

        with pytest.raises(web.HTTPServiceUnavailable):
            await call(refused_write)
        assert fairness.ai_pending == {}
        await call(new_ai_game)
        assert fairness.ai_pending == {keys[0]: 1}
        with pytest.raises(web.HTTPTooManyRequests):
            await call(new_ai_game)
        fairness.ai_done(keys[0])
        assert fairness.ai_pending == {}

    asyncio.run(scenario())


# -- the engine: a flood from one address is refused, another player still plays
@pytest.fixture
def paused_engine(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "engine").mkdir()
    server = start_engine(tmp_path / "engine", TENGEN_ENGINE_PROCESSES="1")
    yield server
    server.proc.send_signal(signal.SIGCONT)
    server.stop()


def test_a_flood_of_ai_games_is_refused_while_another_player_plays(
    tmp_path: Path, paused_engine: Server
) -> None:
    backend = start_backend(
        tmp_path, paused_engine.url, TENGEN_AI_MOVES_PER_PLAYER="3", TENGEN_ENGINE_SLOTS="1"
    )
    try:
        asyncio.run(flood(backend, paused_engine))
    finally:
        backend.stop()


async def flood(backend: Server, engine: Server) -> None:
    games = f"{backend.url}/api/games"
    # A game where the player moves first asks nothing of the engine yet.
    status, mine, _ = await post_from("127.0.0.1", games, {"size": 9, "color": "black"})
    assert status == 201
    # The engine stops answering: every AI move asked from now on waits.
    engine.proc.send_signal(signal.SIGSTOP)
    answers = [await post_from("127.0.0.1", games, {"size": 9, "color": "white"}) for _ in range(5)]
    assert [status for status, _, _ in answers] == [201, 201, 201, 429, 429]
    _, refused, headers = answers[3]
    assert refused["reason"] == "fair use" and "waiting for the AI" in refused["error"]
    assert int(headers["Retry-After"]) > 0
    # A move in the player's own game would ask a fourth: refused too, and nothing is written.
    status, refused, _ = await post_from(
        "127.0.0.1", f"{games}/{mine['game']['id']}/moves", {"token": mine["tokens"]["B"], "move": "E5"}
    )
    assert status == 429 and refused["reason"] == "fair use"
    assert (await asyncio.to_thread(request, "GET", f"{games}/{mine['game']['id']}"))[1]["moves"] == []
    metrics = (await asyncio.to_thread(request, "GET", f"{backend.url}/metrics"))[1]
    assert 'tengen_fair_use_refused_total{limit="ai_moves"} 3.0' in metrics
    assert "tengen_engine_queue_waiting " in metrics

    # Another player is not refused, and the engine answers them as soon as it can.
    status, theirs, _ = await post_from("127.0.0.2", games, {"size": 9, "color": "white"})
    assert status == 201
    engine.proc.send_signal(signal.SIGCONT)
    async with session_from("127.0.0.2") as session:
        async with session.ws_connect(f"{backend.url}/ws/games/{theirs['game']['id']}") as ws:
            state = await next_game(ws, timeout=60)
            while not state["moves"]:
                state = await next_game(ws, timeout=60)
    assert state["moves"][0][0] == "B"


# -- WebSockets and readiness, on one backend
@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, engine: Server) -> Iterator[Server]:
    server = start_backend(
        tmp_path_factory.mktemp("limited"),
        engine.url,
        TENGEN_WEBSOCKETS_PER_PLAYER="2",
        TENGEN_WS_MAX_MESSAGE="1024",
    )
    yield server
    server.stop()


def test_websockets_over_the_limit_of_an_address_are_refused(limited: Server) -> None:
    game, _ = create(limited, size=9, opponent="human")
    url = f"{limited.url}/ws/games/{game['id']}"

    async def scenario() -> None:
        async with session_from("127.0.0.1") as mine, session_from("127.0.0.2") as theirs:
            first = await mine.ws_connect(url)
            second = await mine.ws_connect(url)
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await mine.ws_connect(url)
            assert refused.value.status == 429
            # Another address still connects, and the two open sockets still work.
            other = await theirs.ws_connect(url)
            assert (await next_game(other))["id"] == game["id"]
            for ws in (first, second):
                assert (await next_game(ws))["id"] == game["id"]
                await ws.send_str("ping")
                assert json.loads((await ws.receive(timeout=10)).data) == {"type": "pong"}
            for ws in (first, second, other):
                await ws.close()

    asyncio.run(scenario())
    # Refused before the upgrade, with 429 (too many requests): one in the metrics.
    status, body = request("GET", f"{limited.url}/metrics")
    assert status == 200
    assert 'tengen_http_requests_total{method="GET",route="/ws/games/{id}",status="429"} 1.0' in body
    assert 'tengen_fair_use_refused_total{limit="websockets"} 1.0' in body


def test_an_oversized_websocket_message_closes_that_socket(limited: Server) -> None:
    game, tokens = create(limited, size=9, opponent="human")
    url = f"{limited.url}/ws/games/{game['id']}"

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url) as big, session.ws_connect(url) as calm:
                await next_game(big)
                await next_game(calm)
                await big.send_str("x" * 4096)
                msg = await big.receive(timeout=10)
                assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
                # The other socket on the game is untouched and hears the next move.
                assert (await asyncio.to_thread(play, limited, game["id"], tokens["B"], "E5"))[0] == 200
                assert len((await next_game(calm))["moves"]) == 1

    asyncio.run(scenario())


def test_readiness_does_not_touch_the_games_table(limited: Server) -> None:
    """Counting the games made /readyz as slow as the table is long: it reads schema_version."""
    create(limited, size=9, opponent="human")
    db = sqlite3.connect(limited.env["TENGEN_DB_PATH"], isolation_level=None)
    try:
        db.execute("ALTER TABLE games RENAME TO games_aside")
        try:
            assert request("GET", f"{limited.url}/readyz")[0] == 200
        finally:
            db.execute("ALTER TABLE games_aside RENAME TO games")
    finally:
        db.close()
    assert request("GET", f"{limited.url}/readyz")[0] == 200


# -- how long games are kept
@pytest.fixture(params=["sqlite", "postgres"])
def database_env(request: pytest.FixtureRequest) -> dict:
    """The backend's database: SQLite, or a new database of the session's PostgreSQL."""
    if request.param == "postgres":
        return {"DATABASE_URL": request.getfixturevalue("postgres").new_database()}
    return {}


def test_the_sweep_deletes_exactly_the_expired_games(
    tmp_path: Path, engine: Server, database_env: dict
) -> None:
    env = database_env
    backend = start_backend(tmp_path, engine.url, **env)
    try:
        games = {}
        for name in ("finished-old", "finished-recent", "abandoned", "active-recent", "finished-now"):
            game, tokens = create(backend, size=9, opponent="human")
            if name.startswith("finished"):
                assert play(backend, game["id"], tokens["B"], "resign")[0] == 200
            else:
                assert play(backend, game["id"], tokens["B"], "E5")[0] == 200
            games[name] = game["id"]
    finally:
        backend.stop()
    now = time.time()
    ages = {"finished-old": 11, "finished-recent": 9, "abandoned": 31, "active-recent": 29}
    rows = [(now - days * DAY, games[name]) for name, days in ages.items()]
    if env:
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as db:
            db.cursor().executemany("UPDATE games SET updated_at = %s WHERE id = %s", rows)
    else:
        db = sqlite3.connect(tmp_path / "tengen.db", isolation_level=None)
        try:
            db.executemany("UPDATE games SET updated_at = ? WHERE id = ?", rows)
        finally:
            db.close()

    # Every replica sweeps as it starts (then every TENGEN_GAME_SWEEP_SECONDS).
    backend = start_backend(
        tmp_path, engine.url, TENGEN_FINISHED_GAME_DAYS="10", TENGEN_ABANDONED_GAME_DAYS="30", **env
    )
    try:
        found = {name: request("GET", f"{backend.url}/api/games/{gid}")[0] for name, gid in games.items()}
        assert found == {
            "finished-old": 404,
            "finished-recent": 200,
            "abandoned": 404,
            "active-recent": 200,
            "finished-now": 200,
        }
        assert any(
            json.loads(line).get("msg") == "expired games deleted" and json.loads(line)["games"] == 2
            for line in backend.output().splitlines()
            if line.startswith("{")
        )
    finally:
        backend.stop()
