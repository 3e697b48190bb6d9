"""While a question waits on the terminal, bars and messages keep still (issue 8).

Real tqdm bars writing to a real pseudo-terminal: the bytes that reach the
terminal are read back from its other side.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time
from collections.abc import Iterator
from typing import TextIO

import pytest

from rtcxfer.progress import Output, OutputMode
from rtcxfer.transfer import FileEntry

ENTRY = FileEntry(name="big\u202efdp.exe", size=100 * 1024 * 1024, mtime=None)


@pytest.fixture
def terminal() -> Iterator[tuple[int, TextIO]]:
    controller, terminal_side = pty.openpty()
    # A terminal of 120 x 40 (a fresh pty is 0 x 0, and bars size themselves to it).
    fcntl.ioctl(terminal_side, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    stream = open(terminal_side, "w", buffering=1, encoding="utf-8", closefd=True)  # noqa: SIM115
    try:
        yield controller, stream
    finally:
        stream.close()
        os.close(controller)


def drain(controller: int) -> bytes:
    """Everything written to the terminal so far."""
    data = b""
    sys.stderr.flush()
    while select.select([controller], [], [], 0.2)[0]:
        data += os.read(controller, 65536)
    return data


def test_bars_and_messages_wait_while_a_question_is_open(
        terminal: tuple[int, TextIO], monkeypatch: pytest.MonkeyPatch) -> None:
    # Patched here, not in the fixture: pytest's capture resets sys.stderr between phases.
    controller, stream = terminal
    monkeypatch.setattr(sys, "stderr", stream)
    output = Output(OutputMode.HUMAN)
    observer = output.observer(peer="alice", session="s", direction="receive")
    observer.transfer_started([ENTRY], [0])
    observer.file_started(0, ENTRY, 0)
    assert b"from alice" in drain(controller)

    with output.hold():
        sys.stderr.write("Accept? [y/N] ")
        sys.stderr.flush()
        assert drain(controller).endswith(b"Accept? [y/N] ")
        for step in range(1, 40):
            observer.file_progress(0, step * 1024 * 1024)
            time.sleep(0.01)
        output.say("- carol\x1b[2J")
        assert drain(controller) == b"", "something drew over the question"

    after = drain(controller)
    assert b"- carol\\x1b[2J" in after and b"\x1b[2J" not in after
    observer.file_progress(0, 60 * 1024 * 1024)
    time.sleep(0.3)
    observer.file_progress(0, 61 * 1024 * 1024)
    redrawn = drain(controller)
    assert b"from alice" in redrawn or b"fdp.exe" in redrawn or b"MB" in redrawn
    assert "\u202e".encode() not in redrawn
    observer.transfer_finished(True)


def test_json_events_carry_hidden_characters_as_escapes(
        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    name = "photo\u202egnp.exe\u2028\x9b2J\U000e0001 é"
    Output(OutputMode.JSON).event("file_done", name=name)
    line = capsys.readouterr().out
    assert all(char not in line for char in ("\u202e", "\u2028", "\x9b", "\U000e0001"))
    assert "é" in line  # visible text stays as it is
    assert json.loads(line)["name"] == name
