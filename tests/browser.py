"""Debian's Chromium for the browser tests, started the one way that works on these machines.

Never `playwright install`: playwright-core drives the distribution's binary. The flags keep a
headless Chromium from reaching for Google's services, which a closed network refuses.
"""

from __future__ import annotations

from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright, home: Path):
    """A Chromium whose HOME (and so NSS database) is `home`."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing (scripts/test-packages.txt)"
    return playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, env={"HOME": str(home)})
