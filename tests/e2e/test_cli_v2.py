"""rtcxfer/2 through real CLI processes: folders, streams, text, v1 fallback."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import RTCXFER, CliProcess, cli_env, json_events, wait_for_event

SEND_TIMEOUT = 300.0

Start = Callable[..., CliProcess]


def make_tree(root: Path, count: int, *, size: int = 1024, depth: int = 3) -> dict[str, bytes]:
    """``count`` files (some empty) spread over nested folders; name -> content."""
    made: dict[str, bytes] = {}
    for number in range(count):
        parts = [f"d{(number // 10 ** level) % 10}" for level in range(1, depth + 1)]
        relative = Path(*parts, f"f{number}.bin")
        data = b"" if number % 97 == 0 else os.urandom(size)
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        made[str(Path(root.name, relative))] = data
    return made


def assert_sent(process: CliProcess, timeout: float = SEND_TIMEOUT) -> dict:
    code = process.wait(timeout)
    assert code == 0, f"send exited {code}\nstdout:\n{process.stdout[-3000:]}\n" \
                      f"stderr:\n{process.stderr[-3000:]}"
    (summary,) = json_events(process, "summary")
    assert summary["ok"] is True
    return summary


def assert_tree(inbox: Path, made: dict[str, bytes]) -> None:
    for name, data in made.items():
        assert (inbox / name).read_bytes() == data, name
    landed = [p for p in inbox.rglob("*") if p.is_file()]
    assert len(landed) == len(made)


def test_folder_of_5000_files(tmp_path: Path, listen: Start, send: Start) -> None:
    made = make_tree(tmp_path / "out" / "tree", 5000, size=200)
    inbox = tmp_path / "in"
    listen("bob", inbox, "--yes")
    summary = assert_sent(send("alice", "bob", tmp_path / "out" / "tree"))
    assert summary["files"] == 5000
    assert_tree(inbox, made)


@pytest.mark.slow
def test_folder_of_100000_files(tmp_path: Path, listen: Start, send: Start) -> None:
    made = make_tree(tmp_path / "out" / "tree", 100_000, size=64, depth=4)
    inbox = tmp_path / "in"
    listen("bob", inbox, "--yes")
    summary = assert_sent(send("alice", "bob", tmp_path / "out" / "tree"), timeout=900)
    assert summary["files"] == 100_000
    assert_tree(inbox, made)


def test_text(tmp_path: Path, listen: Start, send: Start) -> None:
    listener = listen("bob", tmp_path / "in", "--yes")
    text = "meet at 5\n\x1b]0;owned\x07 bring \u202ecoffee"
    assert_sent(send("alice", "bob", "--text", text))
    event = wait_for_event(listener, "text", peer="alice")
    assert event["text"] == text
    assert list((tmp_path / "in").iterdir()) == []


def test_text_on_the_terminal_is_escaped(tmp_path: Path, run: Start, server: str,
                                         send: Start) -> None:
    listener = run("listen", "--server", server, "--name", "bob", "--dir",
                   str(tmp_path / "in"), "--yes")
    listener.wait_for_line(lambda line: "receiving into" in line, stream="stderr", timeout=60)
    assert_sent(send("alice", "bob", "--text", "line one\nline \x1b[2J two"))
    listener.wait_for_line(lambda line: "two" in line, stream="stderr", timeout=60)
    shown = listener.stderr
    assert "line one" in shown and "line \\x1b[2J two" in shown
    assert "\x1b" not in shown


def _feed(process: subprocess.Popen[bytes], total: int, digest: Any) -> None:
    assert process.stdin is not None
    block = os.urandom(1024 * 1024)
    sent = 0
    while sent < total:
        piece = block[: min(len(block), total - sent)]
        # Vary the content so a lost or repeated block changes the hash.
        piece = sent.to_bytes(8, "big") + piece[8:]
        digest.update(piece)
        process.stdin.write(piece)
        sent += len(piece)
    process.stdin.close()


def _drain(process: subprocess.Popen[bytes], digest: Any, counted: list[int]) -> None:
    assert process.stdout is not None
    while block := process.stdout.read(1024 * 1024):
        digest.update(block)
        counted[0] += len(block)


@pytest.mark.slow
def test_stdin_to_stdout_200_mib(tmp_path: Path, server: str) -> None:
    total = 200 * 1024 * 1024
    env = cli_env()
    listener = subprocess.Popen(
        [*RTCXFER, "listen", "--server", server, "--name", "bob", "--dir", str(tmp_path),
         "--yes", "--once", "--stdout"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        start_new_session=True)
    sender: subprocess.Popen[bytes] | None = None
    try:
        assert listener.stderr is not None
        for line in listener.stderr:  # bounded by the login happening or the process exiting
            if b"receiving into" in line:
                break
        received, counted = hashlib.sha256(), [0]
        reader = threading.Thread(target=_drain, args=(listener, received, counted))
        reader.start()
        sender = subprocess.Popen(
            [*RTCXFER, "send", "--server", server, "--name", "alice", "--stdin-name", "pipe",
             "bob", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
            start_new_session=True)
        sent = hashlib.sha256()
        _feed(sender, total, sent)
        assert sender.wait(SEND_TIMEOUT) == 0, sender.stderr.read() if sender.stderr else ""
        assert listener.wait(SEND_TIMEOUT) == 0
        reader.join(SEND_TIMEOUT)
        assert counted[0] == total
        assert received.hexdigest() == sent.hexdigest()
        assert list(tmp_path.iterdir()) == []
    finally:
        for process in (sender, listener):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def test_small_stream_through_two_clis_with_tar(tmp_path: Path, server: str) -> None:
    """`tar c dir | rtcxfer send bob -` and `rtcxfer listen --once --stdout | tar x`."""
    made = make_tree(tmp_path / "src" / "tree", 40, size=3000)
    out = tmp_path / "unpacked"
    out.mkdir()
    env = cli_env()
    python = " ".join(RTCXFER)
    listener = subprocess.Popen(
        f"{python} listen --server {server} --name bob --dir {tmp_path} --yes --once --stdout"
        f" | tar x -C {out}", shell=True, stderr=subprocess.PIPE, env=env,
        start_new_session=True)
    try:
        assert listener.stderr is not None
        for line in listener.stderr:
            if b"receiving into" in line:
                break
        sender = subprocess.run(
            f"tar c -C {tmp_path / 'src'} tree | {python} send --server {server} --name alice"
            " bob -", shell=True, env=env, capture_output=True, timeout=SEND_TIMEOUT)
        assert sender.returncode == 0, sender.stderr
        assert listener.wait(SEND_TIMEOUT) == 0
        assert_tree(out, made)
    finally:
        if listener.poll() is None:
            os.killpg(listener.pid, 9)
            listener.wait()


def test_folder_resume_after_the_listener_is_killed(tmp_path: Path, listen: Start,
                                                    send: Start) -> None:
    size = 256 * 1024
    made = make_tree(tmp_path / "out" / "tree", 400, size=size)
    total = sum(len(data) for data in made.values())
    inbox = tmp_path / "in"
    listener = listen("bob", inbox, "--yes")
    first = send("alice", "bob", tmp_path / "out" / "tree")
    listener.wait_for_line(
        lambda line: line.count('"file_done"') and line.count('"index": 60,'), timeout=120)
    listener.send_signal(signal.SIGKILL)
    landed = [event for event in json_events(listener, "file_done") if event["ok"]]
    assert first.wait(SEND_TIMEOUT) == 8
    assert len(landed) < 400

    listen("bob", inbox, "--yes")
    second = send("alice", "bob", tmp_path / "out" / "tree")
    summary = assert_sent(second)
    assert_tree(inbox, made)
    started = json_events(second, "file_started")
    skipped = [event for event in started if event["offset"] == event["size"]]
    resumed = [event for event in started if 0 < event["offset"] < event["size"]]
    assert {event["name"] for event in landed} <= {event["name"] for event in skipped}
    assert len(resumed) <= 1
    assert summary["bytes"] == total - sum(event["offset"] for event in started)
    assert summary["bytes"] < total - len(landed) * size * 0.9
    assert not [path for path in inbox.rglob("*") if "rtcxfer-part" in path.name]


def test_ctrl_c_while_stdin_is_idle_ends_send(tmp_path: Path, listen: Start,
                                              server: str) -> None:
    listener = listen("bob", tmp_path / "in", "--yes")
    sender = subprocess.Popen(
        [*RTCXFER, "send", "--server", server, "--name", "alice", "--json", "bob", "-"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=cli_env(), start_new_session=True)
    try:
        assert sender.stdin is not None and sender.stdout is not None
        sender.stdin.write(b"some bytes, then nothing")
        sender.stdin.flush()
        wait_for_event(listener, "file_started", peer="alice")
        sender.send_signal(signal.SIGINT)
        assert sender.wait(30) == 130
        failed = wait_for_event(listener, "transfer_failed", peer="alice")
        assert "interrupted" in failed["message"]
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()


def test_stdout_declines_a_folder_and_exits_8(tmp_path: Path, server: str,
                                              send: Start) -> None:
    made = make_tree(tmp_path / "out" / "tree", 3)
    assert made
    listener = subprocess.Popen(
        [*RTCXFER, "listen", "--server", server, "--name", "bob", "--dir", str(tmp_path),
         "--yes", "--once", "--stdout"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=cli_env(), start_new_session=True)
    try:
        assert listener.stderr is not None
        for line in listener.stderr:
            if b"receiving into" in line:
                break
        sender = send("alice", "bob", tmp_path / "out" / "tree")
        assert sender.wait(SEND_TIMEOUT) == 6  # declined
        assert "one file or stream" in sender.stderr
        assert listener.wait(SEND_TIMEOUT) == 8
        assert listener.stdout is not None and listener.stdout.read() == b""
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


@pytest.mark.parametrize("size", [200_000, 3_000_000])  # a small file, one with a sidecar
def test_concurrent_copies_of_one_name_all_land_numbered(tmp_path: Path, listen: Start,
                                                         send: Start, size: int) -> None:
    """Issue 8 over rtcxfer/2: senders of one name at once each get a part file of
    their own (.data.bin~N.rtcxfer-part) and land as data (N).bin; none fails."""
    inbox = tmp_path / "in"
    listen("bob", inbox, "--yes")
    senders = []
    contents = []
    for number in range(6):
        folder = tmp_path / f"s{number}"
        folder.mkdir()
        data = os.urandom(size)
        contents.append(data)
        path = folder / "data.bin"
        path.write_bytes(data)
        # Different mtimes: each is a different file, none "already complete" here.
        os.utime(path, (1_600_000_000 + number, 1_600_000_000 + number))
        senders.append(send(f"s{number}", "bob", path))
    for sender in senders:
        assert sender.wait(120) == 0, sender.stderr
    landed = sorted(p.name for p in inbox.iterdir())
    assert landed == ["data (1).bin", "data (2).bin", "data (3).bin", "data (4).bin",
                      "data (5).bin", "data.bin"]
    assert sorted(p.read_bytes() for p in inbox.iterdir()) == sorted(contents)
