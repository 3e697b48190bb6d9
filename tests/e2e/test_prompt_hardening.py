"""Issue 8, the question ``listen`` asks, on a real pseudo-terminal (stdin, stdout and
stderr all on it, as for a person at a terminal).

A stray key typed while idle, or an answer typed after a sender gave up, must not
answer the next offer; the question lists what will land where; ``?`` lists it all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import CliProcess, PtyTerminal, json_events, listen_on_pty

Start = Callable[..., CliProcess]
TIMEOUT = 90.0


Terminal = PtyTerminal


@pytest.fixture
def terminal(server: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Terminal]]:
    with listen_on_pty(server, tmp_path / "in") as running:
        yield running


def make_files(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for number in range(count):
        (folder / f"file{number:02d}.txt").write_text("x" * (number + 1))
    (folder / "run.sh").write_text("#!/bin/sh\n")
    return folder


def test_a_stray_key_does_not_accept_the_next_offer_and_the_question_lists_the_files(
        tmp_path: Path, terminal: tuple[subprocess.Popen, Terminal], send: Start) -> None:
    _listener, screen = terminal
    # Typed while nothing was asked: must be thrown away, not answer the next offer.
    screen.type(b"y\n")
    time.sleep(1.0)
    (tmp_path / "in" / "pack").mkdir(parents=True, exist_ok=True)
    (tmp_path / "in" / "pack" / "file00.txt").write_text("already here")
    folder = make_files(tmp_path / "out" / "pack", 12)

    sender = send("alice", "bob", folder)
    asked = screen.wait_for("Accept? [y/N")
    time.sleep(1.0)
    assert sender.popen.poll() is None, "the stray key answered the offer: " + sender.stderr
    question = screen.text
    (verification,) = json_events(sender, "verification")
    assert verification["code"] in question
    assert "alice wants to send 13 files" in question
    assert f"into {tmp_path / 'in'}" in question
    assert "pack/file00.txt  1 B  [exists: saved as file00 (1).txt or next free]" in question
    assert "pack/file09.txt" in question and "pack/file10.txt" not in question
    assert "and 3 more (answer ? to list them all)" in question

    screen.type(b"?\n")
    listed = screen.wait_for("pack/run.sh", after=asked)
    assert "[executable]" in screen.text[listed:listed + 40]
    screen.type(b"n\n")
    assert sender.wait(TIMEOUT) == 6, sender.stderr
    assert sorted(os.listdir(tmp_path / "in" / "pack")) == ["file00.txt"]


def test_an_answer_typed_after_the_sender_gave_up_does_not_answer_the_next_offer(
        tmp_path: Path, terminal: tuple[subprocess.Popen, Terminal], send: Start) -> None:
    _listener, screen = terminal
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "b.txt").write_text("second")

    first = send("alice", "bob", tmp_path / "a.txt")
    asked = screen.wait_for("Accept? [y/N")
    first.send_signal(signal.SIGINT)  # alice gives up while bob is being asked
    assert first.wait(TIMEOUT) == 130, first.stderr
    withdrawn = screen.wait_for("the offer was withdrawn", after=asked)
    screen.type(b"y\n")  # bob answers the question that is no longer there
    time.sleep(1.0)

    second = send("carol", "bob", tmp_path / "b.txt")
    screen.wait_for("carol wants to send 1 file", after=withdrawn)
    time.sleep(1.0)
    assert second.popen.poll() is None, "the late answer accepted carol: " + second.stderr
    screen.type(b"n\n")
    assert second.wait(TIMEOUT) == 6, second.stderr
    assert not (tmp_path / "in" / "b.txt").exists()
