"""Issue 14: a server started with --token no longer locks the page out.

The page takes the token from its URL fragment (what the QR code of `rtcxfer
serve` carries) or from a field, and remembers it in the browser.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser.pages import UI_TIMEOUT_MS, PeerFactory, Server
from playwright.sync_api import Browser
from support import running_server

pytestmark = pytest.mark.browser

TOKEN = "hunter2-page"


@pytest.fixture
def token_server() -> Iterator[Server]:
    with running_server("--token", TOKEN) as (ws_url, process):
        http_url = "http" + ws_url.removeprefix("ws").rstrip("/") + "/"
        yield Server(ws_url=ws_url, http_url=http_url, process=process)


def test_token_from_the_fragment_is_used_and_remembered(browser: Browser,
                                                         token_server: Server) -> None:
    factory = PeerFactory(browser, token_server)
    try:
        context = browser.new_context()
        factory.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.goto(token_server.http_url + "#token=" + TOKEN)
        page.wait_for_selector("body[data-ready]")
        # The token left the address bar (not shared by copying it) but fills the field.
        assert "token" not in page.url
        assert page.input_value("#login-token") == TOKEN
        page.fill("#login-name", "phone")
        page.click("#login-button")
        page.wait_for_selector("body[data-logged-in]")

        # A later visit without the fragment still has it.
        second = context.new_page()
        second.goto(token_server.http_url)
        second.wait_for_selector("body[data-ready]")
        assert second.input_value("#login-token") == TOKEN
        second.fill("#login-name", "tablet")
        second.click("#login-button")
        second.wait_for_selector("body[data-logged-in]")
    finally:
        factory.close()


def test_a_page_without_the_token_is_told_and_can_type_it(browser: Browser,
                                                          token_server: Server) -> None:
    factory = PeerFactory(browser, token_server)
    try:
        peer = factory.open()
        page = peer.page
        assert page.input_value("#login-token") == ""
        page.fill("#login-name", "laptop")
        page.click("#login-button")
        assert "token" in peer.wait_for_status("error")
        page.fill("#login-token", TOKEN)
        page.click("#login-button")
        page.wait_for_selector("body[data-logged-in]")
    finally:
        factory.close()
