"""How long games are kept: finished games for TENGEN_FINISHED_GAME_DAYS after their last move,
unfinished ones for TENGEN_ABANDONED_GAME_DAYS without a move (abandoned); 0 keeps them forever.

Every replica sweeps once at start and then every TENGEN_GAME_SWEEP_SECONDS; the deletes are
by the indexed updated_at, so that two replicas sweeping at once only repeat each other. No
sweep while maintenance is on (the database may be being copied) or the disk is full.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass

from .store import ReadOnly, StorageFull, Store

log = logging.getLogger("tengen.lifetime")
DAY = 86400.0


@dataclass
class Lifetime:
    finished_days: float = 90.0
    abandoned_days: float = 30.0
    sweep_seconds: float = 3600.0

    @classmethod
    def from_env(cls, env: dict | None = None) -> Lifetime:
        env = os.environ if env is None else env
        values = {}
        for name, attr in (
            ("TENGEN_FINISHED_GAME_DAYS", "finished_days"),
            ("TENGEN_ABANDONED_GAME_DAYS", "abandoned_days"),
            ("TENGEN_GAME_SWEEP_SECONDS", "sweep_seconds"),
        ):
            raw = env.get(name)
            if raw is None:
                continue
            try:
                values[attr] = float(raw)
            except ValueError:
                raise ValueError(f"{name} must be a number (got {raw!r})") from None
            if values[attr] < 0:
                raise ValueError(f"{name} must not be negative (got {raw!r})")
        lifetime = cls(**values)
        if lifetime.sweep_seconds <= 0:
            raise ValueError("TENGEN_GAME_SWEEP_SECONDS must be more than 0")
        return lifetime

    def cutoffs(self, now: float) -> tuple[float | None, float | None]:
        """The updated_at before which finished and unfinished games go (None: kept forever)."""
        finished = now - self.finished_days * DAY if self.finished_days else None
        abandoned = now - self.abandoned_days * DAY if self.abandoned_days else None
        return finished, abandoned


async def sweep(store: Store, lifetime: Lifetime, now: float | None = None) -> int:
    """Delete the games past their lifetime; returns how many."""
    finished, abandoned = lifetime.cutoffs(time.time() if now is None else now)
    if finished is None and abandoned is None:
        return 0
    deleted = await store.delete_expired(finished, abandoned)
    if deleted:
        log.info("expired games deleted", extra={"fields": {"games": deleted}})
    return deleted


class Sweeper:
    def __init__(self, store: Store, lifetime: Lifetime, may_write) -> None:
        self.store = store
        self.lifetime = lifetime
        self.may_write = may_write  # () -> bool: not in maintenance, the disk not full
        self.task: asyncio.Task | None = None

    async def once(self) -> int:
        if not self.may_write():
            return 0
        try:
            return await sweep(self.store, self.lifetime)
        except (ReadOnly, StorageFull) as exc:  # not a fault: the next sweep deletes them
            log.info("game sweep skipped: the database takes no writes", extra={"fields": {"why": str(exc)}})
            return 0
        except Exception:  # the games stay until the next sweep; the service goes on
            log.exception("game sweep failed")
            return 0

    async def start(self) -> None:
        await self.once()
        self.task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.lifetime.sweep_seconds)
            await self.once()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
