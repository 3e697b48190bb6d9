"""`rtcxfer listen` on a terminal asks before accepting (a real pseudo-terminal)."""

from __future__ import annotations

import os
import pty
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import RTCXFER, CliProcess, cli_env, json_events

Start = Callable[..., CliProcess]
TIMEOUT = 90.0


@pytest.fixture
def terminal_listener(server: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    """``rtcxfer listen --json`` whose stdin is a terminal; yields it and the terminal."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*RTCXFER, "listen", "--server", server, "--name", "bob", "--dir", str(tmp_path / "in"),
         "--json"],
        stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(),
        text=True, start_new_session=True)
    try:
        assert process.stdout is not None
        assert '"connected"' in process.stdout.readline()
        yield process, controller
    finally:
        process.terminate()
        process.communicate(timeout=TIMEOUT)
        os.close(controller)
        os.close(terminal)


def answer_prompt(listener: subprocess.Popen, controller: int, answer: bytes) -> dict:
    """Wait for the offer event (printed just before the question), then answer it."""
    import json

    assert listener.stdout is not None
    while True:
        event = json.loads(listener.stdout.readline())
        if event["event"] == "offer":
            os.write(controller, answer)
            return event


@pytest.mark.parametrize(("answer", "exit_code"), [(b"y\n", 0), (b"n\n", 6)])
def test_terminal_prompt(tmp_path: Path, terminal_listener: tuple[subprocess.Popen, int],
                         send: Start, answer: bytes, exit_code: int) -> None:
    listener, controller = terminal_listener
    (tmp_path / "f.txt").write_text("hello")
    sender = send("alice", "bob", tmp_path / "f.txt")

    offer = answer_prompt(listener, controller, answer)

    assert sender.wait(TIMEOUT) == exit_code, sender.stderr
    (verification,) = json_events(sender, "verification")
    assert offer["code"] == verification["code"]
    if exit_code == 0:
        assert (tmp_path / "in" / "f.txt").read_text() == "hello"
    else:
        assert "declined by the receiver" in sender.stderr
        assert sender.stderr.count("declin") == 1, sender.stderr  # said once, not twice
        assert not (tmp_path / "in" / "f.txt").exists()
