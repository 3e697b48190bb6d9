"""The page receiving rtcxfer/2 from the CLI: a folder of 1,000 files, a stream, a text."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
import zipfile
from pathlib import Path

import pytest
from browser.pages import PeerFactory
from playwright.sync_api import Download
from support import RTCXFER, CliProcess, cli_env

from rtcxfer.errors import ExitCode

pytestmark = pytest.mark.browser

CLI_TIMEOUT = 120.0
FOLDER_ITEM = "#received-list li[data-testid=received-folder]"


def test_cli_sends_a_folder_of_1000_files_to_the_page(peers: PeerFactory,
                                                      tmp_path: Path) -> None:
    """The folder arrives as ONE download: a zip streamed from the moment of Accept."""
    page = peers.open("web")
    assert page.page.get_attribute("body", "data-downloads") == "stream"
    downloads: list[Download] = []
    page.page.on("download", lambda download: downloads.append(download))
    tree = tmp_path / "photos"
    made = {}
    for number in range(1000):
        path = tree / f"album{number % 9}" / f"img{number}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(number % 3000)
        path.write_bytes(data)
        made[f"photos/album{number % 9}/img{number}.jpg"] = data
    dated = 981_173_106.0  # 2001-02-03: the zip must carry it, not the time of Accept
    os.utime(tree / "album0" / "img0.jpg", (dated, dated))
    sender = CliProcess(["send", "--server", peers.server.ws_url, "--name", "cli", "--json",
                         "web", str(tree)])
    try:
        page.wait_for_offer()
        assert "1000 files" in (page.page.text_content("#offer-summary") or "")
        with page.page.expect_download() as pending:
            page.page.click("#accept-button")
        download = pending.value
        assert download.suggested_filename == "from-cli.zip"
        assert sender.wait(CLI_TIMEOUT) == ExitCode.OK, sender.stderr
        page.page.wait_for_selector(f"{FOLDER_ITEM}[data-state=done]")
        page.wait_for_status("ok")
        target = tmp_path / "folder.zip"
        download.save_as(target)  # waits for the download's end
        assert download.failure() is None
        item = page.page.locator("#received-list li[data-testid=received-folder]")
        assert item.get_attribute("data-state") == "done"
        assert item.get_attribute("data-route") == "stream"
        assert "all verified" in (item.text_content() or "")
    finally:
        sender.stop()
    # One download, no link per file.
    assert len(downloads) == 1
    assert page.page.locator("#received-list a[download]").count() == 0
    with zipfile.ZipFile(target) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted(made)
        for name, data in made.items():
            assert archive.read(name) == data
        # Each entry carries its file's modification time (local DOS time, 2 s steps).
        stamp = time.localtime(int(dated))
        assert archive.getinfo("photos/album0/img0.jpg").date_time == (
            *stamp[:5], stamp.tm_sec - stamp.tm_sec % 2)


def test_cli_sends_a_stream_to_the_page(peers: PeerFactory, tmp_path: Path) -> None:
    page = peers.open("web")
    data = os.urandom(3 * 1024 * 1024 + 5)
    sender = subprocess.Popen(
        [*RTCXFER, "send", "--server", peers.server.ws_url, "--name", "cli",
         "--stdin-name", "backup.tar", "web", "-"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=cli_env(), start_new_session=True)
    try:
        stdin = sender.stdin
        assert stdin is not None

        def feed() -> None:
            # The sender reads its input only once the page accepted.
            stdin.write(data)
            stdin.close()

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        page.wait_for_offer()
        page.page.click("#accept-button")
        assert sender.wait(CLI_TIMEOUT) == ExitCode.OK
        page.wait_for_status("ok")
        item = page.page.locator("#received-list li[data-name='backup.tar']")
        assert item.get_attribute("data-sha256") == hashlib.sha256(data).hexdigest()
        assert page.download("backup.tar", tmp_path).read_bytes() == data
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()


def test_cli_sends_a_text_to_the_page(peers: PeerFactory) -> None:
    page = peers.open("web")
    text = "<b>not bold</b>\nsecond line"
    sender = CliProcess(["send", "--server", peers.server.ws_url, "--name", "cli",
                         "web", "--text", text])
    try:
        page.wait_for_offer()
        page.page.click("#accept-button")
        assert sender.wait(CLI_TIMEOUT) == ExitCode.OK, sender.stderr
        shown = page.page.locator("#received-list li[data-testid=received-text] pre")
        shown.wait_for()
        assert shown.text_content() == text
        assert page.page.locator("#received-list b").count() == 0
    finally:
        sender.stop()


def send_folder_from_the_page(peers: PeerFactory, tmp_path: Path, files: dict[str, bytes],
                              ) -> dict:
    """``files`` (relative path -> bytes) written under tmp_path, picked as a folder in
    the page and sent to ``listen --yes`` named "cli"; the listener's offer event once
    the transfer succeeded and every file landed with its bytes."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name, data in files.items():
        (tmp_path / "out" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "out" / name).write_bytes(data)
    (top,) = {name.split("/")[0] for name in files}
    listener = CliProcess(["listen", "--server", peers.server.ws_url, "--name", "cli",
                           "--json", "--yes", "--dir", str(inbox)])
    try:
        listener.wait_for_line(lambda line: '"connected"' in line, timeout=CLI_TIMEOUT)
        page = peers.open("web")
        page.pick_user("cli")
        page.page.set_input_files("#folder-input", tmp_path / "out" / top)
        page.page.click("#send-button")
        page.page.wait_for_function(
            "() => document.querySelector('#status').dataset.kind === 'ok'",
            timeout=CLI_TIMEOUT * 1000)
        offer = json.loads(listener.wait_for_line(lambda line: '"offer"' in line,
                                                  timeout=CLI_TIMEOUT))
        listener.wait_for_line(lambda line: '"summary"' in line and '"ok": true' in line,
                               timeout=CLI_TIMEOUT)
    finally:
        listener.stop()
    for name, data in files.items():
        assert (inbox / name).read_bytes() == data
    return offer


