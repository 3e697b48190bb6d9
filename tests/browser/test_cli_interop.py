"""The page against the real CLI (`rtcxfer send` / `rtcxfer listen` subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser.pages import PeerFactory, sha256_hex
from support import CliProcess

from rtcxfer.errors import ExitCode

pytestmark = pytest.mark.browser

CLI_TIMEOUT = 90.0


def json_event(process: CliProcess, event: str, **match: Any) -> dict[str, Any]:
    """Wait for the CLI's --json event ``event`` whose fields include ``match``."""

    def wanted(line: str) -> bool:
        try:
            parsed = json.loads(line)
        except ValueError:
            return False
        return parsed.get("event") == event and all(parsed.get(k) == v for k, v in match.items())

    return json.loads(process.wait_for_line(wanted, timeout=CLI_TIMEOUT))


@pytest.fixture
def cli_processes() -> Iterator[list[CliProcess]]:
    started: list[CliProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def test_cli_send_to_page(peers: PeerFactory, cli_processes: list[CliProcess],
                          tmp_path: Path) -> None:
    page = peers.open("web")
    outbox = tmp_path / "outbox"
    (outbox / "docs").mkdir(parents=True)
    files = {
        "report.bin": os.urandom(2 * 1024 * 1024 + 777),
        "docs/notes.txt": b"plain text\n" * 1000,
        "docs/empty": b"",
    }
    for name, data in files.items():
        (outbox / name).write_bytes(data)
    sender = CliProcess(["send", "--server", peers.server.ws_url, "--name", "cli", "--json",
                         "web", str(outbox / "report.bin"), str(outbox / "docs")])
    cli_processes.append(sender)

    page_code = page.wait_for_offer()
    offered = page.page.locator("#offer-files .file-name").all_text_contents()
    assert sorted(offered) == sorted(files)
    assert page.page.text_content("#offer-sender") == "cli"
    # Several files reach the person as one zip download, paths kept (docs/browser.md).
    with page.page.expect_download() as pending:
        page.page.click("#accept-button")

    assert sender.wait(CLI_TIMEOUT) == ExitCode.OK, sender.stderr
    assert json_event(sender, "verification")["code"] == page_code
    page.page.wait_for_selector("#received-list li[data-testid=received-folder][data-state=done]")
    assert "from cli" in page.wait_for_status("ok")
    target = tmp_path / "from-cli.zip"
    pending.value.save_as(target)
    with zipfile.ZipFile(target) as archive:
        assert sorted(archive.namelist()) == sorted(files)
        for name, data in files.items():
            assert sha256_hex(archive.read(name)) == sha256_hex(data)


def test_page_sends_files_and_a_folder_to_cli_listen(peers: PeerFactory,
                                                     cli_processes: list[CliProcess],
                                                     tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    listener = CliProcess(["listen", "--server", peers.server.ws_url, "--name", "cli",
                           "--json", "--yes", "--dir", str(inbox)])
    cli_processes.append(listener)
    json_event(listener, "connected")

    page = peers.open("web")
    page.pick_user("cli")
    loose = [("one.bin", os.urandom(1024 * 1024 + 1)), ("zero.dat", b"")]
    page.choose_files(loose)
    folder = tmp_path / "album"
    (folder / "inner").mkdir(parents=True)
    in_folder = {"album/a.txt": b"alpha" * 999, "album/inner/b.bin": os.urandom(70_000)}
    for name, data in in_folder.items():
        (tmp_path / name).write_bytes(data)
    # A folder picked with <input webkitdirectory>: names come from webkitRelativePath.
    page.page.set_input_files("#folder-input", folder)
    chosen = page.page.locator("#chosen-list .file-name").all_text_contents()
    assert sorted(chosen) == sorted([name for name, _ in loose] + list(in_folder))
    page.page.click("#send-button")

    status = page.wait_for_status("ok")
    assert status.startswith("sent 4 files") and "to cli" in status
    offer = json_event(listener, "offer", peer="web")
    assert offer["code"] == page.page.text_content("#send-code")
    json_event(listener, "summary", peer="web", ok=True)
    for name, data in [*loose, *in_folder.items()]:
        assert (inbox / name).read_bytes() == data


def test_decline_from_the_page_fails_cli_send(peers: PeerFactory,
                                              cli_processes: list[CliProcess],
                                              tmp_path: Path) -> None:
    page = peers.open("web")
    unwanted = tmp_path / "unwanted.txt"
    unwanted.write_bytes(b"no thanks")
    sender = CliProcess(["send", "--server", peers.server.ws_url, "--name", "cli", "--json",
                         "web", str(unwanted)])
    cli_processes.append(sender)
    page.wait_for_offer()
    page.page.click("#decline-button")
    assert sender.wait(CLI_TIMEOUT) == ExitCode.DECLINED
    assert "declined" in sender.stderr + sender.stdout
    assert page.page.locator("#received-list li").count() == 0


def test_user_list_drops_a_cli_peer_that_leaves(peers: PeerFactory,
                                                cli_processes: list[CliProcess],
                                                tmp_path: Path) -> None:
    page = peers.open("web")
    listener = CliProcess(["listen", "--server", peers.server.ws_url, "--name", "cli",
                           "--json", "--yes", "--dir", str(tmp_path)])
    cli_processes.append(listener)
    page.wait_for_user("cli")
    listener.send_signal(signal.SIGINT)
    listener.wait(CLI_TIMEOUT)
    page.wait_for_user("cli", online=False)
    assert "cli went offline" in page.page.inner_text("#log")


def test_page_resumes_where_cli_listen_holds_a_partial_file(peers: PeerFactory,
                                                            cli_processes: list[CliProcess],
                                                            tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    listener = CliProcess(["listen", "--server", peers.server.ws_url, "--name", "cli",
                           "--json", "--yes", "--dir", str(inbox)])
    cli_processes.append(listener)
    json_event(listener, "connected")
    data = os.urandom(48 * 1024 * 1024)
    source = tmp_path / "big.bin"
    source.write_bytes(data)

    page = peers.open("web")
    page.pick_user("cli")
    page.page.set_input_files("#file-input", source)
    page.page.click("#send-button")
    json_event(listener, "file_progress", peer="web")
    page.page.click("#cancel-button")
    assert "cancelled" in page.wait_for_status("error")
    json_event(listener, "transfer_failed", peer="web")

    # Same file again: the listener offers to resume, the page hashes the bytes
    # it skips so the final sha256 still covers the whole file.
    page.page.click("#send-button")
    assert page.wait_for_status("ok").startswith("sent 1 file")
    started = [json.loads(line) for line in listener.stdout_lines
               if '"file_started"' in line]
    assert started[-1]["offset"] > 0
    assert (inbox / "big.bin").read_bytes() == data


def test_stock_chromium_with_mdns_candidates_reaches_the_cli(stock_peers: PeerFactory,
                                                             cli_processes: list[CliProcess],
                                                             tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    listener = CliProcess(["listen", "--server", stock_peers.server.ws_url, "--name", "cli",
                           "--json", "--yes", "--dir", str(inbox)])
    cli_processes.append(listener)
    json_event(listener, "connected")
    page = stock_peers.open("web")
    page.pick_user("cli")
    data = os.urandom(300_000)
    page.choose_files([("through-mdns.bin", data)])
    page.page.click("#send-button")
    assert page.wait_for_status("ok").startswith("sent 1 file")
    assert (inbox / "through-mdns.bin").read_bytes() == data


def test_two_cli_senders_at_once_get_one_dialog_each(peers: PeerFactory,
                                                     cli_processes: list[CliProcess],
                                                     tmp_path: Path) -> None:
    page = peers.open("web")
    payloads = {f"from-{sender}.bin": os.urandom(200_000) for sender in ("one", "two")}
    for name, data in payloads.items():
        (tmp_path / name).write_bytes(data)
        sender_name = name.removeprefix("from-").removesuffix(".bin")
        cli_processes.append(CliProcess(["send", "--server", peers.server.ws_url, "--name",
                                         sender_name, "--json", "web", str(tmp_path / name)]))
    senders_seen: list[str] = []
    for _ in payloads:
        # The next dialog: open, and for a sender not answered yet.
        page.page.wait_for_function(
            """seen => document.querySelector("#offer-dialog").open &&
                      !seen.includes(document.querySelector("#offer-sender").textContent)""",
            arg=senders_seen,
        )
        senders_seen.append(page.page.text_content("#offer-sender") or "")
        page.page.click("#accept-button")
    assert sorted(senders_seen) == ["one", "two"]
    for process in cli_processes:
        assert process.wait(CLI_TIMEOUT) == ExitCode.OK, process.stderr
    for name, data in payloads.items():
        item = page.page.locator(f"#received-list li[data-name='{name}']")
        assert item.get_attribute("data-sha256") == sha256_hex(data)
