"""A player's browser: Debian's Chromium, trusting only the sandbox's CA, plays a move against
the AI on the sandbox URL and sees the reply on the board."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.browser import launch
from tests.conftest import REPO
from tests.e2e.conftest import STATE_DIR


@pytest.fixture
def browser_home(tmp_path: Path) -> Path:
    """A HOME whose NSS database trusts the sandbox's root certificate, and nothing else of ours."""
    assert shutil.which("certutil"), "certutil is missing: libnss3-tools (scripts/test-packages.txt)"
    nssdb = tmp_path / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True)
    subprocess.run(
        [
            "certutil",
            "-A",
            "-d",
            f"sql:{nssdb}",
            "-t",
            "C,,",
            "-n",
            "tengen-sandbox",
            "-i",
            str(STATE_DIR / "caddy-root.crt"),
        ],
        check=True,
    )
    return tmp_path


def test_play_a_move_against_the_ai_in_a_browser(sandbox, browser_home):
    url = f"https://localhost:{sandbox.https_port}/"
    artifacts = REPO / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p, browser_home)
        try:
            page = browser.new_page(viewport={"width": 480, "height": 800})  # a phone-sized screen
            response = page.goto(url)
            # No certificate error to ignore: Chromium trusted the chain through the NSS database.
            assert response is not None and response.ok
            assert page.url.startswith("https://localhost:")
            page.click("#new-game button[type=submit]")
            page.wait_for_selector("#connection.live", timeout=30_000)
            # Empty 9x9 board: 81 clickable points in row order; the 41st is the centre, E5.
            page.locator("#board rect.hit").nth(40).click()
            page.wait_for_selector("#board circle.W", timeout=60_000)
            assert page.locator("#board circle.B").count() == 1
            assert page.locator("#board circle.W").count() == 1
            page.wait_for_function("document.getElementById('turn').textContent.startsWith('Your move')")
            page.screenshot(path=str(artifacts / "browser-game.png"), full_page=True)
        finally:
            browser.close()
    assert (artifacts / "browser-game.png").stat().st_size > 1000
