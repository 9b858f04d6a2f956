"""Fair use: one player cannot starve the others of the engine or of WebSockets.

A player is an address as the proxies saw it (the game API has no accounts; a game's token
only says which colour a request plays). IPv6 addresses count by their /64, the network one
subscriber is given, so that a player cannot take a new bucket for every address of it.

- Pending AI moves per player: creating a game where the AI moves first, or playing in a game
  against the AI, answers 429 (JSON reason, Retry-After) while the player already has as many
  AI moves waiting as allowed. A move asked for by a reload (GET, WebSocket) is not refused.
- The engine is asked through a fair queue: at most `engine_slots` moves at a time from this
  replica, the next slot going to the players in turn rather than in arrival order.
- WebSockets per player: one more is refused with 429 before the upgrade.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

# The proxies in front of the backend (nginx, Caddy, the load balancer) run on private networks.
DEFAULT_TRUSTED = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _int(env: dict, name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number (got {raw!r})") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum} (got {value})")
    return value


def parse_networks(text: str) -> list[Network]:
    try:
        return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise ValueError(f"TENGEN_TRUSTED_PROXIES: {exc}") from None


@dataclass
class Limits:
    ai_moves_per_player: int = 4  # pending AI moves of one player; 0 = no limit
    engine_slots: int = 4  # engine requests in flight from this replica
    websockets_per_player: int = 200  # 0 = no limit
    ws_max_message: int = 4096  # bytes; a client sends "ping" and nothing larger
    retry_after: int = 5  # seconds, said with a 429
    trusted_proxies: list[Network] = field(default_factory=lambda: parse_networks(DEFAULT_TRUSTED))

    @classmethod
    def from_env(cls, env: dict | None = None) -> Limits:
        env = os.environ if env is None else env
        return cls(
            ai_moves_per_player=_int(env, "TENGEN_AI_MOVES_PER_PLAYER", cls.ai_moves_per_player),
            engine_slots=_int(env, "TENGEN_ENGINE_SLOTS", cls.engine_slots, minimum=1),
            websockets_per_player=_int(env, "TENGEN_WEBSOCKETS_PER_PLAYER", cls.websockets_per_player),
            ws_max_message=_int(env, "TENGEN_WS_MAX_MESSAGE", cls.ws_max_message, minimum=64),
            retry_after=_int(env, "TENGEN_RETRY_AFTER", cls.retry_after, minimum=1),
            trusted_proxies=parse_networks(env.get("TENGEN_TRUSTED_PROXIES", DEFAULT_TRUSTED)),
        )


def player_key(address: str) -> str:
    """The bucket of an address: IPv4 as it is, IPv6 by its /64 (an IPv4-mapped one as IPv4).
    Anything that is not an address (a Unix socket) is its own bucket."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_address(peer: str | None, forwarded_for: str | None, trusted: list[Network]) -> str:
    """The player's address: the peer, unless the peer is a trusted proxy; then the right-most
    address of X-Forwarded-For that is not a trusted proxy (the ones left of it could be
    written by the player), or the left-most when all are."""
    ip = _parse(peer or "")
    if ip is None or not any(ip in net for net in trusted) or not forwarded_for:
        return peer or "unknown"
    hops = [hop for hop in (_parse(part) for part in forwarded_for.split(",")) if hop is not None]
    for hop in reversed(hops):
        if not any(hop in net for net in trusted):
            return str(hop)
    return str(hops[0]) if hops else peer or "unknown"


def too_many(reason: str, retry_after: int) -> web.HTTPTooManyRequests:
    return web.HTTPTooManyRequests(
        text=json.dumps({"error": reason, "reason": "fair use"}),
        content_type="application/json",
        headers={"Retry-After": str(retry_after)},
    )


