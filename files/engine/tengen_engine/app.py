"""The gateway's HTTP API: POST /move, POST /analyze (KataGo), health and metrics."""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from .analysis import EngineGarbled, analysis, parse_raw_nn, white_ownership
from .board import Board
from .board import name as point_name
from .board import parse as parse_point
from .gtp import EngineDied, GtpError, GtpProcess
from .pool import Pool, PoolFull, PoolTimeout

log = logging.getLogger("tengen.engine")
COLUMNS = "ABCDEFGHJKLMNOPQRST"
COLORS = {"B": "B", "W": "W", "BLACK": "B", "WHITE": "W"}
RULES = ("chinese", "japanese")
# A chain is dead when KataGo's network gives its points to the other colour at least this much
# on average (1 = surely the other's): unsettled or seki stones, near 0, stay on the board.
DEAD_OWNERSHIP = 0.5
MAX_BODY = 64 * 1024


@dataclass
class Settings:
    port: int = 8001
    engine: str = "gnugo"
    processes: int = 1
    queue: int = 4
    timeout: float = 30.0
    start_timeout: float = 120.0
    rules: str = "chinese"
    # Debian 12 installs GNU Go in /usr/games, Debian 13 in /usr/bin.
    gnugo_bin: str = (
        shutil.which("gnugo", path=f"{os.environ.get('PATH', '')}:/usr/games") or "/usr/games/gnugo"
    )
    gnugo_level: int = 5
    katago_bin: str = "/usr/local/bin/katago"
    katago_model: str = "/usr/local/share/katago/model.bin.gz"
    katago_config: str = "/usr/local/share/katago/gtp.cfg"
    katago_max_visits: int = 100
    katago_max_time: float = 5.0
    katago_threads: int = 1
    # Shared secret of the backends ("" = none asked: the same-host Compose network is trusted).
    token: str = ""

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        settings = cls(
            port=int(env.get("TENGEN_ENGINE_PORT", cls.port)),
            engine=env.get("TENGEN_ENGINE", cls.engine),
            processes=int(env.get("TENGEN_ENGINE_PROCESSES", cls.processes)),
            queue=int(env.get("TENGEN_ENGINE_QUEUE", cls.queue)),
            timeout=float(env.get("TENGEN_ENGINE_TIMEOUT", cls.timeout)),
            start_timeout=float(env.get("TENGEN_ENGINE_START_TIMEOUT", cls.start_timeout)),
            rules=env.get("TENGEN_ENGINE_RULES", cls.rules),
            gnugo_bin=env.get("TENGEN_GNUGO_BIN", cls.gnugo_bin),
            gnugo_level=int(env.get("TENGEN_GNUGO_LEVEL", cls.gnugo_level)),
            katago_bin=env.get("TENGEN_KATAGO_BIN", cls.katago_bin),
            katago_model=env.get("TENGEN_KATAGO_MODEL", cls.katago_model),
            katago_config=env.get("TENGEN_KATAGO_CONFIG", cls.katago_config),
            katago_max_visits=int(env.get("TENGEN_KATAGO_MAX_VISITS", cls.katago_max_visits)),
            katago_max_time=float(env.get("TENGEN_KATAGO_MAX_TIME", cls.katago_max_time)),
            katago_threads=int(env.get("TENGEN_KATAGO_THREADS", cls.katago_threads)),
            token=env.get("TENGEN_ENGINE_TOKEN", cls.token),
        )
        if settings.engine not in ("gnugo", "katago"):
            raise SystemExit("TENGEN_ENGINE must be 'gnugo' or 'katago'")
        if settings.rules not in RULES:
            raise SystemExit(f"TENGEN_ENGINE_RULES must be one of {RULES}")
        if settings.processes < 1 or settings.queue < 0:
            raise SystemExit("TENGEN_ENGINE_PROCESSES must be >= 1 and TENGEN_ENGINE_QUEUE >= 0")
        if not settings.timeout > 0 or not settings.start_timeout > 0:
            raise SystemExit("TENGEN_ENGINE_TIMEOUT and TENGEN_ENGINE_START_TIMEOUT must be > 0")
        # A move's search must end inside the request's budget, or every slow move is a 504.
        if settings.engine == "katago" and not 0 < settings.katago_max_time < settings.timeout:
            raise SystemExit("TENGEN_KATAGO_MAX_TIME must be > 0 and below TENGEN_ENGINE_TIMEOUT")
        if settings.katago_max_visits < 1 or settings.katago_threads < 1:
            raise SystemExit("TENGEN_KATAGO_MAX_VISITS and TENGEN_KATAGO_THREADS must be >= 1")
        if settings.token and len(settings.token) < 16:
            raise SystemExit("TENGEN_ENGINE_TOKEN must be at least 16 characters")
        return settings

    def argv(self) -> list[str]:
        if self.engine == "gnugo":
            # GNU Go takes its rules on the command line only, so a pool serves one rule set.
            return [
                self.gnugo_bin,
                "--mode",
                "gtp",
                "--level",
                str(self.gnugo_level),
                f"--{self.rules}-rules",
            ]
        overrides = (
            f"maxVisits={self.katago_max_visits},maxTime={self.katago_max_time:g},"
            f"numSearchThreads={self.katago_threads}"
        )
        return [
            self.katago_bin,
            "gtp",
            "-model",
            self.katago_model,
            "-config",
            self.katago_config,
            "-override-config",
            overrides,
        ]


