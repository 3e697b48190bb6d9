"""The page on a phone-width screen, and a CLI->page transfer that ends without a false alarm."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser.pages import PeerFactory
from support import CliProcess

from rtcxfer.errors import ExitCode

pytestmark = pytest.mark.browser

PHONE = (375, 667)  # CSS pixels of a small phone (iPhone SE class)
CLI_TIMEOUT = 90.0


@pytest.fixture
def cli_processes() -> Iterator[list[CliProcess]]:
    started: list[CliProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def _inside_viewport(box: dict[str, float] | None, width: int, height: int) -> bool:
    return (box is not None and box["x"] >= 0 and box["y"] >= 0
            and box["x"] + box["width"] <= width and box["y"] + box["height"] <= height)


def test_offer_dialog_fits_a_phone_and_the_transfer_ends_cleanly(
        peers: PeerFactory, cli_processes: list[CliProcess], tmp_path: Path) -> None:
    phone = peers.open("phone", viewport=PHONE)
    page = phone.page
    width, height = PHONE
    # Nothing is wider than the screen: no sideways scrolling on a phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= width

    outbox = tmp_path / "outbox"
    outbox.mkdir()
    for index in range(40):  # a long list must scroll inside the dialog, not push buttons out
        (outbox / f"holiday-photo-{index:03d}-with-a-rather-long-name.jpg").write_bytes(
            b"x" * (index + 1))
    sender = CliProcess(["send", "--server", peers.server.ws_url, "--name", "laptop",
                         "--json", "phone", str(outbox)])
    cli_processes.append(sender)
    code = phone.wait_for_offer()
    assert len(code) == 9

    page.screenshot(path=str(tmp_path / "phone-offer.png"))
    for selector in ("#accept-button", "#decline-button", "#offer-code"):
        assert page.is_visible(selector), selector
        box = page.locator(selector).bounding_box()
        assert _inside_viewport(box, width, height), (selector, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= width

    page.click("#accept-button")
    assert sender.wait(CLI_TIMEOUT) == ExitCode.OK, sender.stderr
    assert "from laptop" in phone.wait_for_status("ok")
    # Like the CLI: the path the bytes took and the rate, readable on the phone.
    path = page.locator("#path")
    assert path.is_visible() and "direct" in (path.text_content() or "")
    assert (path.bounding_box() or {"x": 0, "width": width + 1})["width"] <= width
    rates = page.locator("#incoming-transfers .rate").all_text_contents()
    assert rates and "/s" in rates[-1], rates
    # The sender logs out right after its last ack. The page winding down its side
    # must not relay a `leave` to a user who is gone and show the server's
    # "not online" refusal as an error.
    page.wait_for_timeout(3500)
    errors = page.locator("#log li[data-kind=error]").all_text_contents()
    assert errors == []
    assert page.evaluate("document.querySelector('#status').dataset.kind") == "ok"


def test_a_declined_offer_ends_without_an_error(
        peers: PeerFactory, cli_processes: list[CliProcess], tmp_path: Path) -> None:
    phone = peers.open("phone", viewport=PHONE)
    payload = tmp_path / "a.txt"
    payload.write_text("hello")
    sender = CliProcess(["send", "--server", peers.server.ws_url, "--name", "laptop",
                         "--json", "phone", str(payload)])
    cli_processes.append(sender)
    phone.wait_for_offer()
    phone.page.click("#decline-button")
    assert sender.wait(CLI_TIMEOUT) == ExitCode.DECLINED, sender.stderr
    phone.page.wait_for_timeout(3500)
    assert phone.page.locator("#log li[data-kind=error]").all_text_contents() == []
