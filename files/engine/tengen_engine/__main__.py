"""`python3 -m tengen_engine` serves the engine gateway on $TENGEN_ENGINE_PORT (8001)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from aiohttp import web

from .app import Settings, make_app
from .cpu import cpu_problem


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def main() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=os.environ.get("TENGEN_LOG_LEVEL", "info").upper(), handlers=[handler])
    settings = Settings.from_env()
    if settings.engine == "katago":
        problem = cpu_problem(
            Path(os.environ.get("TENGEN_KATAGO_CPU_FLAGS_FILE", "/usr/local/share/katago/cpu-flags")),
            Path(os.environ.get("TENGEN_CPUINFO", "/proc/cpuinfo")),
        )
        if problem:
            logging.getLogger("tengen.engine").error("cannot run KataGo: " + problem)
            raise SystemExit(f"cannot run KataGo: {problem}")
    web.run_app(make_app(settings), host="0.0.0.0", port=settings.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