class BadRequest(ValueError):
    pass


# The most visits a request may ask for; the search is also cut at TENGEN_KATAGO_MAX_TIME.
MAX_VISITS = 10000


@dataclass
class Position:
    size: int
    komi: float
    rules: str
    moves: list[tuple[str, str]]
    color: str
    ownership: bool = False
    # The strength a move is asked at (the backend's level); None: the gateway's own.
    visits: int | None = None
    gnugo_level: int | None = None

    @classmethod
    def parse(cls, body: object, need_color: bool = True) -> Position:
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        size = body.get("size")
        if type(size) is not int or not 2 <= size <= 19:
            raise BadRequest("size must be an integer from 2 to 19")
        komi = body.get("komi", 7.5)
        # KataGo refuses any other komi ("komi must be an integer or half-integer").
        if (
            type(komi) not in (int, float)
            or not math.isfinite(komi)
            or abs(komi) > 150
            or komi * 2 != int(komi * 2)
        ):
            raise BadRequest("komi must be a multiple of 0.5 between -150 and 150")
        rules = body.get("rules", "chinese")
        if rules not in RULES:
            raise BadRequest(f"rules must be one of {list(RULES)}")
        color = COLORS.get(str(body.get("color", "" if need_color else "B")).upper())
        if color is None:
            raise BadRequest("color must be 'B' or 'W'")
        raw_moves = body.get("moves", [])
        if not isinstance(raw_moves, list) or len(raw_moves) > 4 * size * size:
            raise BadRequest("moves must be a list of [color, vertex] pairs")
        moves = []
        for index, move in enumerate(raw_moves):
            if not (isinstance(move, list) and len(move) == 2 and all(isinstance(x, str) for x in move)):
                raise BadRequest(f"moves[{index}] must be a [color, vertex] pair")
            mcolor, vertex = COLORS.get(move[0].upper()), move[1].upper()
            if mcolor is None or not valid_vertex(vertex, size):
                raise BadRequest(f"moves[{index}] is not a colour and a vertex: {move!r}")
            moves.append((mcolor, vertex))
        ownership = body.get("ownership", False)
        if type(ownership) is not bool:
            raise BadRequest("ownership must be true or false")
        visits, gnugo_level = body.get("visits"), body.get("gnugo_level")
        if visits is not None and (type(visits) is not int or not 1 <= visits <= MAX_VISITS):
            raise BadRequest(f"visits must be an integer from 1 to {MAX_VISITS}")
        if gnugo_level is not None and (type(gnugo_level) is not int or not 1 <= gnugo_level <= 10):
            raise BadRequest("gnugo_level must be an integer from 1 to 10")
        return cls(size, float(komi), rules, moves, color, ownership, visits, gnugo_level)

    @property
    def next_color(self) -> str:
        """The colour the engine evaluates for after the moves: Black on an empty board."""
        return ("W" if self.moves[-1][0] == "B" else "B") if self.moves else "B"

    def setup(self, katago: bool = False) -> list[str]:
        # KataGo's rules go first: the moves are then judged under them, and komi is set after them.
        return [
            f"boardsize {self.size}",
            "clear_board",
            *([f"kata-set-rules {self.rules}"] if katago else []),
            f"komi {self.komi:g}",
            *(f"play {color} {vertex}" for color, vertex in self.moves),
        ]


