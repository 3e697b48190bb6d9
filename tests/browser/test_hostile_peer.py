"""The page against misbehaving peers: a wrong sha256, a hostile name, a vanishing receiver."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser.pages import BrowserPeer, PeerFactory
from support import cli_env
from websockets.sync.client import connect

pytestmark = pytest.mark.browser

HOSTILE_SENDER = Path(__file__).with_name("hostile_sender.py")
PROCESS_TIMEOUT_S = 90.0


@pytest.fixture
def run_hostile(peers: PeerFactory) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def run(target: BrowserPeer, mode: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, str(HOSTILE_SENDER), peers.server.ws_url, "mallory", target.name,
             mode],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
        )
        started.append(process)
        return process

    try:
        yield run
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=PROCESS_TIMEOUT_S)


def replies(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT_S)
    assert process.returncode == 0, stderr
    return [json.loads(line) for line in stdout.splitlines()]


def test_hash_mismatch_is_refused_and_reported(peers: PeerFactory, run_hostile: Any) -> None:
    page = peers.open("web")
    sender = run_hostile(page, "bad-hash")
    page.wait_for_offer()
    page.page.click("#accept-button")
    assert "sha256 mismatch for tampered.txt" in page.wait_for_status("error")
    answers = replies(sender)
    assert answers[0]["type"] == "accept"
    assert answers[1] == {"type": "ack", "index": 0, "ok": False, "reason": "sha256 mismatch"}
    # Nothing unverified is ever offered as a download.
    assert page.page.locator("#received-list li").count() == 0


def test_name_climbing_out_is_refused_before_any_question(peers: PeerFactory,
                                                          run_hostile: Any) -> None:
    page = peers.open("web")
    sender = run_hostile(page, "bad-name")
    status = page.wait_for_status("error")
    assert "../escape.txt" in status and "'..'" in status
    answers = replies(sender)
    assert answers[0]["type"] == "error"
    assert "../escape.txt" in answers[0]["message"]
    assert not page.page.is_visible("#offer-dialog")


def test_receiver_that_vanishes_before_answering_is_reported(peers: PeerFactory) -> None:
    page = peers.open("web")
    with connect(peers.server.ws_url) as ghost:
        ghost.send(json.dumps({"type": "login", "name": "ghost"}))
        page.pick_user("ghost")
        page.choose_files([("never.txt", b"never delivered")])
        page.page.click("#send-button")
        while json.loads(ghost.recv(timeout=PROCESS_TIMEOUT_S))["type"] != "offer":
            pass
    # The server tells the page with `leave`; the page says who is gone.
    assert page.wait_for_status("error") == "ghost left before the transfer finished"
    page.wait_for_user("ghost", online=False)