class FairQueue:
    """At most `slots` holders at a time; a freed slot goes to the players in turn (round robin
    over the players waiting), each player's own waiters in arrival order."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.busy = 0
        self.waiting: OrderedDict[str, deque[asyncio.Future]] = OrderedDict()

    def queued(self) -> int:
        return sum(len(q) for q in self.waiting.values())

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        if self.busy < self.slots and not self.waiting:
            self.busy += 1
        else:
            future = asyncio.get_running_loop().create_future()
            self.waiting.setdefault(key, deque()).append(future)
            try:
                await future  # the slot is handed over already counted
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._release()  # handed a slot while being cancelled: pass it on
                else:
                    self._forget(key, future)
                raise
        try:
            yield
        finally:
            self._release()

    def _forget(self, key: str, future: asyncio.Future) -> None:
        queue = self.waiting.get(key)
        if queue is not None and future in queue:
            queue.remove(future)
            if not queue:
                del self.waiting[key]

    def _release(self) -> None:
        while self.waiting:
            key, queue = next(iter(self.waiting.items()))
            future = queue.popleft()
            # This player goes to the back of the turn; gone if nothing else of theirs waits.
            del self.waiting[key]
            if queue:
                self.waiting[key] = queue
            if not future.done():
                future.set_result(None)
                return
        self.busy -= 1


class _Scope:
    """What one request holds: its player, the AI move it may have claimed, its WebSocket."""

    def __init__(self, player: str) -> None:
        self.player = player
        self.open = True
        self.claimed = False  # an AI move counted for the player, not yet handed to its task
        self.socket = False


_scope: ContextVar[_Scope | None] = ContextVar("tengen_fair_use", default=None)


class Fairness:
    """The counters of one replica (each replica limits what it serves)."""

    def __init__(self, limits: Limits, registry: CollectorRegistry | None = None) -> None:
        self.limits = limits
        self.queue = FairQueue(limits.engine_slots)
        self.ai_pending: dict[str, int] = {}  # player (or game) -> AI moves waiting
        self.sockets: dict[str, int] = {}
        registry = registry or CollectorRegistry()
        self.refused = Counter(
            "tengen_fair_use_refused", "Requests refused with 429 for fair use", ["limit"], registry=registry
        )
        Gauge(
            "tengen_engine_queue_waiting",
            "AI moves waiting for an engine slot of this replica",
            registry=registry,
        ).set_function(self.queue.queued)

    def player(self, request: web.Request) -> str:
        forwarded = request.headers.get("X-Forwarded-For")
        return player_key(client_address(request.remote, forwarded, self.limits.trusted_proxies))

    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Run a handler in its player's scope; whatever it claimed and did not hand over (a
        refused write, a WebSocket that closed) is given back when it returns."""
        scope = _Scope(self.player(request))
        token = _scope.set(scope)
        try:
            return await handler(request)
        finally:
            _scope.reset(token)
            scope.open = False
            if scope.claimed:
                self._count(self.ai_pending, scope.player, -1)
            if scope.socket:
                self._count(self.sockets, scope.player, -1)

    @staticmethod
    def _count(counts: dict[str, int], key: str, step: int) -> None:
        value = counts.get(key, 0) + step
        if value > 0:
            counts[key] = value
        else:
            counts.pop(key, None)

    # -- AI moves
    def claim_ai(self) -> None:
        """Count the AI move this request will ask for; 429 when its player already has as many
        waiting as allowed. Once per request, before anything is written."""
        scope = _scope.get()
        if scope is None or not scope.open or scope.claimed:
            return
        limit = self.limits.ai_moves_per_player
        if limit and self.ai_pending.get(scope.player, 0) >= limit:
            self.refused.labels("ai_moves").inc()
            raise too_many(
                f"you have {limit} moves waiting for the AI already: wait for its answers",
                self.limits.retry_after,
            )
        self._count(self.ai_pending, scope.player, 1)
        scope.claimed = True

    def ai_started(self, game_id: str) -> str:
        """The queue key of a game's AI move: the player whose request claimed it, or the game
        itself for a move nobody claimed (a reload, a restart), so that such games take turns too.
        Hand ai_done the key when the move is over."""
        scope = _scope.get()
        if scope is not None and scope.open and scope.claimed:
            scope.claimed = False  # the task gives it back
            return scope.player
        key = f"game:{game_id}"
        self._count(self.ai_pending, key, 1)
        return key

    def ai_done(self, key: str) -> None:
        self._count(self.ai_pending, key, -1)

    # -- WebSockets
    def open_socket(self) -> None:
        """Count this request's WebSocket (given back when the handler returns); 429 over the limit."""
        scope = _scope.get()
        if scope is None or scope.socket:
            return
        limit = self.limits.websockets_per_player
        if limit and self.sockets.get(scope.player, 0) >= limit:
            self.refused.labels("websockets").inc()
            raise too_many(
                f"{limit} WebSockets are open from your address already: close one first",
                self.limits.retry_after,
            )
        self._count(self.sockets, scope.player, 1)
        scope.socket = True