def valid_vertex(vertex: str, size: int) -> bool:
    if vertex == "PASS":
        return True
    return (
        len(vertex) >= 2
        and vertex[0] in COLUMNS[:size]
        and vertex[1:].isdigit()
        and 1 <= int(vertex[1:]) <= size
    )


def normalise(answer: str) -> str:
    text = answer.strip()
    if text.lower() in ("pass", "resign"):
        return text.lower()
    return text.upper()


class Gateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool = Pool(
            settings.argv(), settings.processes, settings.queue, settings.timeout, settings.start_timeout
        )
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tengen_engine_requests", "Gateway requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "tengen_engine_move_seconds",
            "Time to answer a move request, queue included",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.queued = Gauge(
            "tengen_engine_inflight", "Requests being served or queued", registry=self.registry
        )
        self.queued.set_function(lambda: self.pool.inflight)
        self.restarts = Counter(
            "tengen_engine_restarts", "Engine processes restarted", registry=self.registry
        )
        self.pool.on_restart = self.restarts.inc
        self.queue_wait = Histogram(
            "tengen_engine_queue_wait_seconds",
            "Time a request waited for a free engine process",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.pool.on_wait = self.queue_wait.observe

    async def on_startup(self, app: web.Application) -> None:
        try:
            await self.pool.start()
        except EngineDied as exc:
            # A bad command line, model or config, or a CPU the build cannot run on: say so and exit,
            # leaving no engine process behind.
            log.error(
                "the engine did not start",
                extra={"fields": {"error": str(exc), "argv": self.settings.argv()}},
            )
            await self.pool.stop()
            raise SystemExit(f"the engine did not start: {exc}") from None
        log.info("engine pool started", extra={"fields": {"argv": self.settings.argv()}})

    async def on_cleanup(self, app: web.Application) -> None:
        await self.pool.stop()

    async def _position(self, request: web.Request, need_color: bool = True) -> Position:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the body is not valid JSON") from None
        position = Position.parse(body, need_color)
        if self.settings.engine == "gnugo" and position.rules != self.settings.rules:
            raise BadRequest(f"this GNU Go pool plays {self.settings.rules} rules only")
        return position

    async def _serve(
        self,
        route: str,
        request: web.Request,
        job: Callable[[GtpProcess, Position], Awaitable[dict]],
        check: Callable[[Position], None] | None = None,
        need_color: bool = True,
    ) -> web.Response:
        started = time.monotonic()
        try:
            position = await self._position(request, need_color)
            if check is not None:
                check(position)
            result = await self.pool.run(lambda engine: job(engine, position))
            status, body, headers = 200, result, {}
        except BadRequest as exc:
            status, body, headers = 400, {"error": str(exc)}, {}
        except PoolFull:
            status, body, headers = 503, {"error": "the engine queue is full"}, {"Retry-After": "1"}
        except PoolTimeout:
            status, body, headers = 504, {"error": f"no answer within {self.settings.timeout:g} s"}, {}
        except GtpError as exc:
            status, body, headers = 422, {"error": f"the engine refused the position: {exc}"}, {}
        except (EngineDied, EngineGarbled) as exc:
            status, body, headers = 502, {"error": str(exc)}, {}
        elapsed = time.monotonic() - started
        self.requests.labels(route, str(status)).inc()
        if status == 200:
            self.latency.observe(elapsed)
        log.info(
            "request", extra={"fields": {"route": route, "status": status, "ms": round(elapsed * 1000, 1)}}
        )
        return web.json_response(body, status=status, headers=headers)

    async def move(self, request: web.Request) -> web.Response:
        async def job(engine: GtpProcess, position: Position) -> dict:
            katago = self.settings.engine == "katago"
            setup = position.setup(katago=katago)
            # Every move sets its strength, so that a process never keeps the last request's.
            if katago:
                strength = f"kata-set-param maxVisits {position.visits or self.settings.katago_max_visits}"
            else:
                strength = f"level {position.gnugo_level or self.settings.gnugo_level}"
            answers = await engine.commands([*setup, strength, f"genmove {position.color}"])
            return {"move": normalise(answers[-1]), "engine": engine.name}

        return await self._serve("/move", request, job)

    async def analyze(self, request: web.Request) -> web.Response:
        if self.settings.engine != "katago":
            return web.json_response({"error": "analysis needs KataGo; this gateway runs GNU Go"}, status=501)

        def check(position: Position) -> None:
            # kata-raw-nn evaluates for the player after the last move; GTP cannot name another one.
            if position.color != position.next_color:
                raise BadRequest(
                    f"color must be the colour to play after the moves ({position.next_color} here)"
                )

        async def job(engine: GtpProcess, position: Position) -> dict:
            raw = (await engine.commands([*position.setup(katago=True), "kata-raw-nn 0"]))[-1]
            result = analysis(raw, position.size, position.ownership)
            return {**result, "to_play": position.color, "engine": engine.name}

        return await self._serve("/analyze", request, job, check)

    async def score(self, request: web.Request) -> web.Response:
        """The dead stones of a finished game, as the engine judges them, and the score without them."""

        async def job(engine: GtpProcess, position: Position) -> dict:
            board = Board(position.size, position.moves)
            if self.settings.engine == "katago":
                raw = (await engine.commands([*position.setup(katago=True), "kata-raw-nn 0"]))[-1]
                dead = dead_by_ownership(board, white_ownership(parse_raw_nn(raw), position.size))
            else:
                answer = (await engine.commands([*position.setup(), "final_status_list dead"]))[-1]
                dead: set[tuple[int, int]] = set()
                for vertex in answer.upper().split():
                    if not valid_vertex(vertex, position.size) or parse_point(vertex) not in board.stones:
                        raise EngineGarbled(f"final_status_list: {vertex} is not a stone on the board")
                    dead.add(parse_point(vertex))
            return {
                "dead": [point_name(p) for p in sorted(dead)],
                **board.score(dead, position.rules, position.komi),
                "rules": position.rules,
                "engine": engine.name,
            }

        return await self._serve("/score", request, job, need_color=False)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.pool.ready:
            return web.json_response({"status": "ready", "engine": self.settings.engine})
        return web.json_response(
            {"status": "unready", "reasons": ["no engine process is running"]}, status=503
        )

    async def metrics(self, request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(self.registry))
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return resp


def dead_by_ownership(board: Board, white_owner: dict[str, float]) -> set[tuple[int, int]]:
    """The stones of every chain whose points the network gives to the other colour."""
    dead: set[tuple[int, int]] = set()
    for chain in board.chains():
        sign = 1.0 if board.stones[next(iter(chain))] == "W" else -1.0
        own = sum(sign * white_owner[point_name(p)] for p in chain) / len(chain)
        if own <= -DEAD_OWNERSHIP:
            dead |= chain
    return dead


@web.middleware
async def json_errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response({"error": exc.reason}, status=exc.status)


# Health checks (the image's HEALTHCHECK, a load balancer) carry no secret: these two answer only
# "ok"/"ready" and the engine's name, and cost no engine time.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


def require_token(token: str):
    """Refuse (401) every request but OPEN_PATHS that lacks `Authorization: Bearer <token>`."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(
                given, expected
            ):  # constant time: the secret is not guessed byte by byte
                return web.json_response(
                    {"error": "a valid Authorization: Bearer token is required"},
                    status=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await handler(request)

    return check


def make_app(settings: Settings) -> web.Application:
    gateway = Gateway(settings)
    middlewares = [json_errors] + ([require_token(settings.token)] if settings.token else [])
    app = web.Application(client_max_size=MAX_BODY, middlewares=middlewares)
    app["gateway"] = gateway
    app.on_startup.append(gateway.on_startup)
    app.on_cleanup.append(gateway.on_cleanup)
    app.router.add_post("/move", gateway.move)
    app.router.add_post("/analyze", gateway.analyze)
    app.router.add_post("/score", gateway.score)
    app.router.add_get("/healthz", gateway.healthz)
    app.router.add_get("/readyz", gateway.readyz)
    app.router.add_get("/metrics", gateway.metrics)
    return app
