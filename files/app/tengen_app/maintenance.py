"""Maintenance mode: a flag file on the data volume turns every write away, reads go on.

The file is JSON, ``{"reason": "...", "retry_after": 600}``; its presence is the switch. Each
write stats it (cheap, no read unless it changed), so a replica refuses writes the moment the
file appears, and every replica that sees the same volume agrees without talking to the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from .rules import Game

if TYPE_CHECKING:
    from .app import Service

log = logging.getLogger("tengen.app")
DEFAULT_REASON = "scheduled maintenance"
DEFAULT_RETRY_AFTER = 300


@dataclass(frozen=True)
class Notice:
    reason: str
    retry_after: int
    since: float

    def as_dict(self) -> dict:
        return asdict(self)


def parse(raw: bytes, since: float) -> Notice:
    """The notice a flag file holds; a file we cannot understand still means maintenance."""
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        log.warning("maintenance file is not a JSON object; keeping writes refused")
        data = {}
    reason = data.get("reason")
    retry = data.get("retry_after")
    return Notice(
        reason=reason if isinstance(reason, str) and reason.strip() else DEFAULT_REASON,
        retry_after=retry if type(retry) is int and retry > 0 else DEFAULT_RETRY_AFTER,
        since=since,
    )


class Flag:
    """The flag file, re-read only when its inode, size or mtime changed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._key: tuple | None = None
        self._notice: Notice | None = None

    def read(self) -> Notice | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._key = self._notice = None
            return None
        except OSError as exc:  # unreadable directory: refusing writes is the safe side
            log.warning("maintenance file cannot be checked: %s", exc)
            return Notice(DEFAULT_REASON, DEFAULT_RETRY_AFTER, 0.0)
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key != self._key:
            try:
                with open(self.path, "rb") as fh:
                    raw = fh.read()
            except FileNotFoundError:
                self._key = self._notice = None
                return None
            except OSError:
                raw = b""
            self._notice, self._key = parse(raw, st.st_mtime), key
        return self._notice


class MaintenanceOn(web.HTTPServiceUnavailable):
    """A write refused because the service is in maintenance (503, Retry-After, the reason)."""

    def __init__(self, notice: Notice) -> None:
        super().__init__(
            text=json.dumps(
                {
                    "error": f"tengen is in maintenance ({notice.reason}): games can be read but not"
                    f" changed; try again in {notice.retry_after} seconds",
                    "maintenance": notice.as_dict(),
                }
            ),
            content_type="application/json",
            headers={"Retry-After": str(notice.retry_after)},
        )


def maintenance_message(notice: Notice | None) -> str:
    if notice is None:
        return json.dumps({"type": "maintenance", "active": False})
    return json.dumps({"type": "maintenance", "active": True, **notice.as_dict()})


class Maintenance:
    """The maintenance switch of one replica.

    Writes check the flag file under the game's lock right before they write, so a write either
    saw no flag and completes, or sees it and is refused: never half. A watcher notices the file
    within POLL seconds, then takes every game lock once, so that the writes which checked before
    the file appeared have finished; only then does `active` (GET /maintenance) report it. An
    operator who waits for every replica to report it knows that no write is in flight anywhere.
    """

    POLL = 0.5

    def __init__(self, service: Service, path: str) -> None:
        self.service = service
        self.flag = Flag(path)
        self.active: Notice | None = None
        self.deferred_ai: set[str] = set()
        self.watcher: asyncio.Task | None = None

    def start(self) -> None:
        self.watcher = asyncio.create_task(self.watch())

    async def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            await asyncio.gather(self.watcher, return_exceptions=True)

    def refuse_writes(self) -> None:
        notice = self.flag.read()
        if notice is not None:
            raise MaintenanceOn(notice)

    def defer_ai(self, game_id: str) -> bool:
        """True (and the game remembered) when the AI must not move now."""
        if self.flag.read() is None:
            return False
        self.deferred_ai.add(game_id)
        return True

    async def watch(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:  # keep watching: the flag must not go unnoticed after one failure
                log.exception("maintenance watcher failed")
            await asyncio.sleep(self.POLL)

    async def step(self) -> None:
        notice = self.flag.read()
        if notice == self.active:
            return
        if notice is not None and self.active is None:
            for lock in self.service.locks:  # wait for the writes that checked before the flag
                async with lock:
                    pass
        self.active = notice
        log.info("maintenance", extra={"fields": {"active": notice is not None}})
        message = maintenance_message(notice)
        sockets = list(self.service.sockets)
        await asyncio.gather(*(ws.send_str(message) for ws in sockets), return_exceptions=True)
        if notice is None:
            deferred, self.deferred_ai = self.deferred_ai, set()
            for game_id in deferred:
                rec = await self.service.store.get(game_id)
                if rec is not None:
                    self.service.maybe_ai(rec, Game(rec.size, rec.komi, rec.moves))
