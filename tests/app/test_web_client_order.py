"""The web client never shows an older game state than one it has shown.

A move goes out over HTTP and every change comes back over the game's WebSocket. Against the
AI, the WebSocket can deliver the AI's reply (a newer version) before the HTTP answer to the
player's own move (an older one) arrives. A server that forces exactly that order serves the
real files/web here, and Debian's Chromium plays the move.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.sync_api import sync_playwright

from tests.browser import launch
from tests.conftest import REPO, free_port

WEB = REPO / "files" / "web"
SIZE = 9
GAME_ID = "g1"


def state(moves: list[list[str]], version: int) -> dict:
    """The backend's view of a 9x9 game (tengen_app.app.view) with the given moves."""
    board = [["."] * SIZE for _ in range(SIZE)]
    for color, vertex in moves:
        x = "ABCDEFGHJ".index(vertex[0])
        board[SIZE - int(vertex[1:])][x] = color
    return {
        "id": GAME_ID,
        "size": SIZE,
        "komi": 7.5,
        "opponent": "ai",
        "ai_color": "W",
        "moves": moves,
        "to_play": "W" if len(moves) % 2 else "B",
        "status": "active",
        "result": None,
        "board": ["".join(row) for row in board],
        "captures": {"B": 0, "W": 0},
        "version": version,
    }


class OutOfOrderServer:
    """Answers a move over the WebSocket with the AI's reply first, then over HTTP with the move."""

    def __init__(self) -> None:
        self.sockets: list[web.WebSocketResponse] = []
        self.http_answers_sent = 0
        self.app = web.Application()
        self.app.add_routes(
            [
                web.get("/", self.page),
                web.get("/{name:app\\.js|style\\.css}", self.page),
                web.post("/api/games", self.new_game),
                web.post("/api/games/{id}/moves", self.move),
                web.get("/ws/games/{id}", self.socket),
            ]
        )

    async def page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB / (request.match_info.get("name") or "index.html"))

    async def new_game(self, _: web.Request) -> web.Response:
        return web.json_response({"game": state([], 0), "tokens": {"B": "black-token"}})

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_json({"type": "game", "game": state([], 0)})
        async for _ in ws:
            pass
        return ws

    async def move(self, request: web.Request) -> web.Response:
        body = await request.json()
        mine = [["B", body["move"]]]
        reply = [*mine, ["W", "C3" if body["move"] != "C3" else "G7"]]
        for ws in self.sockets:
            await ws.send_json({"type": "game", "game": state(reply, 2)})
        await asyncio.sleep(0.5)  # the browser has rendered the reply long before this answer
        self.http_answers_sent += 1
        return web.json_response(state(mine, 1))


@pytest.fixture
def out_of_order_server() -> Iterator[tuple[str, OutOfOrderServer]]:
    server = OutOfOrderServer()
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(server.app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/", server
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def test_a_late_http_answer_does_not_replace_a_newer_websocket_state(out_of_order_server, tmp_path: Path):
    url, server = out_of_order_server
    with sync_playwright() as p:
        browser = launch(p, tmp_path)
        try:
            page = browser.new_page()
            page.goto(url)
            page.click("#new-game button[type=submit]")
            page.wait_for_selector("#connection.live", timeout=30_000)
            with page.expect_response(lambda r: r.url.endswith("/moves")) as answer:
                page.locator("#board rect.hit").nth(40).click()  # E5, the centre
            assert answer.value.json()["version"] == 1
            assert server.http_answers_sent == 1
            # Let the client finish with the answer (parse and render) before looking at the board.
            page.evaluate("() => new Promise((done) => setTimeout(done, 300))")
            assert page.locator("#board circle.B").count() == 1
            assert page.locator("#board circle.W").count() == 1, "the AI's reply vanished from the board"
            assert page.text_content("#turn").startswith("Your move")
        finally:
            browser.close()
