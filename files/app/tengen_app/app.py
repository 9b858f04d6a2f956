"""The aiohttp service: the game API under /api, a WebSocket per game, health and metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, WSMsgType, web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from .engine import DEFAULT_LEVEL, LEVELS, EngineClient, EngineError, PositionRefused, parse_urls
from .fairness import Fairness, Limits
from .lifetime import Lifetime, Sweeper
from .maintenance import Maintenance, MaintenanceOn, maintenance_message
from .pubsub import LocalPubSub, make_pubsub
from .rules import BLACK, RESIGN, SIZES, WHITE, BadVertex, Game, IllegalMove
from .store import Conflict, GameRecord, ReadOnly, StorageFull, Store, make_store

log = logging.getLogger("tengen.app")
MAX_BODY = 16 * 1024  # a move is a few dozen bytes; anything this big is not one
COLORS = {"black": BLACK, "white": WHITE}
# What a write refused for a full disk tells the client to wait before trying again.
STORAGE_RETRY_AFTER = 30


@dataclass
class Settings:
    port: int = 8000
    db_path: str = "/var/lib/tengen/tengen.db"
    database_url: str | None = None
    redis_url: str | None = None
    engine_url: str = "http://engine:8001"  # one URL, or several separated by commas
    engine_timeout: float = 60.0
    # How long an AI move waits for an engine that does not answer, and how often the
    # engine's state is probed for /metrics and the games' status.
    engine_retry_seconds: float = 300.0
    engine_probe_seconds: float = 10.0
    engine_token: str = ""
    engine_request_timeout: float = 35.0
    engine_probe_interval: float = 2.0
    maintenance_file: str = ""  # "" = maintenance.json beside the SQLite database (the data volume)
    sqlite_synchronous: str = "FULL"  # FULL or NORMAL: see the README's Durability
    limits: Limits = field(default_factory=Limits)  # fair use: see fairness.py
    lifetime: Lifetime = field(default_factory=Lifetime)  # how long games are kept

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            port=int(env.get("TENGEN_PORT", "8000")),
            db_path=env.get("TENGEN_DB_PATH", cls.db_path),
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            engine_url=env.get("TENGEN_ENGINE_URLS") or env.get("TENGEN_ENGINE_URL", cls.engine_url),
            engine_timeout=float(env.get("TENGEN_ENGINE_TIMEOUT", "60")),
            engine_retry_seconds=float(env.get("TENGEN_ENGINE_RETRY_SECONDS", "300")),
            engine_probe_seconds=float(env.get("TENGEN_ENGINE_PROBE_SECONDS", "10")),
            engine_token=env.get("TENGEN_ENGINE_TOKEN", ""),
            engine_request_timeout=float(env.get("TENGEN_ENGINE_REQUEST_TIMEOUT", "35")),
            engine_probe_interval=float(env.get("TENGEN_ENGINE_PROBE_INTERVAL", "2")),
            maintenance_file=env.get("TENGEN_MAINTENANCE_FILE", ""),
            sqlite_synchronous=env.get("TENGEN_SQLITE_SYNCHRONOUS", "FULL"),
            limits=Limits.from_env(env),
            lifetime=Lifetime.from_env(env),
        )

    def maintenance_path(self) -> str:
        return self.maintenance_file or os.path.join(os.path.dirname(self.db_path), "maintenance.json")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tengen_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "tengen_http_request_seconds", "HTTP latency", ["route"], registry=self.registry
        )
        self.websockets = Gauge("tengen_websockets_open", "Open WebSockets", registry=self.registry)
        self.engine_wait = Histogram(
            "tengen_engine_wait_seconds",
            "Time waiting for the engine's move",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.engine_errors = Counter("tengen_engine_errors", "Failed engine requests", registry=self.registry)
        # Per engine, tengen_engine_up{engine} (the engine client) says which engines are in use.
        self.engine_available = Gauge(
            "tengen_engine_available",
            "1 when an engine answered the last move request or probe, 0 when none did",
            registry=self.registry,
        )
        self.moves = Counter("tengen_moves", "Moves played", ["by"], registry=self.registry)
        self.storage_writable = Gauge(
            "tengen_storage_writable",
            "0 while the database's last write failed for lack of space, 1 once one succeeded",
            registry=self.registry,
        )
        self.storage_writable.set(1)
        self.broadcast = Histogram(
            "tengen_broadcast_seconds",
            "Time to hand one game event to every WebSocket watching the game",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=self.registry,
        )


# The longest pause between two attempts of an AI move while the engine does not answer.
ENGINE_RETRY_MAX_DELAY = 10.0


def bad_request(status: type[web.HTTPException], message: str) -> web.HTTPException:
    return status(text=json.dumps({"error": message}), content_type="application/json")


def view(rec: GameRecord, game: Game) -> dict:
    data = {
        "id": rec.id,
        "size": rec.size,
        "komi": rec.komi,
        "opponent": rec.opponent,
        "ai_color": rec.ai_color,
        "moves": game.moves,
        "to_play": None if game.finished else game.to_play,
        "status": "finished" if game.finished else "active",
        "result": game.result,
        "board": game.rows(),
        "captures": game.captures,
        "version": rec.version,
        "level": rec.level,
        "analysis": rec.analysis,
        # The engine's view of this very position (None until it answers, or with analysis off).
        "evaluation": rec.evaluation if rec.analysis and not game.finished else None,
    }
    if game.ended_by_passes:
        data["score"] = game.score()
        # The stones the engine judged dead, counted for the other side; None while not judged
        # yet (the score then counts every stone as alive).
        data["dead"] = rec.dead
        # The players who accepted the judged result; against the AI the player's word is enough.
        data["accepted"] = rec.accepted or []
    return data


def unwritable(error: str, reason: str) -> web.HTTPServiceUnavailable:
    """503 for a write the database could not take: nothing was stored, the client may send it again."""
    return web.HTTPServiceUnavailable(
        text=json.dumps({"error": error, "reason": reason}),
        content_type="application/json",
        headers={"Retry-After": str(STORAGE_RETRY_AFTER)},
    )


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: Store = make_store(settings.database_url, settings.db_path, settings.sqlite_synchronous)
        # Why the database cannot be written (its file system is full), None while it can.
        self.storage_error: str | None = None
        self.metrics = Metrics()
        self.pubsub: LocalPubSub = make_pubsub(settings.redis_url, self.metrics.broadcast.observe)
        self.engine = EngineClient(
            parse_urls(settings.engine_url),
            settings.engine_timeout,
            token=settings.engine_token,
            request_timeout=settings.engine_request_timeout,
            probe_interval=settings.engine_probe_interval,
            registry=self.metrics.registry,
        )
        self.sockets: set[web.WebSocketResponse] = set()
        self.ai_tasks: dict[str, asyncio.Task] = {}
        # Evaluations (the analysis bar) and end-of-game judgements asked of the engine, per game.
        self.analysis_tasks: dict[str, asyncio.Task] = {}
        self.analysis_again: set[str] = set()  # games that moved on while their evaluation ran
        self.score_tasks: dict[str, asyncio.Task] = {}
        # Writes to one game are serialised within a replica; striped locks keep the set bounded.
        self.locks = [asyncio.Lock() for _ in range(64)]
        self.stopping = False
        # What this replica last heard from the engine: readiness does not depend on it (an
        # engine outage must not take every backend out of the load balancer), the games show it.
        self.engine_status: dict[str, str | None] = {"status": "unknown", "reason": None}
        self.engine_probe: asyncio.Task | None = None
        self.maintenance = Maintenance(self, settings.maintenance_path())
        self.fairness = Fairness(settings.limits, self.metrics.registry)
        self.sweeper = Sweeper(
            self.store,
            settings.lifetime,
            lambda: self.storage_error is None and self.maintenance.flag.read() is None,
        )

    # -- life cycle
    async def on_startup(self, app: web.Application) -> None:
        await self.store.open()
        await self.store.migrate()
        await self.pubsub.start()
        await self.engine.start()
        self.maintenance.start()
        # Once before serving (at most the probe's 3 s timeout), so that the state is known.
        await self.probe_engine_once()
        self.engine_probe = asyncio.create_task(self.probe_engine())
        await self.sweeper.start()

    async def probe_engine_once(self) -> None:
        try:
            await self.engine.ready()
        except EngineError as exc:
            self.engine_answered(exc)
        else:
            self.engine_answered(None)

    async def probe_engine(self) -> None:
        """Keep tengen_engine_available and the games' engine status current while no move asks."""
        while True:
            await asyncio.sleep(self.settings.engine_probe_seconds)
            await self.probe_engine_once()

    def engine_answered(self, error: EngineError | None) -> None:
        if error is None:
            self.engine_status = {"status": "up", "reason": None}
            self.metrics.engine_available.set(1)
        else:
            self.engine_status = {"status": "down", "reason": error.reason}
            self.metrics.engine_available.set(0)

    def view(self, rec: GameRecord, game: Game) -> dict:
        """The game as clients see it; games against the AI also say whether the engine answers."""
        data = view(rec, game)
        if rec.opponent == "ai":
            data["engine"] = dict(self.engine_status)
        return data

    async def on_shutdown(self, app: web.Application) -> None:
        """SIGTERM: the listener is closed; ask the WebSockets to reconnect elsewhere, finish writes."""
        self.stopping = True
        await asyncio.gather(
            *(
                ws.close(code=WSCloseCode.SERVICE_RESTART, message=b"server restart")
                for ws in list(self.sockets)
            ),
            return_exceptions=True,
        )
        tasks = [*self.ai_tasks.values(), *self.analysis_tasks.values(), *self.score_tasks.values()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=10)
            for task in pending:
                task.cancel()

    async def on_cleanup(self, app: web.Application) -> None:
        if self.engine_probe is not None:
            self.engine_probe.cancel()
        await self.sweeper.stop()
        await self.maintenance.stop()
        await self.engine.stop()
        await self.pubsub.stop()
        await self.store.close()

    # -- game state changes
    async def load(self, game_id: str) -> tuple[GameRecord, Game]:
        rec = await self.store.get(game_id)
        if rec is None:
            raise bad_request(web.HTTPNotFound, f"no game {game_id!r}")
        game = Game(rec.size, rec.komi, rec.moves)
        if rec.dead:
            game.judge(rec.dead)
        return rec, game

    async def apply(self, game_id: str, token: str | None, vertex: str, by: str = "player") -> dict:
        """Play, pass or resign for the colour the token stands for (or the AI), and tell the watchers."""
        async with self.lock_of(game_id):
            for _ in range(5):
                rec, game = await self.load(game_id)
                color = rec.ai_color if by == "ai" else self.color_of(rec, token)
                try:
                    game.play(color, vertex)
                except BadVertex as exc:
                    raise bad_request(web.HTTPBadRequest, str(exc)) from None
                except IllegalMove as exc:
                    raise bad_request(web.HTTPConflict, str(exc)) from None
                rec.moves, rec.result = game.moves, game.result
                if by == "player" and rec.opponent == "ai" and not game.finished:
                    self.fairness.claim_ai()  # 429 while the player has enough AI moves waiting
                rec.evaluation = None  # it was the previous position's
                self.maintenance.refuse_writes()  # under the game's lock: see Maintenance
                try:
                    await self.write(self.store.update(rec))
                except Conflict:
                    continue  # another replica wrote first: judge the move again on the new position
                break
            else:
                raise bad_request(web.HTTPConflict, "the game keeps changing; try again")
        self.metrics.moves.labels(by).inc()
        data = self.view(rec, game)
        await self.pubsub.publish(game_id, json.dumps({"type": "game", "game": data}))
        self.maybe_ai(rec, game)
        self.maybe_analyze(rec, game)
        self.maybe_score(rec, game)
        return data

    async def write(self, operation: Awaitable[None]) -> None:
        """Run a store write; a full disk answers 503 with Retry-After (nothing was written) and
        marks the storage unwritable until a write succeeds again: no restart is needed. So does a
        database made read-only on purpose (a rollback copying it), which is not a fault."""
        try:
            await operation
        except ReadOnly:
            raise unwritable(
                "the service is moving: nothing was saved, try again in a few minutes", "read-only"
            ) from None
        except StorageFull as exc:
            self.storage_failed(str(exc))
            raise unwritable(
                "the database's disk is full: nothing was saved, try again later", "storage full"
            ) from None
        self.storage_ok()

    def storage_failed(self, error: str) -> None:
        if self.storage_error is None:
            log.error("database cannot be written: storage full", extra={"fields": {"error": error}})
        self.storage_error = error
        self.metrics.storage_writable.set(0)

    def storage_ok(self) -> None:
        if self.storage_error is not None:
            log.info("database can be written again")
        self.storage_error = None
        self.metrics.storage_writable.set(1)

    async def probe_storage(self) -> None:
        """While the storage is known to be full, try a write that changes nothing, so that the
        state clears by itself once space is freed. Not during maintenance, which may be
        replacing the database file."""
        if self.storage_error is None or self.maintenance.flag.read() is not None:
            return
        try:
            await self.store.probe_write()
        except StorageFull as exc:
            self.storage_failed(str(exc))
        else:
            self.storage_ok()

    def lock_of(self, game_id: str) -> asyncio.Lock:
        return self.locks[hash(game_id) % len(self.locks)]

    @staticmethod
    def color_of(rec: GameRecord, token: str | None) -> str:
        if not isinstance(token, str) or not token:
            raise bad_request(web.HTTPUnauthorized, "a player token is required")
        for color, known in ((BLACK, rec.black_token), (WHITE, rec.white_token)):
            if known and secrets.compare_digest(known, token):
                return color
        raise bad_request(web.HTTPForbidden, "this token does not play in this game")

    def maybe_ai(self, rec: GameRecord, game: Game) -> None:
        """Ask the engine for a move when it is the AI's turn and no one here is asking yet."""
        if self.stopping or rec.opponent != "ai" or game.finished or game.to_play != rec.ai_color:
            return
        if rec.id in self.ai_tasks:
            return
        if self.maintenance.defer_ai(rec.id):
            return
        player = self.fairness.ai_started(rec.id)
        task = asyncio.create_task(self.ai_move(rec.id, player))
        self.ai_tasks[rec.id] = task
        task.add_done_callback(lambda _: self.ai_tasks.pop(rec.id, None))
        task.add_done_callback(lambda _: self.fairness.ai_done(player))

    async def ai_move(self, game_id: str, player: str) -> None:
        try:
            await self._ai_move(game_id, player)
        except Exception:  # a background task: nobody else would see the error
            log.exception("AI move failed", extra={"fields": {"game": game_id}})

    async def _ai_move(self, game_id: str, player: str) -> None:
        """Play the engine's move; while the engine does not answer, wait and ask again with a
        growing pause (up to ENGINE_RETRY_MAX_DELAY) for engine_retry_seconds, telling the
        game's watchers why the move is late."""
        deadline = time.monotonic() + self.settings.engine_retry_seconds
        delay = 0.5
        last_pause = False  # the pause cut to the end of the budget: one more try after it
        error: EngineError | None = None
        while not self.stopping:
            rec, game = await self.load(game_id)
            if game.finished or game.to_play != rec.ai_color:
                return
            started = time.monotonic()
            try:
                async with self.fairness.queue.slot(player):  # the players take turns
                    move = await self.engine.move(rec.size, rec.komi, game.moves, rec.ai_color, rec.level)
            except EngineError as exc:
                error = exc
                self.metrics.engine_errors.inc()
                self.engine_answered(exc)
                log.warning("engine failed", extra={"fields": {"game": game_id, "error": str(exc)}})
                remaining = deadline - time.monotonic()
                if last_pause or remaining <= 0:
                    break
                if delay >= remaining:
                    delay, last_pause = remaining, True
                event = {"type": "engine", "status": "waiting", "reason": exc.reason, "retry_in": delay}
                await self.pubsub.publish(game_id, json.dumps(event))
                await asyncio.sleep(delay)
                delay = min(delay * 2, ENGINE_RETRY_MAX_DELAY)
                continue
            finally:
                self.metrics.engine_wait.observe(time.monotonic() - started)
            self.engine_answered(None)
            rec2 = await self.store.get(game_id)
            if rec2 is None or rec2.version != rec.version:
                continue  # the position moved on while the engine thought (another replica answered)
            try:
                await self.apply(game_id, None, move, by="ai")
            except MaintenanceOn:
                log.info("engine move dropped: maintenance", extra={"fields": {"game": game_id}})
                self.maintenance.defer_ai(game_id)  # asked again when maintenance ends
            except web.HTTPException as exc:
                log.warning(
                    "engine move refused", extra={"fields": {"game": game_id, "move": move, "why": exc.text}}
                )
            return
        if error is not None and not self.stopping:
            # The next GET or WebSocket connection asks again (maybe_ai).
            message = f"the engine is not answering ({error.reason}); reload to try again"
            await self.pubsub.publish(game_id, json.dumps({"type": "error", "error": message}))

    def background(self, tasks: dict[str, asyncio.Task], game_id: str, job: Awaitable[None]) -> None:
        task = asyncio.create_task(job)
        tasks[game_id] = task
        task.add_done_callback(lambda _: tasks.pop(game_id, None))

    def maybe_analyze(self, rec: GameRecord, game: Game) -> None:
        """Ask the engine for its evaluation of the position when the game wants one and lacks it;
        a game that moves on meanwhile is evaluated again once the running request is done."""
        if self.stopping or not rec.analysis or game.finished or rec.evaluation is not None:
            return
        if rec.id in self.analysis_tasks:
            self.analysis_again.add(rec.id)
            return
        self.background(self.analysis_tasks, rec.id, self.analyze(rec.id))

    async def analyze(self, game_id: str) -> None:
        """The analysis bar: never fails a player's request; a failure is logged and the bar waits
        for the next move."""
        try:
            while True:
                self.analysis_again.discard(game_id)
                await self._analyze(game_id)
                if game_id not in self.analysis_again or self.stopping:
                    return
        except Exception:  # a background task: nobody else would see the error
            log.exception("analysis failed", extra={"fields": {"game": game_id}})
        finally:
            self.analysis_again.discard(game_id)

    async def _analyze(self, game_id: str) -> None:
        rec, game = await self.load(game_id)
        if not rec.analysis or game.finished or rec.evaluation is not None:
            return
        try:
            evaluation = await self.engine.analyze(rec.size, rec.komi, game.moves, game.to_play)
        except PositionRefused as exc:
            # GNU Go has no analysis (501): expected, so not a warning.
            log.info("no analysis", extra={"fields": {"game": game_id, "why": str(exc)}})
            return
        except EngineError as exc:
            log.warning("analysis failed", extra={"fields": {"game": game_id, "error": str(exc)}})
            return
        if self.maintenance.flag.read() is not None:
            return  # no write during maintenance; the next move asks again
        try:
            stored = await self.store.evaluate(game_id, rec.version, evaluation)
        except (StorageFull, ReadOnly) as exc:
            log.warning("analysis not stored", extra={"fields": {"game": game_id, "error": repr(exc)}})
            return
        if not stored:
            return  # the game moved on while the engine thought: the new position is asked for
        rec.evaluation = evaluation
        await self.pubsub.publish(game_id, json.dumps({"type": "game", "game": self.view(rec, game)}))

    def maybe_score(self, rec: GameRecord, game: Game) -> None:
        """Ask the engine for the dead stones of a game just ended by two passes."""
        if self.stopping or not game.ended_by_passes or rec.dead is not None or rec.id in self.score_tasks:
            return
        if self.maintenance.flag.read() is not None:
            return  # asked again on the next GET or WebSocket connection
        self.background(self.score_tasks, rec.id, self.score(rec.id))

    async def score(self, game_id: str) -> None:
        try:
            await self._score(game_id)
        except MaintenanceOn:
            log.info("dead stones not stored: maintenance", extra={"fields": {"game": game_id}})
        except Exception:  # a background task: the next GET or WebSocket connection asks again
            log.exception("judging the dead stones failed", extra={"fields": {"game": game_id}})

    async def _score(self, game_id: str) -> None:
        rec, game = await self.load(game_id)
        if not game.ended_by_passes or rec.dead is not None:
            return
        dead = await self.engine.dead_stones(rec.size, rec.komi, game.moves)
        async with self.lock_of(game_id):
            for _ in range(5):
                rec, game = await self.load(game_id)
                if rec.dead is not None:
                    return
                try:
                    game.judge(dead)
                except IllegalMove as exc:
                    raise EngineError(f"engine answer garbled: {exc}") from None
                rec.dead, rec.result = game.dead, game.result
                self.maintenance.refuse_writes()
                try:
                    await self.write(self.store.update(rec))
                except Conflict:
                    continue
                break
            else:
                return
        log.info(
            "dead stones judged", extra={"fields": {"game": game_id, "dead": len(dead), "result": rec.result}}
        )
        await self.pubsub.publish(game_id, json.dumps({"type": "game", "game": self.view(rec, game)}))

    # -- HTTP handlers
    async def create_game(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        size = body.get("size", 19)
        if type(size) is not int or size not in SIZES:
            raise bad_request(web.HTTPBadRequest, f"size must be one of {list(SIZES)}")
        komi = body.get("komi", 7.5)
        if (
            type(komi) not in (int, float)
            or not math.isfinite(komi)
            or abs(komi) > 150
            or komi * 2 != int(komi * 2)
        ):
            raise bad_request(web.HTTPBadRequest, "komi must be a multiple of 0.5 between -150 and 150")
        opponent = body.get("opponent", "ai")
        if opponent not in ("ai", "human"):
            raise bad_request(web.HTTPBadRequest, "opponent must be 'ai' or 'human'")
        color = body.get("color", "black")
        if color not in COLORS:
            raise bad_request(web.HTTPBadRequest, "color must be 'black' or 'white'")
        level = body.get("level", DEFAULT_LEVEL if opponent == "ai" else None)
        if opponent == "ai" and (not isinstance(level, str) or level not in LEVELS):
            raise bad_request(web.HTTPBadRequest, f"level must be one of {list(LEVELS)}")
        if opponent == "human" and level is not None:
            raise bad_request(web.HTTPBadRequest, "level: only a game against the AI has a level")
        analysis = body.get("analysis", opponent == "ai")
        if type(analysis) is not bool:
            raise bad_request(web.HTTPBadRequest, "analysis must be true or false")
        if opponent == "human" and analysis:
            raise bad_request(web.HTTPBadRequest, "analysis: only a game against the AI has the analysis bar")
        human = COLORS[color]
        tokens = {BLACK: secrets.token_urlsafe(18), WHITE: secrets.token_urlsafe(18)}
        if opponent == "ai":
            ai_color = WHITE if human == BLACK else BLACK
            tokens.pop(ai_color)
        else:
            ai_color = None
        now = time.time()
        rec = GameRecord(
            id=secrets.token_hex(8),
            size=size,
            komi=float(komi),
            opponent=opponent,
            ai_color=ai_color,
            black_token=tokens.get(BLACK),
            white_token=tokens.get(WHITE),
            moves=[],
            result=None,
            version=0,
            created_at=now,
            updated_at=now,
            level=level,
            analysis=analysis,
        )
        if ai_color == BLACK:
            self.fairness.claim_ai()  # the AI moves first: 429 while the player has enough waiting
        async with self.lock_of(rec.id):
            self.maintenance.refuse_writes()
            await self.write(self.store.create(rec))
        game = Game(size, rec.komi)
        self.maybe_ai(rec, game)
        self.maybe_analyze(rec, game)
        log.info(
            "game created",
            extra={"fields": {"game": rec.id, "size": size, "opponent": opponent, "level": level}},
        )
        return web.json_response({"game": self.view(rec, game), "tokens": tokens}, status=201)

    async def get_game(self, request: web.Request) -> web.Response:
        rec, game = await self.load(request.match_info["id"])
        self.maybe_ai(rec, game)  # picks up a game whose AI reply was lost (engine down, replica restarted)
        self.maybe_analyze(rec, game)
        self.maybe_score(rec, game)
        return web.json_response(self.view(rec, game))

    async def accept(self, request: web.Request) -> web.Response:
        """A player accepts the dead stones the engine judged and the score they give."""
        body = await read_json(request)

        def accept(rec: GameRecord, game: Game, color: str) -> bool:
            if not game.ended_by_passes:
                raise bad_request(web.HTTPConflict, "only a game ended by two passes has a result to accept")
            if rec.dead is None:
                raise bad_request(web.HTTPConflict, "the dead stones are not judged yet; try again shortly")
            if color in (rec.accepted or []):
                return False
            rec.accepted = sorted([*(rec.accepted or []), color])
            return True

        rec, game = await self.change(request.match_info["id"], body.get("token"), accept)
        return web.json_response(self.view(rec, game))

    async def set_analysis(self, request: web.Request) -> web.Response:
        """Switch the game's analysis bar on or off (a player of the game only)."""
        body = await read_json(request)
        on = body.get("on")
        if type(on) is not bool:
            raise bad_request(web.HTTPBadRequest, "on must be true or false")

        def switch(rec: GameRecord, game: Game, color: str) -> bool:
            if rec.opponent != "ai":
                raise bad_request(web.HTTPConflict, "only a game against the AI has the analysis bar")
            if rec.analysis == on:
                return False
            rec.analysis, rec.evaluation = on, None
            return True

        rec, game = await self.change(request.match_info["id"], body.get("token"), switch)
        self.maybe_analyze(rec, game)
        return web.json_response(self.view(rec, game))

    async def change(
        self, game_id: str, token: object, change: Callable[[GameRecord, Game, str], bool]
    ) -> tuple[GameRecord, Game]:
        """A change of a game that is no move, by one of its players: `change` edits the record
        and says whether there is anything to store. Stored under the game's lock (again on a
        concurrent write), then sent to the game's watchers."""
        async with self.lock_of(game_id):
            for _ in range(5):
                rec, game = await self.load(game_id)
                if not change(rec, game, self.color_of(rec, token)):
                    return rec, game
                self.maintenance.refuse_writes()
                try:
                    await self.write(self.store.update(rec))
                except Conflict:
                    continue
                break
            else:
                raise bad_request(web.HTTPConflict, "the game keeps changing; try again")
        await self.pubsub.publish(game_id, json.dumps({"type": "game", "game": self.view(rec, game)}))
        return rec, game

    async def play(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        move = body.get("move")
        if not isinstance(move, str) or move.lower() in ("pass", RESIGN):
            raise bad_request(web.HTTPBadRequest, "move must be a vertex such as 'D4' (use /pass or /resign)")
        return web.json_response(await self.apply(request.match_info["id"], body.get("token"), move))

    async def pass_turn(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        return web.json_response(await self.apply(request.match_info["id"], body.get("token"), "pass"))

    async def resign(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        return web.json_response(await self.apply(request.match_info["id"], body.get("token"), RESIGN))

    async def sgf(self, request: web.Request) -> web.Response:
        rec, game = await self.load(request.match_info["id"])
        black = "tengen AI" if rec.ai_color == BLACK else "Black"
        white = "tengen AI" if rec.ai_color == WHITE else "White"
        return web.Response(
            text=game.sgf(black, white),
            content_type="application/x-go-sgf",
            headers={"Content-Disposition": f'attachment; filename="tengen-{rec.id}.sgf"'},
        )

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        rec, game = await self.load(request.match_info["id"])
        if self.stopping:
            raise bad_request(web.HTTPServiceUnavailable, "shutting down")
        self.fairness.open_socket()  # 429 past the WebSockets allowed per player
        # A larger message closes the socket with 1009 (message too big).
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=self.settings.limits.ws_max_message)
        await ws.prepare(request)

        async def send(message: str) -> None:
            if not ws.closed:
                await ws.send_str(message)

        self.sockets.add(ws)
        self.metrics.websockets.inc()
        self.pubsub.subscribe(rec.id, send)
        try:
            await ws.send_str(json.dumps({"type": "game", "game": self.view(rec, game)}))
            if (notice := self.maintenance.flag.read()) is not None:
                await ws.send_str(maintenance_message(notice))
            self.maybe_ai(rec, game)
            self.maybe_analyze(rec, game)
            self.maybe_score(rec, game)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str(json.dumps({"type": "pong"}))
        finally:
            self.pubsub.unsubscribe(rec.id, send)
            self.sockets.discard(ws)
            self.metrics.websockets.dec()
        return ws

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        """Ready when this replica's own stores answer. The engine is not asked: an engine outage
        would otherwise mark every backend unready at once (the load balancer would replace them
        all, dropping every WebSocket); AI moves wait for it instead, and the body says how it is.
        A full disk is reported, not failed: reads and WebSockets still work, and on one VM there
        is no other replica to send players to; writes answer 503 meanwhile."""
        await self.probe_storage()
        storage = {"storage": {"writable": False, "reason": "storage full"}} if self.storage_error else {}
        reasons = []
        for name, check in (
            ("database", self.store.ping),
            ("pubsub", self.pubsub.ping),
        ):
            try:
                await asyncio.wait_for(check(), timeout=5)
            except Exception as exc:  # any failure makes the replica unready; say which and why
                reasons.append(f"{name}: {exc!r}")
        if self.stopping:
            reasons.append("shutting down")
        if reasons:
            return web.json_response(
                {"status": "unready", "reasons": reasons, "engine": self.engine_status["status"], **storage},
                status=503,
            )
        return web.json_response({"status": "ready", "engine": self.engine_status["status"], **storage})

    async def maintenance_view(self, request: web.Request) -> web.Response:
        """This replica's state: active once it refuses every write and none is in flight."""
        notice = self.maintenance.active
        return web.json_response({"active": notice is not None, **(notice.as_dict() if notice else {})})

    async def metrics_view(self, request: web.Request) -> web.Response:
        await self.probe_storage()  # tengen_storage_writable clears once space is freed
        resp = web.Response(body=generate_latest(self.metrics.registry))
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return resp

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        started = time.monotonic()
        try:
            if request.method not in ("GET", "HEAD", "OPTIONS") and request.path.startswith("/api/"):
                self.maintenance.refuse_writes()  # early, before the body is read
            resp = await self.fairness.guard(request, handler)
            status = resp.status
        except web.HTTPException as exc:
            status = exc.status
            if status < 400:
                raise
            text = exc.text if exc.content_type == "application/json" else json.dumps({"error": exc.reason})
            resp = web.Response(text=text, status=status, content_type="application/json", headers=_keep(exc))
        elapsed = time.monotonic() - started
        self.metrics.requests.labels(request.method, route, str(status)).inc()
        if not route.startswith("/ws"):
            self.metrics.latency.labels(route).observe(elapsed)
        # Probes come every few seconds: keep them out of the info log.
        log.log(
            logging.DEBUG if route in ("/healthz", "/readyz", "/metrics") else logging.INFO,
            "request",
            extra={
                "fields": {
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "ms": round(elapsed * 1000, 1),
                }
            },
        )
        return resp


def _keep(exc: web.HTTPException) -> dict:
    return {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}


async def read_json(request: web.Request) -> dict:
    """The request's JSON object; 400 for anything else, 413 past MAX_BODY (aiohttp's client_max_size)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_BODY,
            actual_size=request.content_length,
            text=json.dumps({"error": f"the body is larger than {MAX_BODY} bytes"}),
            content_type="application/json",
        )
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError):
        raise bad_request(web.HTTPBadRequest, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request(web.HTTPBadRequest, "the body must be a JSON object")
    return body


def make_app(settings: Settings) -> web.Application:
    service = Service(settings)
    app = web.Application(client_max_size=MAX_BODY, middlewares=[service.middleware])
    app["service"] = service
    app.on_startup.append(service.on_startup)
    app.on_shutdown.append(service.on_shutdown)
    app.on_cleanup.append(service.on_cleanup)
    app.router.add_post("/api/games", service.create_game)
    app.router.add_get("/api/games/{id}", service.get_game)
    app.router.add_post("/api/games/{id}/moves", service.play)
    app.router.add_post("/api/games/{id}/pass", service.pass_turn)
    app.router.add_post("/api/games/{id}/resign", service.resign)
    app.router.add_post("/api/games/{id}/analysis", service.set_analysis)
    app.router.add_post("/api/games/{id}/accept", service.accept)
    app.router.add_get("/api/games/{id}/sgf", service.sgf)
    app.router.add_get("/ws/games/{id}", service.websocket)
    app.router.add_get("/healthz", service.healthz)
    app.router.add_get("/readyz", service.readyz)
    app.router.add_get("/metrics", service.metrics_view)
    app.router.add_get("/maintenance", service.maintenance_view)
    return app
