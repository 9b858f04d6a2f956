"""Levels, the analysis bar and the dead stones at the end, through the real backend.

The backend runs against the real engine gateway: GNU Go (conftest's `backend`) and the fake
KataGo (tests/engine/fake_katago.py), whose numbers come from the stones on the board, so the
backend's evaluation can be compared with the gateway's own answer for the same position.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.service_servers import Server, create, play, request

# tests/engine/test_scoring.py's end position: Black walls column E, White column F, then a
# white stone dies in Black's area (B5) and a black one in White's (H5). With both dead
# (Chinese counting, komi 7.5): Black 45, White 43.5; with every stone alive: W+7.5.
WALLS = [m for row in range(1, 10) for m in (["B", f"E{row}"], ["W", f"F{row}"])]
DEAD_STONES = [*WALLS, ["B", "H5"], ["W", "B5"]]


def get(backend: Server, game_id: str) -> dict:
    status, data = request("GET", f"{backend.url}/api/games/{game_id}")
    assert status == 200, data
    return data


async def wait_for(backend: Server, game_id: str, predicate, timeout: float = 30) -> dict:
    """The first game state the WebSocket delivers (the current one first) that satisfies `predicate`."""
    ws_url = backend.url.replace("http", "ws") + f"/ws/games/{game_id}"
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
        while True:
            msg = await asyncio.wait_for(ws.receive(), timeout)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            data = json.loads(msg.data)
            if data["type"] == "game" and predicate(data["game"]):
                return data["game"]


def test_a_game_against_the_ai_has_a_level_and_bad_ones_are_refused(backend: Server) -> None:
    game, _ = create(backend, size=9)
    assert (game["level"], game["analysis"]) == ("medium", True)
    for level in ("beginner", "easy", "medium", "hard"):
        game, _ = create(backend, size=9, level=level, analysis=False)
        assert get(backend, game["id"])["level"] == level
        assert get(backend, game["id"])["analysis"] is False
    human, _ = create(backend, size=9, opponent="human")
    assert (human["level"], human["analysis"], human["evaluation"]) == (None, False, None)
    for body in (
        {"level": "grandmaster"},
        {"level": 3},
        {"level": None},
        {"opponent": "human", "level": "easy"},
    ):
        status, data = request("POST", f"{backend.url}/api/games", {"size": 9, **body})
        assert status == 400 and data["error"].startswith("level"), (body, data)
    for body in ({"analysis": "yes"}, {"opponent": "human", "analysis": True}):
        status, data = request("POST", f"{backend.url}/api/games", {"size": 9, **body})
        assert status == 400 and data["error"].startswith("analysis"), (body, data)


@pytest.mark.parametrize("kind", ["gnugo", "katago"])
def test_two_passes_end_the_game_with_the_engines_dead_stones_counted(request_fixture, kind: str) -> None:
    backend = request_fixture("backend" if kind == "gnugo" else "katago_backend")
    game, tokens = create(backend, size=9, opponent="human")
    for color, vertex in [*DEAD_STONES, ["B", "pass"]]:
        status, data = play(backend, game["id"], tokens[color], vertex)
        assert status == 200, data
    status, data = play(backend, game["id"], tokens["W"], "pass")
    assert status == 200 and data["status"] == "finished"
    assert data["dead"] is None and data["result"] == "W+7.5"  # not judged yet: every stone alive
    judged = asyncio.run(wait_for(backend, game["id"], lambda g: g.get("dead") is not None))
    assert judged["dead"] == ["B5", "H5"]
    assert judged["score"] == {"black": 45, "white": 43.5, "result": "B+1.5"}
    assert judged["result"] == "B+1.5" and judged["version"] == data["version"] + 1
    stored = get(backend, game["id"])
    assert (stored["dead"], stored["result"]) == (["B5", "H5"], "B+1.5")
    status, sgf = request("GET", f"{backend.url}/api/games/{game['id']}/sgf")
    assert status == 200 and "RE[B+1.5]" in sgf

    # Each player accepts the result once; a stranger cannot.
    url = f"{backend.url}/api/games/{game['id']}/accept"
    assert judged["accepted"] == []
    assert request("POST", url, {"token": "not-a-player"})[0] == 403
    status, data = request("POST", url, {"token": tokens["W"]})
    assert status == 200 and data["accepted"] == ["W"] and data["version"] == judged["version"] + 1
    status, again = request("POST", url, {"token": tokens["W"]})
    assert status == 200 and again["version"] == data["version"]
    status, data = request("POST", url, {"token": tokens["B"]})
    assert status == 200 and data["accepted"] == ["B", "W"]
    assert get(backend, game["id"])["accepted"] == ["B", "W"]
    active, active_tokens = create(backend, size=9, opponent="human")
    status, data = request(
        "POST", f"{backend.url}/api/games/{active['id']}/accept", {"token": active_tokens["B"]}
    )
    assert status == 409 and "two passes" in data["error"]


@pytest.fixture
def request_fixture(request: pytest.FixtureRequest):
    return request.getfixturevalue


def analysed(game: dict) -> bool:
    return game["evaluation"] is not None and game["to_play"] == "B"


def test_the_analysis_bar_shows_the_engines_view_of_each_position(katago_backend: Server, katago) -> None:
    game, tokens = create(katago_backend, size=9, level="easy")
    assert game["analysis"] is True
    status, data = play(katago_backend, game["id"], tokens["B"], "C3")
    assert status == 200, data
    # After the AI's reply, the bar is the engine's answer for that very position.
    seen = asyncio.run(wait_for(katago_backend, game["id"], lambda g: len(g["moves"]) == 2 and analysed(g)))
    body = {"size": 9, "komi": 7.5, "rules": "chinese", "moves": seen["moves"], "color": "B"}
    status, direct = request("POST", f"{katago.server.url}/analyze", body)
    assert status == 200, direct
    assert seen["evaluation"] == {
        "black_win_rate": direct["black_win_rate"],
        "black_score_lead": direct["black_score_lead"],
    }
    assert get(katago_backend, game["id"])["evaluation"] == seen["evaluation"]  # stored with the game

    # Switched off by the player: stored, and the bar is gone; switched on: it comes back.
    url = f"{katago_backend.url}/api/games/{game['id']}/analysis"
    assert request("POST", url, {"token": "not-a-player", "on": False})[0] == 403
    assert request("POST", url, {"token": tokens["B"], "on": "off"})[0] == 400
    status, data = request("POST", url, {"token": tokens["B"], "on": False})
    assert status == 200 and (data["analysis"], data["evaluation"]) == (False, None)
    assert get(katago_backend, game["id"])["analysis"] is False
    status, data = request("POST", url, {"token": tokens["B"], "on": True})
    assert status == 200 and data["analysis"] is True
    again = asyncio.run(wait_for(katago_backend, game["id"], analysed))
    assert again["version"] == data["version"] and again["evaluation"] == seen["evaluation"]

    human, human_tokens = create(katago_backend, size=9, opponent="human")
    status, data = request(
        "POST",
        f"{katago_backend.url}/api/games/{human['id']}/analysis",
        {"token": human_tokens["B"], "on": True},
    )
    assert status == 409 and "AI" in data["error"]


# A game as a backend of schema 2 (before levels) wrote it.
OLD_GAME = (
    "INSERT INTO games (id, size, komi, opponent, ai_color, black_token, white_token, moves, result,"
    " version, created_at, updated_at) VALUES ('old', 9, 7.5, 'ai', 'W', 'b', NULL, '[]', NULL, 0, 1.0, 1.0)"
)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_store_migrates_older_games_and_keeps_level_analysis_and_dead_stones(
    request_fixture, tmp_path, kind: str
) -> None:
    """A database at schema 2 (before levels) gains the columns with their defaults; the new
    fields go through a write and a read on both backends."""
    from tengen_app import store as S

    if kind == "sqlite":
        make = lambda: S.SqliteStore(str(tmp_path / "tengen.db"))  # noqa: E731
    else:
        url = request_fixture("postgres").new_database()
        make = lambda: S.PostgresStore(url)  # noqa: E731

    async def scenario() -> None:
        old = make()
        await old.open()
        saved = S.MIGRATIONS[:]
        try:
            S.MIGRATIONS[:] = saved[:2]
            assert await old.migrate() == 2
            if kind == "postgres":
                await old._execute(OLD_GAME)
            else:
                old.conn.execute(OLD_GAME)
        finally:
            S.MIGRATIONS[:] = saved
        await old.close()

        store = make()
        await store.open()
        try:
            assert await store.migrate() == len(S.MIGRATIONS) - 2
            legacy = await store.get("old")
            assert (legacy.level, legacy.analysis, legacy.evaluation, legacy.dead, legacy.accepted) == (
                None,
                False,
                None,
                None,
                None,
            )
            rec = S.GameRecord("new", 9, 7.5, "ai", "W", "b", None, [], None, 0, 2.0, 2.0, "hard", True)
            await store.create(rec)
            evaluation = {"black_win_rate": 0.61, "black_score_lead": 2.5}
            assert await store.evaluate("new", 0, evaluation)
            assert not await store.evaluate("new", 1, evaluation)  # not the game's version: refused
            got = await store.get("new")
            assert (got.level, got.analysis, got.evaluation, got.version) == ("hard", True, evaluation, 0)
            got.moves, got.result, got.dead, got.evaluation = (
                [["B", "pass"], ["W", "pass"]],
                "W+7.5",
                ["E5"],
                None,
            )
            await store.update(got)
            got.accepted = ["B"]
            await store.update(got)
            again = await store.get("new")
            assert (again.dead, again.evaluation, again.accepted, again.version) == (["E5"], None, ["B"], 2)
        finally:
            await store.close()

    asyncio.run(scenario())
