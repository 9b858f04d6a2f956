"""Game events to the WebSockets that watch a game: in-process, or over Redis pub/sub.

With Redis every replica subscribes to the game channels, so a move made through one replica
reaches the players connected to another. Local delivery then happens only when the message
comes back from Redis, which keeps one order for every replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable

Handler = Callable[[str], Awaitable[None]]
Observer = Callable[[float], None]
CHANNEL = "tengen:game:"
log = logging.getLogger("tengen.pubsub")


def _start_sends(handlers: list[Handler], message: str) -> list[asyncio.Future]:
    """Start one send per socket; return those still waiting (a slow reader waits alone).

    A send to a socket with room in its buffer completes without suspending, so on Python 3.12+
    each runs eagerly to completion here instead of being scheduled as a task: a broadcast to
    1,000 sockets then costs a few milliseconds rather than a full event-loop pass per socket.
    """
    if sys.version_info < (3, 12):
        return [asyncio.ensure_future(handler(message)) for handler in handlers]
    loop = asyncio.get_running_loop()
    pending = []
    for handler in handlers:
        task = asyncio.eager_task_factory(loop, handler(message))
        if not task.done():
            pending.append(task)
        elif not task.cancelled() and task.exception() is not None:
            log.debug("send failed: %r", task.exception())
    return pending


class LocalPubSub:
    def __init__(self, observe: Observer | None = None) -> None:
        self.handlers: dict[str, set[Handler]] = {}
        # Called with each broadcast's duration in seconds (the fan-out metric).
        self.observe = observe

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    def subscribe(self, game_id: str, handler: Handler) -> None:
        self.handlers.setdefault(game_id, set()).add(handler)

    def unsubscribe(self, game_id: str, handler: Handler) -> None:
        handlers = self.handlers.get(game_id)
        if handlers is not None:
            handlers.discard(handler)
            if not handlers:
                del self.handlers[game_id]

    async def publish(self, game_id: str, message: str) -> None:
        await self.deliver(game_id, message)

    async def deliver(self, game_id: str, message: str) -> None:
        handlers = list(self.handlers.get(game_id, ()))
        if not handlers:
            return
        started = time.perf_counter()
        pending = _start_sends(handlers, message)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self.observe is not None:
            self.observe(time.perf_counter() - started)


class RedisPubSub(LocalPubSub):
    def __init__(self, url: str, observe: Observer | None = None) -> None:
        super().__init__(observe)
        self.url = url
        self.redis = None
        self.reader: asyncio.Task | None = None

    async def start(self) -> None:
        import redis.asyncio as redis

        self.redis = redis.from_url(self.url)
        await self.redis.ping()
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.psubscribe(CHANNEL + "*")
        self.reader = asyncio.create_task(self._read(pubsub))

    async def _read(self, pubsub) -> None:
        while True:
            try:
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    game_id = message["channel"].decode()[len(CHANNEL) :]
                    await self.deliver(game_id, message["data"].decode())
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except Exception:  # the connection dropped: subscribe again after a pause
                log.exception("redis subscription lost; resubscribing")
                await asyncio.sleep(1)
                with contextlib.suppress(Exception):
                    await pubsub.psubscribe(CHANNEL + "*")

    async def stop(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
        if self.redis is not None:
            await self.redis.aclose()

    async def ping(self) -> None:
        await self.redis.ping()

    async def publish(self, game_id: str, message: str) -> None:
        await self.redis.publish(CHANNEL + game_id, message)


def make_pubsub(redis_url: str | None, observe: Observer | None = None) -> LocalPubSub:
    return RedisPubSub(redis_url, observe) if redis_url else LocalPubSub(observe)
