"""`python3 -m tengen_app serve` runs the service; `... migrate` brings the schema up to date."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os

from aiohttp import web

from . import logs
from .app import Settings, make_app
from .store import make_store


async def migrate(settings: Settings) -> int:
    store = make_store(settings.database_url, settings.db_path, settings.sqlite_synchronous)
    await store.open()
    try:
        return await store.migrate()
    finally:
        await store.close()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (the image has it): its socket writes make broadcasts several times faster."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="tengen_app")
    parser.add_argument("command", choices=["serve", "migrate"], nargs="?", default="serve")
    args = parser.parse_args()
    logs.setup(os.environ.get("TENGEN_LOG_LEVEL", "info"))
    settings = Settings.from_env()
    if args.command == "migrate":
        applied = asyncio.run(migrate(settings))
        print(json.dumps({"msg": "migrated", "applied": applied}))
        return
    logging.getLogger("tengen.app").info("starting", extra={"fields": {"port": settings.port}})
    # run_app handles SIGTERM/SIGINT: close the listener, run on_shutdown, wait for handlers, exit 0.
    web.run_app(
        make_app(settings),
        loop=new_event_loop(),
        host="0.0.0.0",
        port=settings.port,
        access_log=None,
        print=None,
        shutdown_timeout=15,
    )


if __name__ == "__main__":
    main()
