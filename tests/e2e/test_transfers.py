"""Real `rtcxfer serve`, `listen` and `send` processes moving real files on loopback."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path

import pytest
from support import CliProcess, json_events, sha256_of, wait_for_event, write_random_file

SEND_TIMEOUT = 120.0

Start = Callable[..., CliProcess]


def assert_sent(process: CliProcess, timeout: float = SEND_TIMEOUT) -> dict:
    code = process.wait(timeout)
    assert code == 0, f"send exited {code}\nstdout:\n{process.stdout}\nstderr:\n{process.stderr}"
    assert "Traceback" not in process.stderr
    (summary,) = json_events(process, "summary")
    assert summary["ok"] is True
    return summary


def test_single_file(tmp_path: Path, listen: Start, send: Start) -> None:
    source = tmp_path / "out" / "report.pdf"
    write_random_file(source, 300_000)
    inbox = tmp_path / "in"
    listener = listen("bob", inbox, "--yes")

    sender = send("alice", "bob", source)
    summary = assert_sent(sender)

    assert summary["files"] == 1
    assert summary["bytes"] == 300_000
    assert sha256_of(inbox / "report.pdf") == sha256_of(source)
    received = wait_for_event(listener, "summary", peer="alice")
    assert received["ok"] is True
    # Both ends show the same verification code.
    (sender_code,) = json_events(sender, "verification")
    offer = wait_for_event(listener, "offer", peer="alice")
    assert offer["code"] == sender_code["code"]
    assert offer["files"] == [{"name": "report.pdf", "size": 300_000}]
    assert not list(inbox.glob("*.part"))
    # On one host, both ends say the bytes took the direct LAN path (docs/peer.md).
    lan = {"kind": "direct", "local_type": "host", "remote_type": "host", "protocol": "udp",
           "relay": None}
    (sent_path,) = json_events(sender, "path")
    received_path = wait_for_event(listener, "path", peer="alice")
    for path in (sent_path, received_path):
        assert {key: path[key] for key in lan} == lan


def test_folder_tree_with_nested_and_empty_files(tmp_path: Path, listen: Start,
                                                 send: Start) -> None:
    tree = tmp_path / "out" / "project"
    files = {
        "README": b"hello\n",
        "empty.txt": b"",
        "src/main.py": b"print('hi')\n" * 1000,
        "src/deep/er/still/empty.bin": b"",
        "src/deep/er/data.bin": bytes(range(256)) * 300,
    }
    for name, content in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(content)
    inbox = tmp_path / "in"
    listen("bob", inbox, "--yes")

    summary = assert_sent(send("alice", "bob", tree))

    assert summary["files"] == len(files)
    for name, content in files.items():
        assert (inbox / "project" / name).read_bytes() == content, name


@pytest.mark.slow
def test_random_64_mib_file(tmp_path: Path, listen: Start, send: Start) -> None:
    source = write_random_file(tmp_path / "out" / "big.bin", 64 * 1024 * 1024)
    inbox = tmp_path / "in"
    listen("bob", inbox, "--yes")

    sender = send("alice", "bob", source)
    assert_sent(sender, timeout=240)

    assert sha256_of(inbox / "big.bin") == sha256_of(source)
    assert json_events(sender, "file_progress"), "a long transfer reports progress"


def test_two_senders_at_once(tmp_path: Path, listen: Start, send: Start) -> None:
    first = write_random_file(tmp_path / "alice" / "a.bin", 2_000_000)
    second = write_random_file(tmp_path / "carol" / "c.bin", 2_000_000)
    inbox = tmp_path / "in"
    listen("bob", inbox, "--yes")

    senders = [send("alice", "bob", first), send("carol", "bob", second)]
    for sender in senders:
        assert_sent(sender)

    assert sha256_of(inbox / "a.bin") == sha256_of(first)
    assert sha256_of(inbox / "c.bin") == sha256_of(second)


def test_same_name_twice_is_not_overwritten(tmp_path: Path, listen: Start, send: Start) -> None:
    source = tmp_path / "out" / "notes.txt"
    source.parent.mkdir()
    inbox = tmp_path / "in"
    listen("bob", inbox, "--yes")

    source.write_text("first")
    assert_sent(send("alice", "bob", source))
    source.write_text("second")
    assert_sent(send("alice", "bob", source))

    assert (inbox / "notes.txt").read_text() == "first"
    assert (inbox / "notes (1).txt").read_text() == "second"


def test_overwrite_replaces_an_existing_file(tmp_path: Path, listen: Start, send: Start) -> None:
    source = tmp_path / "out" / "notes.txt"
    source.parent.mkdir()
    source.write_text("new")
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "notes.txt").write_text("old")
    listen("bob", inbox, "--yes", "--overwrite")

    assert_sent(send("alice", "bob", source))

    assert (inbox / "notes.txt").read_text() == "new"
    assert sorted(p.name for p in inbox.iterdir()) == ["notes.txt"]


def test_default_sender_name_steps_aside_for_the_users_own_listener(
        tmp_path: Path, listen: Start, run: Start, server: str) -> None:
    user = getpass.getuser()
    source = tmp_path / "out" / "mine.txt"
    source.parent.mkdir()
    source.write_text("to myself")
    inbox = tmp_path / "in"
    listen(user, inbox, "--yes")

    sender = run("send", "--server", server, "--json", user, str(source))
    assert_sent(sender)

    (connected,) = json_events(sender, "connected")
    assert connected["name"].startswith(f"{user}-")
    assert (inbox / "mine.txt").read_text() == "to myself"
