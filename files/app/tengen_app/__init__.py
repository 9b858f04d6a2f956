"""tengen's game backend: Go rules, storage, pub/sub and the aiohttp service."""

from __future__ import annotations

__version__ = "0.1.0"
