"""A pool of engine processes with a bounded queue in front of it.

A request that would wait behind more than `queue` others is refused at once (the caller
answers 503), so that a burst cannot pile up requests that would time out anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .gtp import EngineDied, GtpProcess

T = TypeVar("T")
log = logging.getLogger("tengen.engine.pool")


class PoolFull(Exception):
    pass


class PoolTimeout(Exception):
    pass


class Pool:
    def __init__(
        self, argv: list[str], processes: int, queue: int, timeout: float, start_timeout: float = 120.0
    ) -> None:
        self.argv = argv
        self.engines = [GtpProcess(argv, start_timeout) for _ in range(processes)]
        self.queue = queue
        self.timeout = timeout
        self.idle: asyncio.Queue[GtpProcess] = asyncio.Queue()
        self.inflight = 0
        self.restarts = 0
        self.on_restart: Callable[[], None] = lambda: None
        # Seconds each request waited for a free process (the queue's share of its answer time).
        self.on_wait: Callable[[float], None] = lambda seconds: None
        self.watcher: asyncio.Task | None = None
        self.replacing: set[asyncio.Task] = set()

    @property
    def waiting(self) -> int:
        return max(0, self.inflight - len(self.engines))

    @property
    def ready(self) -> bool:
        return any(engine.ready and engine.alive for engine in self.engines)

    async def start(self) -> None:
        await asyncio.gather(*(engine.start() for engine in self.engines))
        for engine in self.engines:
            self.idle.put_nowait(engine)
        self.watcher = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        for task in [self.watcher, *self.replacing]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await asyncio.gather(*(engine.stop() for engine in self.engines))

    async def _restart(self, engine: GtpProcess) -> None:
        log.warning("restarting engine process", extra={"fields": {"pid": engine.pid}})
        self.restarts += 1
        self.on_restart()
        await engine.restart()

    def _replace_later(self, engine: GtpProcess) -> None:
        """Kill `engine` now and start a new process in the background; it rejoins the idle queue when ready.

        KataGo takes seconds to load its network: the request that gave up on the process answers
        at its deadline instead of waiting for the replacement.
        """
        engine.kill()

        async def replace() -> None:
            delay = 1.0
            while True:
                try:
                    await self._restart(engine)
                    break
                except Exception:
                    log.exception("engine restart failed; trying again", extra={"fields": {"in_s": delay}})
                    await asyncio.sleep(delay)
                    delay = min(30.0, delay * 2)
            self.idle.put_nowait(engine)

        task = asyncio.create_task(replace())
        self.replacing.add(task)
        task.add_done_callback(self.replacing.discard)

    async def _watch(self) -> None:
        """Replace idle processes that died (killed, out of memory) before a request finds them dead."""
        while True:
            await asyncio.sleep(1)
            for _ in range(self.idle.qsize()):
                engine = self.idle.get_nowait()
                if engine.alive:
                    self.idle.put_nowait(engine)
                else:
                    self._replace_later(engine)

    async def run(self, job: Callable[[GtpProcess], Awaitable[T]]) -> T:
        """Run `job` on a free process within the timeout, waiting in the queue included."""
        if self.inflight >= len(self.engines) + self.queue:
            raise PoolFull()
        self.inflight += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        queued = loop.time()
        try:
            try:
                engine = await asyncio.wait_for(self.idle.get(), self.timeout)
            except TimeoutError:
                self.on_wait(loop.time() - queued)
                raise PoolTimeout() from None
            self.on_wait(loop.time() - queued)
            try:
                result = await asyncio.wait_for(self._run(engine, job), max(0.01, deadline - loop.time()))
            except TimeoutError:
                # The process is mid-thought and out of step with us: replace it.
                self._replace_later(engine)
                raise PoolTimeout() from None
            except asyncio.CancelledError:
                self._replace_later(engine)
                raise
            except BaseException:
                self.idle.put_nowait(engine)
                raise
            self.idle.put_nowait(engine)
            return result
        finally:
            self.inflight -= 1

    async def _run(self, engine: GtpProcess, job: Callable[[GtpProcess], Awaitable[T]]) -> T:
        if not engine.alive:
            await self._restart(engine)
        try:
            return await job(engine)
        except EngineDied:
            await self._restart(engine)  # it died under this request: one more try on a fresh process
            return await job(engine)
