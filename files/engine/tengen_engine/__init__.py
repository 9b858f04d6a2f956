"""tengen's engine gateway: an HTTP API in front of a pool of GTP engine processes (KataGo or GNU Go)."""

from __future__ import annotations

__version__ = "0.1.0"
