"""The page keeps its DTLS certificate in IndexedDB, so the CLI's pin holds across visits."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser.pages import PeerFactory
from support import RTCXFER, CliProcess, cli_env, json_events

from rtcxfer.errors import ExitCode

pytestmark = pytest.mark.browser

CLI_TIMEOUT = 90.0


@pytest.fixture
def cli_processes() -> Iterator[list[CliProcess]]:
    started: list[CliProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def send_to_web(peers: PeerFactory, started: list[CliProcess], source: Path) -> CliProcess:
    sender = CliProcess(["send", "--server", peers.server.ws_url, "--name", "cli", "--json",
                         "web", str(source)])
    started.append(sender)
    return sender


def pinned_web() -> list[str]:
    listing = subprocess.run([*RTCXFER, "trust", "list", "--json"], capture_output=True,
                             text=True, env=cli_env(), timeout=60, check=True)
    return [json.loads(line)["fingerprint"] for line in listing.stdout.splitlines()
            if json.loads(line)["name"] == "web"]


def test_the_page_identity_survives_a_reload_and_a_new_browser_is_refused(
        peers: PeerFactory, cli_processes: list[CliProcess], tmp_path: Path) -> None:
    source = tmp_path / "f.txt"
    source.write_text("hello")
    page = peers.open("web")
    first = send_to_web(peers, cli_processes, source)
    page.wait_for_offer()
    page.page.click("#accept-button")
    assert first.wait(CLI_TIMEOUT) == ExitCode.OK, first.stderr
    [pin] = pinned_web()
    assert json_events(first, "pinned")[0]["fingerprint"] == pin

    # Same browser profile, page reloaded: same certificate, the pin holds.
    page.page.reload()
    page.page.wait_for_selector("body[data-ready]")
    peers.log_in(page, "web")
    second = send_to_web(peers, cli_processes, source)
    page.wait_for_offer()
    page.page.click("#accept-button")
    assert second.wait(CLI_TIMEOUT) == ExitCode.OK, second.stderr
    assert pinned_web() == [pin]

    # Another browser profile under the same name: another certificate, refused.
    page.page.click("#logout-button")
    other = peers.open("web")
    third = send_to_web(peers, cli_processes, source)
    assert third.wait(CLI_TIMEOUT) == ExitCode.AUTHENTICATION_FAILED, third.stderr
    assert "identity of web changed" in third.stderr
    assert other.page.locator("#offer-dialog[open]").count() == 0
