"""Code mode between the page (Chromium) and the CLI, both directions, and a wrong code."""

from __future__ import annotations

import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser.pages import BrowserPeer, PeerFactory, sha256_hex
from support import CliProcess, slow_relay, wait_for_event

from rtcxfer.errors import ExitCode
from rtcxfer.protocol.codewords import WORDS

pytestmark = pytest.mark.browser

CLI_TIMEOUT = 90.0
UI_TIMEOUT_MS = 60_000
WRONG = "the code was wrong or the connection was tampered with"


@pytest.fixture
def cli_processes() -> Iterator[list[CliProcess]]:
    started: list[CliProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def wait_for_code_status(page, kind: str) -> str:  # type: ignore[no-untyped-def]
    """Wait until the code card's status is final (ok or error); it must be ``kind``."""
    page.wait_for_function(
        "() => ['ok', 'error'].includes(document.querySelector('#code-status').dataset.kind)",
        timeout=UI_TIMEOUT_MS)
    text = page.text_content("#code-status") or ""
    assert page.get_attribute("#code-status", "data-kind") == kind, text
    return text


def page_receives_by_code(peers: PeerFactory, cli_processes: list[CliProcess], path: Path,
                          server: str | None = None) -> BrowserPeer:
    """`rtcxfer send --code PATH`; a fresh page (not logged in: a phone that only has
    the code) types the code in; both must end well. Returns the page."""
    sender = CliProcess(["send", "--server", server or peers.server.ws_url, "--json", "--code",
                         str(path)])
    cli_processes.append(sender)
    code = wait_for_event(sender, "code", timeout=CLI_TIMEOUT)["code"]
    page = peers.open()
    page.page.fill("#code-input", code.upper())
    page.page.click("#code-receive-button")
    assert "every file verified" in wait_for_code_status(page.page, "ok")
    assert sender.wait(CLI_TIMEOUT) == ExitCode.OK, sender.stderr
    return page


def test_the_page_receives_from_cli_send_code(peers: PeerFactory,
                                              cli_processes: list[CliProcess],
                                              tmp_path: Path) -> None:
    data = os.urandom(300_000)
    (tmp_path / "photo.jpg").write_bytes(data)
    page = page_receives_by_code(peers, cli_processes, tmp_path / "photo.jpg")
    item = page.page.locator("#code-received li[data-name='photo.jpg']")
    assert item.get_attribute("data-sha256") == sha256_hex(data)
    with page.page.expect_download(timeout=UI_TIMEOUT_MS) as pending:
        item.locator("a[download]").click()
    saved = tmp_path / "saved.jpg"
    pending.value.save_as(saved)
    assert saved.read_bytes() == data


def test_the_page_keeps_a_hello_that_outruns_the_senders_proof(peers: PeerFactory,
                                                             cli_processes: list[CliProcess],
                                                             tmp_path: Path) -> None:
    """docs/protocol.md, code mode rule 5: the sender says hello once it checked our
    proof; its own proof comes through the server, which may be slower than the direct
    path. The page must keep that early hello (unread) until the proof, not drop it."""
    data = os.urandom(70_000)
    (tmp_path / "early.bin").write_bytes(data)
    with slow_relay(peers.server.ws_url, lambda frame: '"confirm"' in frame,
                    delay=1.5) as far_away:
        page = page_receives_by_code(peers, cli_processes, tmp_path / "early.bin",
                                     server=far_away)
    item = page.page.locator("#code-received li[data-name='early.bin']")
    assert item.get_attribute("data-sha256") == sha256_hex(data)


def test_a_folder_by_code_reaches_the_page_as_one_zip(peers: PeerFactory,
                                                      cli_processes: list[CliProcess],
                                                      tmp_path: Path) -> None:
    made = {"album/a.jpg": os.urandom(50_000), "album/sub/b.txt": b"second",
            "album/sub/empty": b""}
    for name, data in made.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    dated = 981_173_106.0  # 2001-02-03: the zip must carry it, not the time it was built
    os.utime(tmp_path / "album/sub/b.txt", (dated, dated))
    page = page_receives_by_code(peers, cli_processes, tmp_path / "album")
    # One download for the folder, not a link per file.
    assert page.page.locator("#code-received li[data-testid='code-received-file'] a").count() == 0
    zipped = page.page.locator("#code-received li[data-testid='code-received-zip']")
    assert zipped.get_attribute("data-count") == "3"
    with page.page.expect_download(timeout=UI_TIMEOUT_MS) as pending:
        zipped.locator("a[download]").click()
    saved = tmp_path / "saved.zip"
    pending.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert archive.testzip() is None
        assert {info.filename: archive.read(info) for info in archive.infolist()} == made
        stamp = time.localtime(int(dated))
        assert archive.getinfo("album/sub/b.txt").date_time == (
            *stamp[:5], stamp.tm_sec - stamp.tm_sec % 2)


def test_cli_receive_code_from_the_page(peers: PeerFactory, cli_processes: list[CliProcess],
                                        tmp_path: Path) -> None:
    data = os.urandom(200_000)
    page = peers.open()
    page.page.set_input_files("#code-file-input", files=[
        {"name": "notes.bin", "mimeType": "application/octet-stream", "buffer": data}])
    page.page.wait_for_selector("#code-shown-block:not([hidden])", timeout=UI_TIMEOUT_MS)
    code = page.page.text_content("#code-shown") or ""
    # A logged-in page does not list the one-time name.
    other = peers.open("viewer")
    assert all(not name.startswith("rtcxfer-code-")
               for name in other.page.locator("#user-list button.user").all_text_contents())
    receiver = CliProcess(["receive", "--server", peers.server.ws_url, "--json",
                           "--dir", str(tmp_path / "in"), code])
    cli_processes.append(receiver)
    assert receiver.wait(CLI_TIMEOUT) == ExitCode.OK, receiver.stderr
    assert (tmp_path / "in" / "notes.bin").read_bytes() == data
    assert "every file verified" in wait_for_code_status(page.page, "ok")


def test_a_wrong_code_typed_into_the_page_fails_both(peers: PeerFactory,
                                                     cli_processes: list[CliProcess],
                                                     tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("secret")
    sender = CliProcess(["send", "--server", peers.server.ws_url, "--json", "--code",
                         str(tmp_path / "f.txt")])
    cli_processes.append(sender)
    number, first, second = wait_for_event(sender, "code", timeout=CLI_TIMEOUT)["code"].split("-")
    wrong = f"{number}-{first}-{WORDS[(WORDS.index(second) + 1) % len(WORDS)]}"
    page = peers.open()
    page.page.fill("#code-input", wrong)
    page.page.click("#code-receive-button")
    assert WRONG in wait_for_code_status(page.page, "error")
    assert sender.wait(CLI_TIMEOUT) == ExitCode.AUTHENTICATION_FAILED, sender.stderr
    assert page.page.locator("#code-received li").count() == 0


def test_a_code_nobody_holds(peers: PeerFactory) -> None:
    page = peers.open()
    page.page.fill("#code-input", "98765-guitar-orbit")
    page.page.click("#code-receive-button")
    assert "nobody is waiting for code 98765-guitar-orbit" in wait_for_code_status(page.page,
                                                                                  "error")


def test_the_page_detects_a_server_in_the_middle(browser, cli_processes: list[CliProcess],  # type: ignore[no-untyped-def]
                                                 tmp_path: Path) -> None:
    """The page checks the certificate the sender really presented (getRemoteCertificates)."""
    from security.mitm import MitmServer

    mitm = MitmServer()
    mitm.attack = True
    mitm.start()
    context = browser.new_context()
    try:
        (tmp_path / "f.bin").write_bytes(b"THE-SECRET-MARKER" + os.urandom(10_000))
        sender = CliProcess(["send", "--server", mitm.url, "--json", "--code",
                             str(tmp_path / "f.bin")])
        cli_processes.append(sender)
        code = wait_for_event(sender, "code", timeout=CLI_TIMEOUT)["code"]
        page = context.new_page()
        page.goto(mitm.page_url)
        page.wait_for_selector("body[data-ready]")
        page.fill("#code-input", code)
        page.click("#code-receive-button")
        assert WRONG in wait_for_code_status(page, "error")
        assert sender.wait(CLI_TIMEOUT) == ExitCode.AUTHENTICATION_FAILED, sender.stderr
        assert mitm.history, "the server did not even try"
        assert b"THE-SECRET-MARKER" not in mitm.data_seen()
        assert page.locator("#code-received li").count() == 0
    finally:
        context.close()
        mitm.stop()