def test_page_sends_a_folder_of_1000_files_to_cli_listen(peers: PeerFactory,
                                                         tmp_path: Path) -> None:
    """The page's sender (rtcxfer/1, which a v2 listener still takes) with 1,000 files."""
    made = {f"album/part{number % 4}/p{number}.txt": os.urandom(number % 500)
            for number in range(1000)}
    offer = send_folder_from_the_page(peers, tmp_path, made)
    assert offer["count"] == 1000


def test_page_sends_a_text_to_cli_listen(peers: PeerFactory, tmp_path: Path) -> None:
    listener = CliProcess(["listen", "--server", peers.server.ws_url, "--name", "cli",
                           "--json", "--yes", "--dir", str(tmp_path)])
    try:
        listener.wait_for_line(lambda line: '"connected"' in line, timeout=CLI_TIMEOUT)
        page = peers.open("web")
        page.pick_user("cli")
        text = "héllo from the page\n\u202eline two"
        page.page.fill("#text-input", text)
        page.page.click("#send-text-button")
        assert "sent the text to cli" in page.wait_for_status("ok")
        line = listener.wait_for_line(lambda line: '"event": "text"' in line,
                                      timeout=CLI_TIMEOUT)
        assert json.loads(line)["text"] == text
    finally:
        listener.stop()
    assert list(tmp_path.iterdir()) == []


def test_page_sends_a_long_text_as_a_stream_to_listen_stdout(peers: PeerFactory) -> None:
    """A text over the 64 KiB of a text entry goes as a stream (size in its eof):
    `listen --once --stdout` writes it to standard output and exits 0."""
    text = "".join(f"ligne {number} — héllo\n" for number in range(12_000))  # ~290 KB
    expected = text.encode()
    assert len(expected) > 65536
    listener = subprocess.Popen(
        [*RTCXFER, "listen", "--server", peers.server.ws_url, "--name", "cli", "--yes",
         "--once", "--stdout"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=cli_env(), start_new_session=True)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(listener.stdout.read()),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    try:
        page = peers.open("web")
        page.pick_user("cli")
        page.page.evaluate("(text) => { document.querySelector('#text-input').value = text; }",
                           text)
        page.page.click("#send-text-button")
        assert "as text.txt: verified" in page.wait_for_status("ok")
        assert listener.wait(CLI_TIMEOUT) == ExitCode.OK, listener.stderr.read()  # type: ignore[union-attr]
        reader.join(CLI_TIMEOUT)
        assert received == [expected]
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


def test_page_sends_4000_files_with_rtcxfer2(peers: PeerFactory, tmp_path: Path) -> None:
    """A list too long for one rtcxfer/1 hello (here over 262,144 bytes) goes in batches."""
    made = {f"library/shelf{number % 5}/a-rather-long-file-name-for-batching-{number:05}.txt":
            os.urandom(number % 200) for number in range(4000)}
    offer = send_folder_from_the_page(peers, tmp_path, made)
    assert offer["count"] == 4000 and len(offer["files"]) < 4000
