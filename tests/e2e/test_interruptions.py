"""Ctrl-C, SIGTERM, SIGKILL and a restarting server, with real processes."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from support import (
    CliProcess,
    free_port,
    json_events,
    sha256_of,
    wait_for_event,
    write_random_file,
)

Start = Callable[..., CliProcess]
BIG = 64 * 1024 * 1024
TIMEOUT = 120.0
PART = ".big.bin.rtcxfer-part"


def wait_until_received(listener: CliProcess, at_least: int) -> None:
    """Block until the listener reported holding ``at_least`` bytes of the file."""
    listener.wait_for_line(
        lambda line: '"file_progress"' in line and _bytes(line) >= at_least, timeout=TIMEOUT)


def _bytes(line: str) -> int:
    import json

    return int(json.loads(line).get("bytes", 0))


def assert_clean_exit(process: CliProcess, code: int) -> None:
    exit_code = process.wait(TIMEOUT)
    assert exit_code == code, f"exit {exit_code}\nstdout:\n{process.stdout}\n" \
                              f"stderr:\n{process.stderr}"
    assert "Traceback" not in process.stderr


@pytest.mark.slow
def test_ctrl_c_on_the_sender(tmp_path: Path, listen: Start, send: Start) -> None:
    source = write_random_file(tmp_path / "out" / "big.bin", BIG)
    inbox = tmp_path / "in"
    listener = listen("bob", inbox, "--yes")
    sender = send("alice", "bob", source)
    wait_until_received(listener, 1 << 20)

    sender.send_signal(signal.SIGINT)

    assert_clean_exit(sender, 130)
    assert "interrupted" in sender.stderr
    failed = wait_for_event(listener, "transfer_failed", peer="alice")
    assert "alice" in failed["message"]
    assert (inbox / PART).stat().st_size > 0
    assert not (inbox / "big.bin").exists()
    assert listener.popen.poll() is None, "the listener keeps running"


@pytest.mark.slow
def test_ctrl_c_on_the_listener(tmp_path: Path, listen: Start, send: Start) -> None:
    source = write_random_file(tmp_path / "out" / "big.bin", BIG)
    inbox = tmp_path / "in"
    listener = listen("bob", inbox, "--yes")
    sender = send("alice", "bob", source)
    wait_until_received(listener, 1 << 20)

    listener.send_signal(signal.SIGINT)

    assert_clean_exit(listener, 130)
    assert_clean_exit(sender, 8)
    (error,) = json_events(sender, "error")
    assert "bob" in error["message"]
    assert (inbox / PART).stat().st_size > 0


def test_sigterm_stops_an_idle_listener_with_success(tmp_path: Path, listen: Start) -> None:
    listener = listen("bob", tmp_path / "in")
    listener.send_signal(signal.SIGTERM)
    assert_clean_exit(listener, 0)


@pytest.mark.slow
def test_resume_after_the_receiver_was_killed(tmp_path: Path, listen: Start,
                                              send: Start) -> None:
    source = write_random_file(tmp_path / "out" / "big.bin", BIG)
    inbox = tmp_path / "in"
    listener = listen("bob", inbox, "--yes")
    first = send("alice", "bob", source)
    wait_until_received(listener, 8 << 20)

    listener.popen.kill()
    listener.wait()
    assert_clean_exit(first, 8)

    listen("bob", inbox, "--yes")
    second = send("alice", "bob", source)
    assert_clean_exit(second, 0)
    (started,) = json_events(second, "file_started")
    assert started["offset"] > 0
    (summary,) = json_events(second, "summary")
    assert summary["resumed_bytes"] == started["offset"]
    assert summary["bytes"] == BIG - started["offset"]
    assert sha256_of(inbox / "big.bin") == sha256_of(source)
    assert not (inbox / PART).exists()


def test_listener_logs_in_again_when_the_server_restarts(tmp_path: Path, run: Start,
                                                         listen: Start, send: Start) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    serve = ("serve", "--host", "127.0.0.1", "--port", str(port))
    first_server = run(*serve)
    first_server.wait_for_line(lambda line: line.startswith("ws://"))
    inbox = tmp_path / "in"
    listener = listen("bob", inbox, "--yes", url=url)

    first_server.stop()
    wait_for_event(listener, "disconnected")
    second_server = run(*serve)
    second_server.wait_for_line(lambda line: line.startswith("ws://"))
    listener.wait_for_line(lambda line: '"connected"' in line
                           and len(json_events(listener, "connected")) == 2, timeout=60)

    (tmp_path / "after.txt").write_text("still here")
    sender = send("alice", "bob", tmp_path / "after.txt", url=url)
    assert_clean_exit(sender, 0)
    assert (inbox / "after.txt").read_text() == "still here"


def test_demo(run: Start) -> None:
    demo = run("demo", "--size", "2", "--json")
    assert_clean_exit(demo, 0)
    (verified,) = json_events(demo, "verified")
    assert verified["name"] == "demo.bin"
    (summary,) = json_events(demo, "summary")
    assert summary["ok"] is True
    assert summary["bytes"] == 2 * 1024 * 1024


def test_demo_with_paths_and_human_output(tmp_path: Path, run: Start) -> None:
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "a.txt").write_text("a")
    (tmp_path / "tree" / "empty").write_bytes(b"")
    demo = run("demo", str(tmp_path / "tree"))
    assert_clean_exit(demo, 0)
    assert "verification code" in demo.stderr
    assert "verified tree/sub/a.txt" in demo.stderr
    assert "verified tree/empty" in demo.stderr
