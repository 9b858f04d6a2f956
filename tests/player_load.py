"""Players as they really play, for the release tests and the benchmarks: a load that can fail.

In a background thread, until stopped:
- human games: both seats of a 19x19 game post moves in turn over /api (no capture can happen:
  Black fills from the bottom edge, White from the top, and a game ends after MOVES_PER_GAME);
- AI games: a 9x9 move over /api, then the AI's reply awaited on the game's WebSocket;
- watchers: one more WebSocket on every game, keeping the newest state it was sent.

All of it comes from one address, so the default pace stays under the stack's per-address API
limit (game_stack_nginx_api_rate, 50 requests a second): about 25 requests a second in all.

Every failure of any kind is counted, with what it was: an HTTP status other than the one
expected, a connection error, a time-out, an AI reply that never came, a WebSocket closed by the
server with any code but 1012 (a restart: the client then reconnects, as the web client does).
A move whose request failed is looked up in the game, as a client would before playing on: a
server that fell after storing it but before answering has it (counted apart, then expected
stored like an acknowledged move); otherwise the same move is sent again.

When the load stops, it reads every game back and reports each acknowledged move that is not
stored, and each watcher that did not reach the stored state within a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from dataclasses import dataclass, field

import aiohttp

COLUMNS = "ABCDEFGHJKLMNOPQRST"
MOVES_PER_GAME = 60  # per 19x19 human game; Black's and White's fills stay rows apart
RESTART = 1012  # the WebSocket close code of a server restarting (the client reconnects)


def human_move(n: int) -> str:
    """The n-th move of a human game: Black from A1 along the bottom rows, White from A19 down."""
    index = n // 2
    column, row = COLUMNS[index % 19], 1 + index // 19
    return f"{column}{row}" if n % 2 == 0 else f"{column}{20 - row}"


def legal_points(board: list[str]) -> list[str]:
    """Empty points with an empty neighbour, central ones first: such a move is never suicide,
    never a ko recapture and never occupied, so the service must accept it."""
    size = len(board)
    points = []
    for y, row in enumerate(board):
        for x, c in enumerate(row):
            neighbours = [(x + dx, y + dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
            if c == "." and any(
                0 <= i < size and 0 <= j < size and board[j][i] == "." for i, j in neighbours
            ):
                points.append((abs(x - size // 2) + abs(y - size // 2), f"{COLUMNS[x]}{size - y}"))
    return [vertex for _, vertex in sorted(points)]


@dataclass
class Game:
    id: str
    tokens: dict[str, str]
    kind: str  # "human" or "ai"
    # [color, vertex] per move the service must hold, in order: acknowledged, or found stored
    # after its request failed.
    acknowledged: list[list[str]] = field(default_factory=list)
    seen_version: int = -1  # the newest version a watcher was sent


@dataclass
class Report:
    requests: int = 0
    moves: int = 0
    ai_replies: int = 0
    reconnects: int = 0
    stored_unanswered: int = 0  # moves whose request failed, found stored when the game was read back
    websockets_open: int = 0  # watchers connected now (the handshake answered, not yet closed)
    failures: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # acknowledged moves not stored
    stale: list[str] = field(default_factory=list)  # watchers that did not reach the stored state

    @property
    def clean(self) -> bool:
        return not (self.failures or self.lost or self.stale)

    def summary(self) -> str:
        return (
            f"{self.requests} requests, {self.moves} moves acknowledged, {self.ai_replies} AI replies, "
            f"{self.reconnects} WebSocket reconnects after 1012, {self.stored_unanswered} moves stored "
            f"though their request failed; {len(self.failures)} failed, "
            f"{len(self.lost)} acknowledged moves lost, {len(self.stale)} watchers stale"
        )

    def details(self, limit: int = 8) -> str:
        return "; ".join([*self.failures[:limit], *self.lost[:limit], *self.stale[:limit]])


class PlayerLoad:
    """`with PlayerLoad(base, ctx) as load: ...`, then `load.report` (`.clean`, `.summary()`)."""

    def __init__(
        self,
        base: str,
        ctx: ssl.SSLContext | None = None,
        humans: int = 4,
        ai_players: int = 2,
        pause: float = 0.2,
        ai_timeout: float = 90.0,
    ) -> None:
        self.base = base.rstrip("/")
        self.wsbase = self.base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        self.ctx = ctx if self.base.startswith("https://") else False
        self.humans, self.ai_players = humans, ai_players
        self.pause, self.ai_timeout = pause, ai_timeout
        self.report = Report()
        self.games: list[Game] = []
        self._loop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._main: asyncio.Future | None = None

    # -- the thread
    def __enter__(self) -> PlayerLoad:
        self._thread.start()
        self._main = asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, settle: float = 20.0) -> Report:
        """Stop the players, then check every game; the report is final once this returns."""
        if self._main is not None:
            self._settle = settle
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._main.result(timeout=self.ai_timeout + settle + 60 + 5 * len(self.games))
            self._main = None
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        return self.report

    # -- the players
    async def _run(self) -> None:
        self._stopping = asyncio.Event()
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
            self._session = session
            self._watchers: list[asyncio.Task] = []
            players = [self._human(n) for n in range(self.humans)]
            players += [self._ai_player(n) for n in range(self.ai_players)]
            await asyncio.gather(*players)
            try:
                await self._verify(self._settle)
            finally:
                for task in self._watchers:
                    task.cancel()
                await asyncio.gather(*self._watchers, return_exceptions=True)

    def _fail(self, what: str) -> None:
        self.report.failures.append(f"{time.strftime('%H:%M:%S')} {what}")

    async def _request(self, method: str, path: str, body: dict | None, expect: int) -> dict | None:
        self.report.requests += 1
        try:
            async with self._session.request(method, self.base + path, json=body, ssl=self.ctx) as resp:
                text = await resp.text()
                if resp.status != expect:
                    self._fail(f"{method} {path}: HTTP {resp.status} {text[:120]}")
                    return None
                return json.loads(text)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            self._fail(f"{method} {path}: {exc!r}")
            return None

    async def _new_game(self, kind: str) -> Game | None:
        body = {"size": 19, "opponent": "human"} if kind == "human" else {"size": 9, "opponent": "ai"}
        created = await self._request("POST", "/api/games", body, 201)
        if created is None:
            return None
        game = Game(created["game"]["id"], created["tokens"], kind)
        self.games.append(game)
        self._watchers.append(asyncio.create_task(self._watch(game)))
        return game

    async def _play(self, game: Game, color: str, vertex: str) -> dict | None:
        path = f"/api/games/{game.id}/moves"
        answer = await self._request("POST", path, {"move": vertex, "token": game.tokens[color]}, 200)
        if answer is not None:
            game.acknowledged.append([color, vertex])
            self.report.moves += 1
        return answer

    async def _human(self, n: int) -> None:
        while not self._stopping.is_set():
            game = await self._new_game("human")
            if game is None:
                await asyncio.sleep(1)
                continue
            move = 0
            while move < MOVES_PER_GAME and not self._stopping.is_set():
                color, vertex = "B" if move % 2 == 0 else "W", human_move(move)
                if await self._play(game, color, vertex) is not None:
                    move += 1
                else:
                    await asyncio.sleep(0.5)
                    view = await self._request("GET", f"/api/games/{game.id}", None, 200)
                    if view is not None and self._stored_anyway(game, view, color, vertex):
                        move += 1
                    # else the same move again: it was not stored
                await asyncio.sleep(self.pause)

    async def _ai_player(self, n: int) -> None:
        while not self._stopping.is_set():
            game = await self._new_game("ai")
            if game is None:
                await asyncio.sleep(1)
                continue
            state: dict = {"board": ["." * 9] * 9, "moves": []}
            while not self._stopping.is_set():
                points = legal_points(state["board"])
                if state.get("status") == "finished" or len(points) < 20:
                    break
                vertex = points[(n * 7 + len(game.acknowledged)) % min(9, len(points))]
                answer = await self._play(game, "B", vertex)
                if answer is None:
                    await asyncio.sleep(0.5)
                    state = await self._request("GET", f"/api/games/{game.id}", None, 200) or state
                    stored = "id" in state and self._stored_anyway(game, state, "B", vertex)
                    if stored and state["moves"][-1] == ["B", vertex]:  # the AI's reply is still due
                        state = await self._ai_reply(game, len(state["moves"]))
                        if not state:
                            break
                    continue
                state = await self._ai_reply(game, len(answer["moves"]))
                if not state:
                    break

    def _stored_anyway(self, game: Game, view: dict, color: str, vertex: str) -> bool:
        """Whether the move of a failed request is stored next after the ones expected; if so, it
        is expected from now on (the server fell between storing it and answering)."""
        ours = [m for m in view["moves"] if game.kind == "human" or m[0] == color]
        n = len(game.acknowledged)
        if len(ours) > n and ours[n] == [color, vertex]:
            game.acknowledged.append([color, vertex])
            self.report.stored_unanswered += 1
            return True
        return False

    async def _ai_reply(self, game: Game, after: int) -> dict:
        """The game once the AI has answered (its state has more moves than `after`), or {}."""
        deadline = time.monotonic() + self.ai_timeout
        while time.monotonic() < deadline and not self._stopping.is_set():
            view = await self._request("GET", f"/api/games/{game.id}", None, 200)
            if view is not None and (len(view["moves"]) > after or view["status"] == "finished"):
                self.report.ai_replies += 1
                return view
            await asyncio.sleep(0.5)
        if not self._stopping.is_set():  # a reply still due at the end is waited for when checking
            self._fail(f"game {game.id}: no AI reply within {self.ai_timeout:.0f} s")
        return {}

    async def _watch(self, game: Game) -> None:
        """A WebSocket on the game for as long as the load runs; 1012 means reconnect."""
        while True:
            try:
                async with self._session.ws_connect(
                    f"{self.wsbase}/ws/games/{game.id}",
                    ssl=self.ctx,
                    timeout=aiohttp.ClientWSTimeout(ws_close=10),
                ) as ws:
                    self.report.websockets_open += 1
                    try:
                        code = await self._follow(game, ws)
                    finally:
                        self.report.websockets_open -= 1
            except asyncio.CancelledError:
                raise
            except (TimeoutError, aiohttp.ClientError) as exc:
                self._fail(f"WebSocket {game.id}: {exc!r}")
                await asyncio.sleep(1)
                continue
            if code == RESTART:
                self.report.reconnects += 1
            else:
                self._fail(f"WebSocket {game.id}: closed by the server with {code}")
                await asyncio.sleep(1)

    async def _follow(self, game: Game, ws: aiohttp.ClientWebSocketResponse) -> int | None:
        """Keep the newest state the server sends until it closes; returns its close code."""
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                if data.get("type") == "game":
                    game.seen_version = max(game.seen_version, data["game"]["version"])
            elif msg.type == aiohttp.WSMsgType.CLOSE:
                # The code of the server's close frame, as a browser's CloseEvent has it:
                # ws.close_code turns into 1006 when nginx's previous worker drops the
                # connection before the client's answering frame goes out.
                return msg.data
            elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return ws.close_code

    # -- afterwards
    async def _verify(self, settle: float) -> None:
        stored: dict[str, dict] = {}
        deadline = time.monotonic() + settle
        for game in self.games:
            while True:
                view = await self._request("GET", f"/api/games/{game.id}", None, 200)
                if view is None:
                    self.report.lost.append(f"game {game.id}: not readable")
                    break
                stored[game.id] = view
                # An AI still thinking when the players stopped moves the game on: wait for it.
                if game.seen_version >= view["version"] or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
        for game in self.games:
            view = stored.get(game.id)
            if view is None:
                continue
            color = None if game.kind == "human" else "B"
            ours = [m for m in view["moves"] if color is None or m[0] == color]
            if ours[: len(game.acknowledged)] != game.acknowledged:
                missing = next(i for i, m in enumerate(game.acknowledged) if i >= len(ours) or ours[i] != m)
                self.report.lost.append(
                    f"game {game.id}: acknowledged move {game.acknowledged[missing]} not stored"
                )
            if game.seen_version < view["version"]:
                self.report.stale.append(
                    f"game {game.id}: its watcher ended on version {game.seen_version}, "
                    f"stored {view['version']}"
                )
