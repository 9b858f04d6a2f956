"""The web client against the real backend and engine gateways, in Debian's Chromium.

A small proxy stands in for the stack's nginx: it serves files/web and passes /api and /ws to
a backend. Two 9x9 games against the AI: one with the fake KataGo (the level picked, the
analysis bar, switched off and on) and one with GNU Go played to its end by passing (the dead
stones marked on the board and the final score), since only GNU Go passes once the game is
decided (the fake KataGo plays until no point is left).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from playwright.sync_api import Page, sync_playwright

from tests.browser import launch
from tests.conftest import REPO, free_port
from tests.service_servers import Server, request

WEB = REPO / "files" / "web"
SIZE = 9
# Black's stones, each played on the first of these points still free: GNU Go leaves the ones
# left in its area on the board once it passes, and judges them dead.
BLACK_POINTS = ["C3", "G7", "C7", "G3", "E5", "D4", "F6"]
# GNU Go may take any of them first: then Black plays the next empty point of the board.
EVERY_POINT = [f"{column}{row}" for row in range(9, 0, -1) for column in "ABCDEFGHJ"]
BLACK_MOVES = 5
SESSION = web.AppKey("session", aiohttp.ClientSession)


def proxy_app(backend_url: str) -> web.Application:
    """files/web, and /api and /ws passed on to the backend (what the stack's nginx does)."""

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB / (request.match_info.get("name") or "index.html"))

    async def api(request: web.Request) -> web.Response:
        session = request.app[SESSION]
        async with session.request(
            request.method, backend_url + request.path_qs, data=await request.read(), headers=request.headers
        ) as resp:
            return web.Response(body=await resp.read(), status=resp.status, content_type=resp.content_type)

    async def socket(request: web.Request) -> web.WebSocketResponse:
        session = request.app[SESSION]
        client = web.WebSocketResponse()
        await client.prepare(request)
        async with session.ws_connect(backend_url.replace("http", "ws") + request.path) as upstream:

            async def down() -> None:
                async for msg in upstream:
                    await client.send_str(msg.data)
                await client.close()

            task = asyncio.create_task(down())
            async for msg in client:
                await upstream.send_str(msg.data)
            task.cancel()
        return client

    async def start(app: web.Application) -> None:
        app[SESSION] = aiohttp.ClientSession()

    async def stop(app: web.Application) -> None:
        await app[SESSION].close()

    app = web.Application()
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.add_routes(
        [
            web.get("/", page),
            web.get("/{name:app\\.js|style\\.css}", page),
            web.route("*", "/api/{tail:.*}", api),
            web.get("/ws/{tail:.*}", socket),
        ]
    )
    return app


@pytest.fixture
def web_proxy() -> Iterator:
    """Start proxies (each in front of one backend) on a thread's event loop; stopped afterwards."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runners: list[web.AppRunner] = []

    def start(backend: Server) -> str:
        async def run() -> str:
            runner = web.AppRunner(proxy_app(backend.url))
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)
            return f"http://127.0.0.1:{port}/"

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=30)

    try:
        yield start
    finally:
        for runner in runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def new_game(page: Page, url: str, level: str) -> str:
    page.goto(url)
    page.select_option("select[name=size]", str(SIZE))
    page.select_option("select[name=level]", level)
    page.click("#new-game button[type=submit]")
    page.wait_for_selector("#connection.live", timeout=30_000)
    return page.evaluate("() => current.id")


def rect_of(vertex: str) -> str:
    """The click target of a free point (app.js draws one per empty point, centred on it)."""
    x, y = "ABCDEFGHJ".index(vertex[0]), SIZE - int(vertex[1:])
    return f'#board rect.hit[x="{x - 0.5}"][y="{y - 0.5}"]'


def wait_my_turn(page: Page, moves: int) -> None:
    """Until the page shows at least `moves` moves and it is Black's turn again, or the game is over."""
    page.wait_for_function(
        "(n) => current.game && current.game.moves.length >= n"
        " && (current.game.to_play === 'B' || current.game.status === 'finished')",
        arg=moves,
        timeout=30_000,
    )


