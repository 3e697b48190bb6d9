"""Fixtures of the browser tests: real headless Chromium and a real ``rtcxfer serve``.

Chromium is Debian's /usr/bin/chromium driven by playwright-python (its own
browser download does not work here); the tests skip only if it is missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser.pages import CHROMIUM, CHROMIUM_ARGS, SHOW_LOCAL_IPS, PeerFactory, Server
from playwright.sync_api import Browser, Playwright, sync_playwright
from support import running_server


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package 'chromium')")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium as the tests run it: host candidates show their real addresses."""
    chromium = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_ARGS, SHOW_LOCAL_IPS]
    )
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture(scope="module")
def stock_browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium as users run it: host candidates hidden behind mDNS ``.local`` names."""
    chromium = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def server() -> Iterator[Server]:
    with running_server() as (ws_url, process):
        http_url = "http" + ws_url.removeprefix("ws").rstrip("/") + "/"
        yield Server(ws_url=ws_url, http_url=http_url, process=process)


def _open_peers(browser: Browser, server: Server) -> Iterator[PeerFactory]:
    factory = PeerFactory(browser, server)
    try:
        yield factory
        # A CSP violation, an uncaught exception or a failed load is a bug.
        problems = [problem for peer in factory.peers for problem in peer.problems]
        assert problems == []
    finally:
        factory.close()


@pytest.fixture
def peers(browser: Browser, server: Server) -> Iterator[PeerFactory]:
    yield from _open_peers(browser, server)


@pytest.fixture
def stock_peers(stock_browser: Browser, server: Server) -> Iterator[PeerFactory]:
    yield from _open_peers(stock_browser, server)
