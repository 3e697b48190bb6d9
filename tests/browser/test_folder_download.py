"""How a received folder reaches the page's user (docs/browser.md, "A received folder").

Into a directory picked with the File System Access API (Chromium; only the picker
is stubbed: it hands out the Origin Private File System, a real directory handle),
as a streamed zip download that fails in the browser when the transfer fails or
that stops the transfer when cancelled, and as a zip Blob where service workers
are unavailable. The 1,000-file streamed zip is in test_page_v2.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser.pages import UI_TIMEOUT_MS, BrowserPeer, PeerFactory, Server
from playwright.sync_api import Browser, BrowserContext, Page
from support import CliProcess, cli_env, wait_for_event

from rtcxfer.errors import ExitCode
from rtcxfer.transfer.storage import numbered_name

pytestmark = pytest.mark.browser

CLI_TIMEOUT = 120.0
STATIC = Path(__file__).resolve().parents[2] / "rtcxfer" / "web" / "static"
HOSTILE_SENDER = Path(__file__).with_name("hostile_sender.py")
FOLDER_ITEM = "#received-list li[data-testid=received-folder]"

# Every file under the Origin Private File System: {path: sha256 hex}.
READ_OPFS = """async () => {
  const found = {};
  const walk = async (folder, prefix) => {
    for await (const [name, handle] of folder.entries()) {
      if (handle.kind === "directory") {
        await walk(handle, `${prefix}${name}/`);
      } else {
        const bytes = await (await handle.getFile()).arrayBuffer();
        const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
        found[prefix + name] = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
      }
    }
  };
  await walk(await navigator.storage.getDirectory(), "");
  return found;
}"""


def make_tree(root: Path, count: int) -> dict[str, bytes]:
    made = {}
    for number in range(count):
        relative = f"{root.name}/part{number % 3}/deeper{number % 2}/f{number}.bin"
        data = os.urandom(number * 37 % 5000)
        path = root.parent / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        made[relative] = data
    return made


def test_folder_is_written_into_the_picked_directory(peers: PeerFactory,
                                                     tmp_path: Path) -> None:
    page = peers.open("web")
    # Only the picker is stubbed: OPFS is a real FileSystemDirectoryHandle.
    page.page.evaluate(
        "() => { window.showDirectoryPicker = () => navigator.storage.getDirectory(); }")
    # A file already there keeps its bytes: the new one gets a numbered name, as with the CLI.
    page.page.evaluate("""async () => {
      const root = await navigator.storage.getDirectory();
      const folder = await (await root.getDirectoryHandle("tree", { create: true }))
        .getDirectoryHandle("part0", { create: true });
      const inner = await folder.getDirectoryHandle("deeper0", { create: true });
      const handle = await inner.getFileHandle("f0.bin", { create: true });
      const writable = await handle.createWritable();
      await writable.write("older");
      await writable.close();
    }""")
    made = make_tree(tmp_path / "tree", 300)
    (tmp_path / "tree" / "empty-folder").mkdir()
    sender = CliProcess(["send", "--server", peers.server.ws_url, "--name", "cli", "--json",
                         "web", str(tmp_path / "tree")])
    try:
        page.wait_for_offer()
        assert page.page.is_visible("#save-folder-button")
        page.page.click("#save-folder-button")
        assert sender.wait(CLI_TIMEOUT) == ExitCode.OK, sender.stderr
        page.page.wait_for_selector(f"{FOLDER_ITEM}[data-state=done]")
        page.wait_for_status("ok")
    finally:
        sender.stop()
    item = page.page.locator(FOLDER_ITEM)
    assert item.get_attribute("data-state") == "done"
    assert item.get_attribute("data-route") == "directory"
    assert "1 under a numbered name" in (item.text_content() or "")
    found = page.page.evaluate(READ_OPFS)
    expected = {name: hashlib.sha256(data).hexdigest() for name, data in made.items()}
    expected["tree/part0/deeper0/f0 (1).bin"] = expected.pop("tree/part0/deeper0/f0.bin")
    expected["tree/part0/deeper0/f0.bin"] = hashlib.sha256(b"older").hexdigest()
    assert found == expected
    # No zip, no link per file.
    assert page.page.locator("#received-list a[download]").count() == 0


@pytest.fixture
def run_hostile(peers: PeerFactory) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def run(target: BrowserPeer, mode: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, str(HOSTILE_SENDER), peers.server.ws_url, "mallory", target.name,
             mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
        started.append(process)
        return process

    try:
        yield run
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=CLI_TIMEOUT)


def replies(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    stdout, stderr = process.communicate(timeout=CLI_TIMEOUT)
    assert process.returncode == 0, stderr
    return [json.loads(line) for line in stdout.splitlines()]


def test_a_failed_transfer_fails_the_streamed_download(peers: PeerFactory,
                                                       run_hostile: Any) -> None:
    page = peers.open("web")
    sender = run_hostile(page, "folder-bad-hash")
    page.wait_for_offer()
    with page.page.expect_download() as pending:
        page.page.click("#accept-button")
    download = pending.value
    assert "1 file(s) failed: sha256 mismatch" in page.wait_for_status("error")
    # The stream errors, so the browser marks the download failed; the page says so.
    assert download.failure() is not None
    item = page.page.locator(FOLDER_ITEM)
    assert item.get_attribute("data-state") == "failed"
    assert "the browser marks it failed" in (item.text_content() or "")
    answers = replies(sender)
    assert answers[0]["type"] == "accept"
    acks = [answer for answer in answers if answer.get("type") == "acks"]
    assert acks[-1]["upto"] == 2 and [entry["index"] for entry in acks[-1]["failed"]] == [1]


def test_cancelling_the_download_stops_the_transfer(peers: PeerFactory,
                                                    run_hostile: Any) -> None:
    page = peers.open("web")
    sender = run_hostile(page, "folder-then-wait")
    page.wait_for_offer()
    with page.page.expect_download() as pending:
        page.page.click("#accept-button")
    # The first file is going into the download; then the person cancels it.
    page.page.wait_for_function(
        "() => document.querySelector('#incoming-transfers progress').value > 0",
        timeout=UI_TIMEOUT_MS)
    pending.value.cancel()
    assert "the download was cancelled in the browser" in page.wait_for_status("error")
    item = page.page.locator(FOLDER_ITEM)
    assert item.get_attribute("data-state") == "failed"
    answers = replies(sender)
    assert answers[0]["type"] == "accept" and answers[-1] == {"closed": True}
    errors = [answer for answer in answers if answer.get("type") == "error"]
    assert errors and "cancelled" in errors[0]["message"]


def open_without_workers(context: BrowserContext, server: Server) -> Page:
    """A page where no service worker runs: a folder can only be a zip Blob."""
    page = context.new_page()
    page.goto(server.http_url)
    page.wait_for_selector("body[data-ready]")
    assert page.get_attribute("body", "data-downloads") == "blob"
    return page


def download_zip(page: Page, link: str, target: Path) -> dict[str, bytes]:
    """Wait for ``link``, download it to ``target``; the zip's entries and bytes."""
    page.wait_for_selector(link, timeout=UI_TIMEOUT_MS)
    with page.expect_download(timeout=UI_TIMEOUT_MS) as pending:
        page.click(link)
    pending.value.save_as(target)
    with zipfile.ZipFile(target) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def test_without_service_workers_the_folder_is_one_zip_link(browser: Browser, server: Server,
                                                            tmp_path: Path) -> None:
    context = browser.new_context(accept_downloads=True, service_workers="block")
    try:
        page = open_without_workers(context, server)
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.fill("#login-name", "web")
        page.click("#login-button")
        page.wait_for_selector("body[data-logged-in]")
        made = make_tree(tmp_path / "tree", 40)
        sender = CliProcess(["send", "--server", server.ws_url, "--name", "cli", "web",
                             str(tmp_path / "tree")])
        try:
            page.wait_for_selector("#offer-dialog[open]", timeout=UI_TIMEOUT_MS)
            page.click("#accept-button")
            assert sender.wait(CLI_TIMEOUT) == ExitCode.OK, sender.stderr
        finally:
            sender.stop()
        zipped = download_zip(page, f"{FOLDER_ITEM}[data-state=done] a[download]",
                              tmp_path / "folder.zip")
        assert page.locator("#received-list a[download]").count() == 1
        assert problems == []
    finally:
        context.close()
    assert zipped == made


