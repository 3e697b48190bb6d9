"""The page (Chromium inside home A's namespace) sending to the CLI across real NATs.

The same scenarios as test_cli_nat.py: Chromium runs under ``ip netns exec`` (a
wrapper script is playwright's executable), loads the page from ``rtcxfer serve``
on the public segment, takes the server's ``iceServers`` from the login reply and
sends a file to ``rtcxfer listen`` in home B (or on the same LAN). Each asserts
the path the page shows, the CLI's ``path`` event and the bytes received.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser.pages import CHROMIUM, CHROMIUM_ARGS, BrowserPeer
from nat.netns import Home
from nat.scenario import SERVER_HTTP, STUN_URL, Scenario, events
from playwright.sync_api import Browser, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

pytestmark = [pytest.mark.slow, pytest.mark.browser]

UI_TIMEOUT_MS = 60_000


@pytest.fixture
def page_in_a1(scenario: Scenario, tmp_path: Path) -> Iterator[Any]:
    """``open(relay_only=False)``: a logged-in page as alice, Chromium inside a1."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    wrapper = tmp_path / "chromium-in-a1"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {scenario.world.ns("a1")} '
                       f'{CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    with sync_playwright() as driver:
        browser: Browser = driver.chromium.launch(
            executable_path=str(wrapper), headless=True, args=CHROMIUM_ARGS,
            env={k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")})
        try:
            def open_page(relay_only: bool = False) -> BrowserPeer:
                context = browser.new_context()
                page = context.new_page()
                page.set_default_timeout(UI_TIMEOUT_MS)
                peer = BrowserPeer(page=page, name="alice")
                page.on("pageerror", lambda error: peer.problems.append(str(error)))
                console: list[str] = []
                page.on("console", lambda message: console.append(
                    f"{message.type}: {message.text}"))
                page.on("requestfailed", lambda request: console.append(
                    f"request failed: {request.url} {request.failure}"))
                page.goto(SERVER_HTTP)
                try:
                    page.wait_for_selector("body[data-ready]")
                except PlaywrightTimeout:
                    body = page.evaluate("() => JSON.stringify(document.body.dataset)")
                    raise AssertionError(f"the page never became ready: body {body}, "
                                         f"errors {peer.problems}, console {console}") from None
                page.fill("#login-name", "alice")
                page.click("#login-button")
                page.wait_for_selector("body[data-logged-in]")
                if relay_only:
                    page.check("#relay-only")
                return peer

            yield open_page
        finally:
            browser.close()


def page_send(peer: BrowserPeer, to: str, data: bytes) -> str:
    peer.pick_user(to)
    peer.choose_files([("payload.bin", data)])
    peer.page.click("#send-button")
    peer.page.wait_for_function(
        "() => ['ok', 'error', 'warn'].includes(document.querySelector('#status').dataset.kind)"
        " && !document.querySelector('#status').textContent.startsWith('logged in')",
        timeout=UI_TIMEOUT_MS)
    return peer.page.evaluate("() => document.querySelector('#status').dataset.kind")


def page_path(peer: BrowserPeer) -> dict[str, str]:
    peer.page.wait_for_selector("#path:not([hidden])", timeout=UI_TIMEOUT_MS)
    return peer.page.evaluate("""() => {
        const p = document.querySelector('#path');
        return {text: p.textContent, kind: p.dataset.kind, local_type: p.dataset.localType,
                remote_type: p.dataset.remoteType, protocol: p.dataset.protocol,
                relay: p.dataset.relay};
    }""")


def page_transfer(scenario: Scenario, open_page: Any, *, listener_host: str = "b1",
                  relay_only: bool = False) -> tuple[dict[str, str], dict]:
    listener, folder = scenario.listen(listener_host, "bob")
    data = os.urandom(200_000)
    peer = open_page(relay_only=relay_only)
    kind = page_send(peer, "bob", data)
    assert kind == "ok", (peer.page.text_content("#status"), listener.stdout)
    listener.wait_for_line(lambda line: '"summary"' in line, timeout=30)
    received = (folder / "payload.bin").read_bytes()
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
    shown = page_path(peer)
    (cli_path,) = events(listener, "path")
    assert peer.problems == []
    return shown, cli_path


@pytest.mark.parametrize("scenario", [(Home(), Home())], indirect=True)
def test_page_endpoint_independent_nats_direct(scenario: Scenario, page_in_a1: Any) -> None:
    scenario.serve(stun=True, turn=False)
    shown, cli = page_transfer(scenario, page_in_a1)
    assert shown["kind"] == "direct" and shown["text"].endswith("direct through NAT"), shown
    assert cli["kind"] == "direct" and cli["remote_type"] in ("srflx", "prflx"), cli


@pytest.mark.parametrize("scenario", [(Home(symmetric=True), Home(symmetric=True))],
                         indirect=True)
def test_page_symmetric_nats_relayed(scenario: Scenario, page_in_a1: Any) -> None:
    scenario.serve()
    shown, cli = page_transfer(scenario, page_in_a1)
    assert shown["kind"] == "relayed" and "relayed via TURN" in shown["text"], shown
    assert cli["kind"] == "relayed", cli
    assert shown["protocol"] == "udp" or cli["protocol"] == "udp", (shown, cli)


@pytest.mark.parametrize("scenario", [(Home(block_udp=True), Home())], indirect=True)
def test_page_blocked_udp_relayed_over_tcp(scenario: Scenario, page_in_a1: Any) -> None:
    scenario.serve()
    shown, cli = page_transfer(scenario, page_in_a1)
    assert shown["kind"] == "relayed" and shown["local_type"] == "relay", shown
    assert shown["protocol"] == "tcp" and shown["text"].endswith("(tcp)"), shown
    assert cli["kind"] == "relayed" and cli["remote_type"] == "relay", cli


@pytest.mark.parametrize("scenario", [(Home(symmetric=True), Home(symmetric=True))],
                         indirect=True)
def test_page_no_path_fails_naming_the_ice_servers(scenario: Scenario,
                                                   page_in_a1: Any) -> None:
    scenario.serve(stun=True, turn=False)
    listener, folder = scenario.listen("b1", "bob")
    peer = page_in_a1()
    assert page_send(peer, "bob", b"x" * 1000) == "error"
    status = peer.page.text_content("#status") or ""
    assert "could not reach bob" in status and STUN_URL in status, status
    assert "ICE servers tried" in status
    listener.wait_for_line(lambda line: '"transfer_failed"' in line, timeout=30)
    assert not (folder / "payload.bin").exists()


@pytest.mark.parametrize("scenario", [(Home(), Home())], indirect=True)
def test_page_relay_only_on_a_lan(scenario: Scenario, page_in_a1: Any) -> None:
    scenario.serve()
    shown, cli = page_transfer(scenario, page_in_a1, listener_host="a2", relay_only=True)
    assert shown["kind"] == "relayed" and shown["local_type"] == "relay", shown
    assert cli["kind"] == "relayed" and cli["remote_type"] == "relay", cli
