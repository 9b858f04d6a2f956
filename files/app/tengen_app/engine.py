"""The client side of the engine gateway: one question, "what does this colour play here?"."""

from __future__ import annotations

import asyncio
import time

import aiohttp


class EngineError(Exception):
    @property
    def reason(self) -> str:
        """The short reason a player may see ("engine unreachable"), without addresses or details."""
        return str(self).split(":", 1)[0]


class EngineClient:
    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def ready(self) -> None:
        assert self.session is not None
        try:
            async with self.session.get(f"{self.url}/readyz", timeout=aiohttp.ClientTimeout(total=3)) as resp:
                if resp.status != 200:
                    raise EngineError(f"engine not ready: HTTP {resp.status}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise EngineError(f"engine unreachable: {exc!r}") from exc

    async def move(self, size: int, komi: float, moves: list[list[str]], color: str) -> str:
        """The engine's move: a vertex, "pass" or "resign". A busy gateway (503) is asked again."""
        assert self.session is not None
        body = {"size": size, "komi": komi, "rules": "chinese", "moves": moves, "color": color}
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                async with self.session.post(
                    f"{self.url}/move", json=body, timeout=aiohttp.ClientTimeout(total=self.timeout)
                ) as resp:
                    if resp.status == 503 and time.monotonic() < deadline:
                        await asyncio.sleep(min(float(resp.headers.get("Retry-After", "1")), 5.0))
                        continue
                    data = await resp.json(content_type=None)
                    if resp.status != 200:
                        raise EngineError(f"engine answered HTTP {resp.status}: {data.get('error')}")
                    return str(data["move"])
            except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as exc:
                raise EngineError(f"engine request failed: {exc!r}") from exc