def test_without_service_workers_a_folder_by_code_is_one_zip_link(
        browser: Browser, server: Server, tmp_path: Path) -> None:
    made = make_tree(tmp_path / "tree", 12)
    sender = CliProcess(["send", "--server", server.ws_url, "--json", "--code",
                         str(tmp_path / "tree")])
    context = browser.new_context(accept_downloads=True, service_workers="block")
    try:
        code = wait_for_event(sender, "code", timeout=CLI_TIMEOUT)["code"]
        page = open_without_workers(context, server)
        page.fill("#code-input", code)
        page.click("#code-receive-button")
        assert sender.wait(CLI_TIMEOUT) == ExitCode.OK, sender.stderr
        zipped = download_zip(
            page, "#code-received li[data-testid='code-received-zip'] a[download]",
            tmp_path / "code.zip")
        assert page.locator("#code-received a[download]").count() == 1
    finally:
        sender.stop()
        context.close()
    assert zipped == made


def test_a_download_the_worker_does_not_take_leaves_the_page(server: Server) -> None:
    """The server answers the download path with 204, so a navigation to it stays put."""
    with urllib.request.urlopen(f"{server.http_url}rtcxfer-download/unknown/x.zip",
                                timeout=30) as response:
        assert response.status == 204
        assert response.read() == b""
    with urllib.request.urlopen(f"{server.http_url}download-sw.js", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/javascript")


def test_numbered_names_match_the_cli() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    cases = [("report.pdf", 1), ("archive.tar.gz", 12), (".bashrc", 3), ("noext", 2),
             ("a" * 255, 1), ("é" * 127 + ".txt", 9999), ("x." + "e" * 252, 5),
             ("李" * 84 + ".md", 10), ("dot.", 4)]
    script = (f"import {{ numberedName }} from {json.dumps(str(STATIC / 'savefolder.js'))};"
              f"const cases = {json.dumps(cases)};"
              "console.log(JSON.stringify(cases.map(([leaf, n]) => numberedName(leaf, n))));")
    result = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True,
                            text=True, timeout=60, check=True)
    assert json.loads(result.stdout) == [numbered_name(leaf, number) for leaf, number in cases]


def test_closing_the_page_fails_its_download(peers: PeerFactory, run_hostile: Any) -> None:
    page = peers.open("web")
    run_hostile(page, "folder-then-wait")
    page.wait_for_offer()
    with page.page.expect_download() as pending:
        page.page.click("#accept-button")
    download = pending.value
    page.page.wait_for_function(
        "() => document.querySelector('#incoming-transfers progress').value > 0",
        timeout=UI_TIMEOUT_MS)
    page.page.close()
    # The worker sees the page's port close and errors the stream: no download hangs.
    assert download.failure() is not None


def test_a_room_page_streams_downloads_too(browser: Browser, server: Server) -> None:
    """The worker's scope is the site's root, also from a room's page (/r/NAME)."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{server.http_url}r/team")
        page.wait_for_selector("body[data-ready]")
        assert page.get_attribute("body", "data-downloads") == "stream"
        scope = page.evaluate("async () => (await navigator.serviceWorker.ready).scope")
        assert scope == server.http_url
    finally:
        context.close()
