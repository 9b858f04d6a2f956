"""The client side of the engine gateways: one question, "what does this colour play here?".

The backend may know several gateways (the game VM's own and engine VMs). Each move goes to the
least busy engine that is up. An engine that fails (refused connection, timeout, 5xx other than
"queue full") is taken out at once. Every engine is probed on `/readyz` in the background: one
in use that fails PROBE_FAILURES probes in a row, while another is up, is taken out too, and the
moves it holds are asked of another engine (a VM that vanished leaves pooled connections that
would otherwise hang until the request timeout); one taken out is taken back when it answers 200
again. With no engine up, a move waits for one until its deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger("tengen.engine")

PROBE_FAILURES = 2  # failed probes in a row that take an engine in use out
PROBE_TIMEOUT = 3.0


# The AI's strengths a player picks from: KataGo's visits per move (its search is also cut at
# the gateway's TENGEN_KATAGO_MAX_TIME) and GNU Go's --level (1-10). "medium" is the gateway's
# own default (TENGEN_KATAGO_MAX_VISITS=100, TENGEN_GNUGO_LEVEL=5).
LEVELS: dict[str, dict[str, int]] = {
    "beginner": {"visits": 10, "gnugo_level": 1},
    "easy": {"visits": 40, "gnugo_level": 3},
    "medium": {"visits": 100, "gnugo_level": 5},
    "hard": {"visits": 400, "gnugo_level": 8},
}
DEFAULT_LEVEL = "medium"


def strength(level: str | None) -> dict:
    """The fields of a move request that ask for the level's strength (none: the gateway's own)."""
    if level is None:
        return {}
    return {"level": level, **LEVELS[level]}


class EngineError(Exception):
    @property
    def reason(self) -> str:
        """The short reason a player may see ("engine unreachable"), without addresses or details."""
        return str(self).split(":", 1)[0]


class PositionRefused(EngineError):
    """The engine answered, and refused the position (4xx): asking another engine would not help."""


@dataclass
class Engine:
    url: str
    up: bool = True
    inflight: int = 0
    failures: int = 0
    probe_failures: int = 0  # failed probes in a row
    kind: str | None = None  # "gnugo" or "katago", as its /readyz said; None until it answered
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # set while taken out


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge(
            "tengen_engine_up",
            "1 while the engine is in use, 0 while taken out",
            ["engine"],
            registry=registry,
        )
        self.inflight = Gauge(
            "tengen_engine_inflight", "Move requests in flight", ["engine"], registry=registry
        )
        self.requests = Counter(
            "tengen_engine_requests",
            "Move requests by engine and outcome",
            ["engine", "outcome"],
            registry=registry,
        )
        self.transitions = Counter(
            "tengen_engine_transitions",
            "Times an engine was taken out or back",
            ["engine", "to"],
            registry=registry,
        )


def parse_urls(text: str) -> list[str]:
    """The engine URLs of a comma-separated list; duplicates are dropped."""
    found = [part.strip().rstrip("/") for part in text.split(",") if part.strip()]
    if not found:
        raise ValueError("no engine URL: set TENGEN_ENGINE_URLS or TENGEN_ENGINE_URL")
    for one in found:
        if not one.startswith(("http://", "https://")):
            raise ValueError(f"engine URL {one!r} must start with http:// or https://")
    return list(dict.fromkeys(found))


class EngineClient:
    def __init__(
        self,
        urls: list[str] | str,
        timeout: float = 60.0,
        *,
        token: str = "",
        request_timeout: float = 35.0,
        probe_interval: float = 2.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        urls = [urls] if isinstance(urls, str) else urls
        self.engines = [Engine(url.rstrip("/")) for url in urls]
        self.timeout = timeout
        self.request_timeout = request_timeout
        self.probe_interval = probe_interval
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.metrics = EngineMetrics(registry or CollectorRegistry())
        self.session: aiohttp.ClientSession | None = None
        self.prober: asyncio.Task | None = None
        self.changed = asyncio.Event()  # set when an engine comes back or a request ends
        self.turn = itertools.count()  # breaks ties between equally busy engines in turn
        for engine in self.engines:
            self.metrics.up.labels(engine.url).set(1)
            self.metrics.inflight.labels(engine.url).set_function(lambda e=engine: e.inflight)

    @property
    def url(self) -> str:
        return ",".join(engine.url for engine in self.engines)

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(headers=self.headers)
        self.prober = asyncio.create_task(self._probe_loop())

    async def stop(self) -> None:
        if self.prober is not None:
            self.prober.cancel()
            await asyncio.gather(self.prober, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    # -- health
    def _mark(self, engine: Engine, up: bool, why: str = "") -> None:
        if engine.up == up:
            return
        engine.up = up
        if up:
            engine.gone.clear()
        else:
            engine.gone.set()  # the moves it holds are asked elsewhere
        self.metrics.up.labels(engine.url).set(1 if up else 0)
        self.metrics.transitions.labels(engine.url, "up" if up else "down").inc()
        if up:
            engine.failures = 0
            self.changed.set()
            log.info("engine taken back", extra={"fields": {"engine": engine.url}})
        else:
            log.warning("engine taken out", extra={"fields": {"engine": engine.url, "why": why}})

    async def _probe(self, engine: Engine) -> bool:
        assert self.session is not None
        try:
            timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
            async with self.session.get(f"{engine.url}/readyz", timeout=timeout) as resp:
                if resp.status != 200:
                    return False
                data = await resp.json(content_type=None)
                if isinstance(data, dict) and isinstance(data.get("engine"), str):
                    engine.kind = data["engine"]
            if self.headers:
                # /readyz is open to health checks; /metrics is not: it shows the token is accepted.
                async with self.session.get(f"{engine.url}/metrics", timeout=timeout) as resp:
                    return resp.status == 200
            return True
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return False

    async def _probe_loop(self) -> None:
        """Probe every engine: one taken out that answers is taken back; one in use that fails
        PROBE_FAILURES probes in a row is taken out while another is up to take its moves (a lone
        engine slow to answer a probe on a busy VM is better waited for)."""
        while True:
            await asyncio.sleep(self.probe_interval)
            results = await asyncio.gather(*(self._probe(engine) for engine in self.engines))
            for engine, ok in zip(self.engines, results, strict=True):
                engine.probe_failures = 0 if ok else engine.probe_failures + 1
                if ok:
                    self._mark(engine, True)
                elif engine.probe_failures >= PROBE_FAILURES and any(
                    other.up for other in self.engines if other is not engine
                ):
                    self._mark(engine, False, f"{engine.probe_failures} health probes failed in a row")

    async def ready(self) -> None:
        """Ready as soon as one engine answers its readiness probe: an unreachable engine VM
        must not hold the answer up to its timeout (health checks allow a few seconds)."""
        assert self.session is not None
        probes = {asyncio.create_task(self._probe(engine)): engine for engine in self.engines}
        pending = set(probes)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.result():
                        self._mark(probes[task], True)
                        return
        finally:
            for task in pending:
                task.cancel()
        raise EngineError(f"engine unreachable: no engine ready among {self.url}")

    # -- moves
    def _pick(self, avoid: set[str], path: str = "/move") -> Engine | None:
        candidates = [
            engine
            for engine in self.engines
            if engine.up and engine.url not in avoid and self._can(engine, path)
        ]
        if not candidates:
            return None
        least = min(engine.inflight for engine in candidates)
        idle = [engine for engine in candidates if engine.inflight == least]
        return idle[next(self.turn) % len(idle)]

    async def move(
        self, size: int, komi: float, moves: list[list[str]], color: str, level: str | None = None
    ) -> str:
        """The engine's move: a vertex, "pass" or "resign", at the game's level (LEVELS).

        Tries the engines up, least busy first; waits for one to come back when none is up;
        raises EngineError at the deadline or when an engine refuses the position.
        """
        body = {"size": size, "komi": komi, "rules": "chinese", "moves": moves, "color": color}
        body.update(strength(level))
        data = await self.call("/move", body, self.timeout)
        try:
            return str(data["move"])
        except (KeyError, TypeError):
            raise EngineError(f"engine answer garbled: no move in {data!r}") from None

    async def analyze(self, size: int, komi: float, moves: list[list[str]], color: str) -> dict:
        """The engine's evaluation for Black: black_win_rate (0..1) and black_score_lead (points).

        Raises PositionRefused when the engine cannot analyse (GNU Go answers 501)."""
        body = {"size": size, "komi": komi, "rules": "chinese", "moves": moves, "color": color}
        data = await self.call("/analyze", body, self.request_timeout)
        try:
            return {
                "black_win_rate": float(data["black_win_rate"]),
                "black_score_lead": float(data["black_score_lead"]),
            }
        except (KeyError, TypeError, ValueError):
            raise EngineError(f"engine answer garbled: no evaluation in {data!r}") from None

    async def dead_stones(self, size: int, komi: float, moves: list[list[str]]) -> list[str]:
        """The stones the engine judges dead at the end of a game (vertices)."""
        body = {"size": size, "komi": komi, "rules": "chinese", "moves": moves}
        data = await self.call("/score", body, self.request_timeout)
        dead = data.get("dead") if isinstance(data, dict) else None
        if not isinstance(dead, list) or not all(isinstance(v, str) for v in dead):
            raise EngineError(f"engine answer garbled: no dead stones in {data!r}")
        return dead

    @staticmethod
    def _can(engine: Engine, path: str) -> bool:
        """GNU Go answers /analyze with 501: it is not asked (nor made busier) for nothing."""
        return not (path == "/analyze" and engine.kind == "gnugo")

    async def call(self, path: str, body: dict, timeout: float) -> dict:
        """POST `body` to `path` of the engines up, least busy first, until one answers or the deadline."""
        assert self.session is not None
        if not any(self._can(engine, path) for engine in self.engines):
            raise PositionRefused(f"no engine can answer {path}: {self.url} run GNU Go")
        deadline = time.monotonic() + timeout
        busy: set[str] = set()  # engines whose queue was full on this round
        last = "engine request failed: every engine is taken out after failing"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EngineError(f"no engine answered within {timeout:g} s: {last}")
            engine = self._pick(busy, path)
            if engine is None and not any(e.up for e in self.engines):
                # Every engine is out: the caller waits and asks again (the backend tells the game's
                # watchers why the move is late), while the prober takes engines back.
                raise EngineError(last)
            if engine is None:
                # All busy: wait for a change (a request done, an engine back), then retry.
                self.changed.clear()
                try:
                    await asyncio.wait_for(self.changed.wait(), timeout=min(remaining, 1.0))
                except TimeoutError:
                    pass
                busy.clear()
                continue
            outcome, answer = await self._ask(engine, path, body, min(remaining, self.request_timeout))
            self.metrics.requests.labels(engine.url, outcome).inc()
            if outcome == "ok":
                return answer
            if outcome == "refused":
                raise PositionRefused(answer)
            last = f"engine request failed: {engine.url}: {answer}"
            if outcome == "busy":
                busy.add(engine.url)
            else:
                engine.failures += 1
                self._mark(engine, False, answer)

    async def _ask(self, engine: Engine, path: str, body: dict, timeout: float) -> tuple[str, object]:
        """One request to one engine: (outcome, move or reason); outcome is ok, busy, refused or
        failed. Given up as failed as soon as the engine is taken out meanwhile."""
        engine.inflight += 1
        asked = asyncio.ensure_future(self._post(engine, path, body, timeout))
        gone = asyncio.ensure_future(engine.gone.wait())
        try:
            await asyncio.wait({asked, gone}, return_when=asyncio.FIRST_COMPLETED)
            if asked.done():
                return asked.result()
            return "failed", "taken out while asked (its health probes failed)"
        finally:
            asked.cancel()
            gone.cancel()
            await asyncio.gather(asked, gone, return_exceptions=True)
            engine.inflight -= 1
            self.changed.set()

    async def _post(self, engine: Engine, path: str, body: dict, timeout: float) -> tuple[str, object]:
        assert self.session is not None
        try:
            async with self.session.post(
                f"{engine.url}{path}", json=body, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                data = await resp.json(content_type=None)
                if resp.status == 200:
                    if not isinstance(data, dict):
                        return "failed", f"HTTP 200 without a JSON object: {data!r}"
                    return "ok", data
                error = data.get("error") if isinstance(data, dict) else data
                if resp.status == 503:
                    return "busy", f"HTTP 503: {error}"
                # 501: this engine cannot do it at all (GNU Go has no analysis): not a failure.
                if resp.status == 501 or 400 <= resp.status < 500 and resp.status not in (401, 403):
                    return "refused", f"engine answered HTTP {resp.status}: {error}"
                return "failed", f"HTTP {resp.status}: {error}"
        except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as exc:
            return "failed", repr(exc)