def test_a_game_shows_its_level_and_the_analysis_bar(katago_backend: Server, web_proxy, tmp_path: Path):
    url = web_proxy(katago_backend)
    with sync_playwright() as p:
        browser = launch(p, tmp_path)
        try:
            page = browser.new_page()
            game_id = new_game(page, url, "easy")
            assert page.text_content("#level") == "AI level: easy"
            page.click(rect_of("C3"))
            wait_my_turn(page, 2)
            page.wait_for_function("() => current.game.evaluation !== null", timeout=30_000)
            game = request("GET", f"{katago_backend.url}/api/games/{game_id}")[1]
            assert game["level"] == "easy" and len(game["moves"]) == 2
            black = round(game["evaluation"]["black_win_rate"] * 100)
            assert page.is_visible("#analysis")
            assert page.get_attribute("#analysis-bar", "aria-valuenow") == str(black)
            assert page.eval_on_selector("#analysis-black", "e => e.style.width") == f"{black}%"
            assert page.text_content("#analysis-text").startswith(f"Black {black}% · White {100 - black}%")

            page.click("#analysis-toggle")  # off: stored with the game, the bar goes
            page.wait_for_selector("#analysis", state="hidden")
            assert request("GET", f"{katago_backend.url}/api/games/{game_id}")[1]["analysis"] is False
            page.click("#analysis-toggle")  # on again: the engine's view of the same position
            page.wait_for_selector("#analysis:not(.stale)", state="visible", timeout=30_000)
            assert page.get_attribute("#analysis-bar", "aria-valuenow") == str(black)
        finally:
            browser.close()


def test_a_game_passed_to_its_end_shows_the_dead_stones_and_the_score(
    backend: Server, web_proxy, tmp_path: Path
):
    url = web_proxy(backend)
    with sync_playwright() as p:
        browser = launch(p, tmp_path)
        try:
            page = browser.new_page()
            game_id = new_game(page, url, "beginner")
            for number in range(BLACK_MOVES):
                taken = {v for _, v in page.evaluate("() => current.game.moves")}
                vertex = next(v for v in BLACK_POINTS + EVERY_POINT if v not in taken)
                page.click(rect_of(vertex))
                wait_my_turn(page, 2 * (number + 1))
            # Pass until the AI passes too (two passes in a row end the game).
            while page.evaluate("() => current.game.status") == "active":
                count = page.evaluate("() => current.game.moves.length")
                page.click("#pass")
                wait_my_turn(page, count + 2)
            page.wait_for_selector('#final[data-state="final"]', timeout=30_000)
            game = request("GET", f"{backend.url}/api/games/{game_id}")[1]
            assert game["status"] == "finished" and game["moves"][-2:] == [["B", "pass"], ["W", "pass"]]
            dead = game["dead"]
            assert dead, "GNU Go judged no stone dead: the marks would not be seen"
            marked = page.eval_on_selector_all(
                "#board circle.dead",
                "(nodes) => nodes.map((n) => [Number(n.getAttribute('cx')), Number(n.getAttribute('cy'))])",
            )
            assert sorted(f"{'ABCDEFGHJ'[x]}{SIZE - y}" for x, y in marked) == sorted(dead)
            assert page.locator("#board path.dead-mark").count() == len(dead)
            final = page.text_content("#final")
            score = game["score"]
            assert f"Black {score['black']:g}, White {score['white']:g}" in final
            assert f"dead stones {', '.join(dead)}" in final and final.endswith(game["result"])
            assert page.text_content("#turn").startswith(f"Game over: {game['result']}")

            page.click("#accept")  # the player accepts the result: stored, and said on the page
            page.wait_for_selector("#accept", state="hidden")
            assert "accepted by Black" in page.text_content("#final")
            assert request("GET", f"{backend.url}/api/games/{game_id}")[1]["accepted"] == ["B"]
        finally:
            browser.close()
