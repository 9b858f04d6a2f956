"""The gateway's HTTP API: POST /move, POST /analyze (KataGo), health and metrics."""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import shutil
import time
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

from .gtp import EngineDied, GtpError, GtpProcess
from .pool import Pool, PoolFull, PoolTimeout

log = logging.getLogger("tengen.engine")
COLUMNS = "ABCDEFGHJKLMNOPQRST"
COLORS = {"B": "B", "W": "W", "BLACK": "B", "WHITE": "W"}
RULES = ("chinese", "japanese")
MAX_BODY = 64 * 1024


@dataclass
class Settings:
    port: int = 8001
    engine: str = "gnugo"
    processes: int = 1
    queue: int = 4
    timeout: float = 30.0
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
            rules=env.get("TENGEN_ENGINE_RULES", cls.rules),
            gnugo_bin=env.get("TENGEN_GNUGO_BIN", cls.gnugo_bin),
            gnugo_level=int(env.get("TENGEN_GNUGO_LEVEL", cls.gnugo_level)),
            katago_bin=env.get("TENGEN_KATAGO_BIN", cls.katago_bin),
            katago_model=env.get("TENGEN_KATAGO_MODEL", cls.katago_model),
            katago_config=env.get("TENGEN_KATAGO_CONFIG", cls.katago_config),
            katago_max_visits=int(env.get("TENGEN_KATAGO_MAX_VISITS", cls.katago_max_visits)),
            katago_threads=int(env.get("TENGEN_KATAGO_THREADS", cls.katago_threads)),
            token=env.get("TENGEN_ENGINE_TOKEN", cls.token),
        )
        if settings.engine not in ("gnugo", "katago"):
            raise SystemExit("TENGEN_ENGINE must be 'gnugo' or 'katago'")
        if settings.rules not in RULES:
            raise SystemExit(f"TENGEN_ENGINE_RULES must be one of {RULES}")
        if settings.processes < 1 or settings.queue < 0:
            raise SystemExit("TENGEN_ENGINE_PROCESSES must be >= 1 and TENGEN_ENGINE_QUEUE >= 0")
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
        overrides = f"maxVisits={self.katago_max_visits},numSearchThreads={self.katago_threads}"
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


@dataclass
class Position:
    size: int
    komi: float
    rules: str
    moves: list[tuple[str, str]]
    color: str

    @classmethod
    def parse(cls, body: object) -> Position:
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        size = body.get("size")
        if type(size) is not int or not 2 <= size <= 19:
            raise BadRequest("size must be an integer from 2 to 19")
        komi = body.get("komi", 7.5)
        if type(komi) not in (int, float) or not math.isfinite(komi) or abs(komi) > 150:
            raise BadRequest("komi must be a number between -150 and 150")
        rules = body.get("rules", "chinese")
        if rules not in RULES:
            raise BadRequest(f"rules must be one of {list(RULES)}")
        color = COLORS.get(str(body.get("color", "")).upper())
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
        return cls(size, float(komi), rules, moves, color)

    def setup(self) -> list[str]:
        return [
            f"boardsize {self.size}",
            "clear_board",
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
        self.pool = Pool(settings.argv(), settings.processes, settings.queue, settings.timeout)
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

    async def on_startup(self, app: web.Application) -> None:
        await self.pool.start()
        log.info("engine pool started", extra={"fields": {"argv": self.settings.argv()}})

    async def on_cleanup(self, app: web.Application) -> None:
        await self.pool.stop()

    async def _position(self, request: web.Request) -> Position:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the body is not valid JSON") from None
        position = Position.parse(body)
        if self.settings.engine == "gnugo" and position.rules != self.settings.rules:
            raise BadRequest(f"this GNU Go pool plays {self.settings.rules} rules only")
        return position

    async def _serve(self, route: str, request: web.Request, job) -> web.Response:
        started = time.monotonic()
        try:
            position = await self._position(request)
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
        except EngineDied as exc:
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
            setup = position.setup()
            if self.settings.engine == "katago":
                setup.append(f"kata-set-rules {position.rules}")
            answers = await engine.commands([*setup, f"genmove {position.color}"])
            return {"move": normalise(answers[-1]), "engine": engine.name}

        return await self._serve("/move", request, job)

    async def analyze(self, request: web.Request) -> web.Response:
        if self.settings.engine != "katago":
            return web.json_response({"error": "analysis needs KataGo; this gateway runs GNU Go"}, status=501)

        async def job(engine: GtpProcess, position: Position) -> dict:
            setup = [*position.setup(), f"kata-set-rules {position.rules}"]
            if position.moves and position.moves[-1][0] == position.color:
                raise BadRequest("color must be the colour to play after the moves")
            raw = (await engine.commands([*setup, "kata-raw-nn 0"]))[-1]
            return {"analysis": raw_nn_values(raw), "engine": engine.name}

        return await self._serve("/analyze", request, job)

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


def raw_nn_values(raw: str) -> dict[str, float]:
    """The scalar lines of `kata-raw-nn` ("whiteWin 0.43", "whiteLead 1.2", ...)."""
    values = {}
    for line in raw.splitlines():
        parts = line.split()
        if len(parts) == 2:
            with_value = parts[1].replace(".", "", 1).replace("-", "", 1).replace("e", "", 1)
            if with_value.isdigit():
                values[parts[0]] = float(parts[1])
    return values


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
    app.router.add_get("/healthz", gateway.healthz)
    app.router.add_get("/readyz", gateway.readyz)
    app.router.add_get("/metrics", gateway.metrics)
    return app
