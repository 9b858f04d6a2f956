"""Game events to the WebSockets that watch a game: in-process, or over Redis pub/sub.

With Redis every replica subscribes to the game channels, so a move made through one replica
reaches the players connected to another. Local delivery then happens only when the message
comes back from Redis, which keeps one order for every replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

Handler = Callable[[str], Awaitable[None]]
CHANNEL = "tengen:game:"
log = logging.getLogger("tengen.pubsub")


class LocalPubSub:
    def __init__(self) -> None:
        self.handlers: dict[str, set[Handler]] = {}

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
        if handlers:
            await asyncio.gather(*(handler(message) for handler in handlers), return_exceptions=True)


class RedisPubSub(LocalPubSub):
    def __init__(self, url: str) -> None:
        super().__init__()
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


def make_pubsub(redis_url: str | None) -> LocalPubSub:
    return RedisPubSub(redis_url) if redis_url else LocalPubSub()
