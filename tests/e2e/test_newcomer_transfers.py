"""Issue 14, what a person sees around a transfer: saved paths, renames, resume, units,
two transfers at once, Ctrl-C at the question, listen without a terminal, old part files.

Terminal behaviour runs the real CLI on a real pseudo-terminal; the screen is rendered
by a terminal emulator (pyte) to check what lands on which line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyte
import pytest
from support import (
    CliProcess,
    PtyTerminal,
    cli_env,
    json_events,
    listen_on_pty,
    wait_for_event,
    write_random_file,
)

Start = Callable[..., CliProcess]
TIMEOUT = 90.0
MIB = 1024 * 1024
COLUMNS, ROWS = 160, 40
ANSWER_AFTER = 6.0


class Screen(PtyTerminal):
    """A pty the CLI runs on, rendered like a terminal; typing into it."""

    def __init__(self, controller: int) -> None:
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.mixed: list[str] = []  # lines that ever held two transfers' bars
        self.side_by_side = 0  # screens showing both transfers' bars, each on its line
        super().__init__(controller, timeout=TIMEOUT)

    def on_output(self, chunk: bytes) -> None:
        self.stream.feed(chunk)
        bars = {"alice": 0, "carol": 0}
        for line in self.screen.display:
            if line.count("%|") > 1 or ("from alice" in line and "from carol" in line):
                self.mixed.append(line.rstrip())
            for name in bars:
                # A live bar (a finished one is also printed as a plain line).
                if f"from {name}" in line and "%|" in line and "100%|" not in line:
                    bars[name] += 1
        if bars == {"alice": 1, "carol": 1}:
            self.side_by_side += 1

    def lines(self) -> list[str]:
        with self._changed:
            return [line.rstrip() for line in self.screen.display]


def _take_terminal() -> None:
    # The pty becomes the controlling terminal: Ctrl-C typed into it is a real SIGINT.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@contextlib.contextmanager
def listen_on_terminal(server: str, folder: Path, *extra: str
                       ) -> Iterator[tuple[subprocess.Popen[bytes], Screen]]:
    with listen_on_pty(server, folder, *extra, terminal=Screen, size=(ROWS, COLUMNS),
                       env=cli_env(COLUMNS=str(COLUMNS), LINES=str(ROWS)),
                       preexec_fn=_take_terminal) as (process, screen):
        assert isinstance(screen, Screen)
        yield process, screen


def test_ctrl_c_at_the_question_declines_the_offer_before_exiting(
        tmp_path: Path, server: str, send: Start) -> None:
    (tmp_path / "a.txt").write_text("hello")
    with listen_on_terminal(server, tmp_path / "in") as (listener, screen):
        sender = send("alice", "bob", tmp_path / "a.txt")
        screen.wait_for("Accept? [y/N")
        screen.type(b"\x03")  # Ctrl-C, as typed
        assert listener.wait(TIMEOUT) == 130
        assert sender.wait(TIMEOUT) == 6, sender.stderr  # declined, not a broken transfer
        screen.wait_for("this offer is declined")
    (error,) = json_events(sender, "error")
    assert "declined" in error["message"] and "stopped listening" in error["message"]
    assert not (tmp_path / "in" / "a.txt").exists()


def test_the_time_to_answer_is_not_in_the_rates(
        tmp_path: Path, server: str, send: Start) -> None:
    (tmp_path / "a.txt").write_text("hello")
    with listen_on_terminal(server, tmp_path / "in") as (_listener, screen):
        sender = send("alice", "bob", tmp_path / "a.txt")
        screen.wait_for("Accept? [y/N")
        time.sleep(ANSWER_AFTER)  # the person reads the question
        screen.type(b"y\n")
        assert sender.wait(TIMEOUT) == 0, sender.stderr
        screen.wait_for("received from alice")
    (summary,) = json_events(sender, "summary")
    # Five bytes on loopback take far less than the time the person took.
    assert summary["seconds"] < ANSWER_AFTER, summary


def test_two_transfers_at_once_keep_to_their_own_lines(
        tmp_path: Path, server: str, send: Start) -> None:
    # Big enough that both run for a while at once on loopback.
    one = write_random_file(tmp_path / "a" / "one.bin", 64 * MIB)
    two = write_random_file(tmp_path / "c" / "two.bin", 64 * MIB)
    tiny = tmp_path / "c" / "tiny.txt"
    tiny.write_bytes(b"hello world\n")  # 12 bytes
    empty = tmp_path / "a" / "empty.txt"
    empty.write_bytes(b"")
    inbox = tmp_path / "in"
    with listen_on_terminal(server, inbox, "--yes") as (_listener, screen):
        first = send("alice", "bob", one, empty)
        second = send("carol", "bob", two, tiny)
        assert first.wait(TIMEOUT) == 0, first.stderr
        assert second.wait(TIMEOUT) == 0, second.stderr
        screen.wait_for("received from alice")
        screen.wait_for("received from carol")
        time.sleep(0.5)
        lines = screen.lines()
        raw = screen.text
        mixed = list(screen.mixed)
    assert not mixed, "two transfers drew into one line:\n" + "\n".join(mixed)
    # While both ran, each had its own line (not one line the two fight over).
    assert screen.side_by_side > 0, raw
    # Every saved path, absolute, once.
    for name in ("one.bin", "empty.txt", "two.bin", "tiny.txt"):
        assert raw.count(f"saved {inbox / name}") == 1, raw
    # One system of units: MiB sizes, binary rates, "12 B" for 12 bytes, no tqdm "12.0".
    finished = [line for line in lines if "100%|" in line]
    assert any("64.0 MiB / 64.0 MiB" in line and "from alice" in line for line in finished), \
        "\n".join(lines)
    assert any("64.0 MiB / 64.0 MiB" in line and "from carol" in line for line in finished), \
        "\n".join(lines)
    assert "12.0/12.0" not in raw and "MB/s" not in raw and "kB/s" not in raw
    summaries = [line for line in lines if "received from" in line]
    assert len(summaries) == 2 and all("MiB/s" in line for line in summaries)


def test_a_twelve_byte_file_and_an_empty_file_show_finished_bars(
        tmp_path: Path, server: str, send: Start) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "tiny.txt").write_bytes(b"hello world\n")
    (tmp_path / "out" / "empty.txt").write_bytes(b"")
    with listen_on_terminal(server, tmp_path / "in", "--yes") as (_listener, screen):
        sender = send("alice", "bob", tmp_path / "out" / "tiny.txt")
        assert sender.wait(TIMEOUT) == 0, sender.stderr
        screen.wait_for("received from alice")
        sender = send("alice", "bob", tmp_path / "out" / "empty.txt")
        assert sender.wait(TIMEOUT) == 0, sender.stderr
        screen.wait_for(f"saved {tmp_path / 'in' / 'empty.txt'}")
        time.sleep(0.5)
        lines = screen.lines()
    assert any("100%|" in line and "12 B / 12 B" in line for line in lines), lines
    assert any("100%|" in line and "0 B / 0 B" in line for line in lines), lines


def test_a_renamed_file_is_said_loudly_and_the_sender_hears_of_it(
        tmp_path: Path, listen: Start, send: Start, run: Start, server: str) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "hello.txt").write_text("already here")
    (tmp_path / "hello.txt").write_text("new hello")
    listener = listen("bob", inbox, "--yes")

    sender = send("alice", "bob", tmp_path / "hello.txt")
    assert sender.wait(TIMEOUT) == 0, sender.stderr
    (done,) = json_events(sender, "file_done")
    assert done["saved_as"] == "hello (1).txt" and done["resumed_from"] is None
    (summary,) = json_events(sender, "summary")
    assert summary["renamed"] == 1
    renamed = wait_for_event(listener, "renamed")
    assert renamed["path"] == str(inbox / "hello (1).txt")
    received = [e for e in json_events(listener, "file_done") if e["ok"]]
    assert received[0]["saved_as"] == "hello (1).txt"

    human = run("send", "--server", server, "--name", "alice", "bob", str(tmp_path / "hello.txt"))
    assert human.wait(TIMEOUT) == 0, human.stderr
    assert "bob kept 0 under their own name, renamed 1" in human.stderr
    assert "hello.txt was saved as hello (2).txt" in human.stderr
    assert (inbox / "hello (2).txt").read_text() == "new hello"


def test_resume_says_where_it_starts_and_both_sides_report_it(
        tmp_path: Path, run: Start, server: str) -> None:
    source = write_random_file(tmp_path / "out" / "report.pdf", 3 * MIB)
    inbox = tmp_path / "in"
    inbox.mkdir()
    held = 2 * MIB
    (inbox / ".report.pdf.rtcxfer-part").write_bytes(source.read_bytes()[:held])
    status = source.stat()
    (inbox / ".report.pdf.rtcxfer-part.json").write_text(
        json.dumps({"size": status.st_size, "mtime": status.st_mtime}))
    listener = run("listen", "--server", server, "--name", "bob", "--dir", str(inbox), "--yes")
    listener.wait_for_line(lambda line: "receiving into" in line, stream="stderr",
                           timeout=TIMEOUT)

    sender = run("send", "--server", server, "--name", "alice", "--json", "bob", str(source))
    assert sender.wait(TIMEOUT) == 0, sender.stderr
    (done,) = json_events(sender, "file_done")
    assert done["resumed_from"] == held and done["saved_as"] is None
    assert (inbox / "report.pdf").read_bytes() == source.read_bytes()
    listener.wait_for_line(lambda line: "received from alice" in line, stream="stderr",
                           timeout=TIMEOUT)
    assert "resuming report.pdf from 2.0 MiB" in listener.stderr
    assert f"saved {inbox / 'report.pdf'}" in listener.stderr
    assert "1.0 MiB (2.0 MiB resumed) received from alice" in listener.stderr


def test_listen_without_a_terminal_warns_that_it_declines_everything(
        tmp_path: Path, run: Start, server: str) -> None:
    listener = run("listen", "--server", server, "--name", "bob", "--dir", str(tmp_path / "a"))
    listener.wait_for_line(lambda line: "receiving into" in line, stream="stderr",
                           timeout=TIMEOUT)
    assert "warning: no terminal to ask on and no --yes: every offer will be declined" \
        in listener.stderr
    accepting = run("listen", "--server", server, "--name", "carol", "--dir",
                    str(tmp_path / "b"), "--yes")
    accepting.wait_for_line(lambda line: "receiving into" in line, stream="stderr",
                            timeout=TIMEOUT)
    assert "warning" not in accepting.stderr


def test_listen_removes_old_part_files_at_startup_inside_its_folder_only(
        tmp_path: Path, listen: Start) -> None:
    inbox = tmp_path / "in"
    (inbox / "sub").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    old = time.time() - 10 * 86400
    paths = {
        "old": inbox / "sub" / ".big.iso.rtcxfer-part",
        "old_meta": inbox / "sub" / ".big.iso.rtcxfer-part.json",
        "recent": inbox / ".new.bin.rtcxfer-part",
        "outside": outside / ".far.rtcxfer-part",
        "mine": inbox / "notes.txt",
    }
    for key, path in paths.items():
        path.write_bytes(b"12345")
        if key != "recent":
            os.utime(path, (old, old))
    (inbox / "escape").symlink_to(outside, target_is_directory=True)

    listener = listen("bob", inbox, "--keep-parts", "7")
    (removed,) = json_events(listener, "parts_removed")
    assert removed["files"] == [{"name": "sub/.big.iso.rtcxfer-part", "size": 5}]
    assert removed["days"] == 7
    assert not paths["old"].exists() and not paths["old_meta"].exists()
    for key in ("recent", "outside", "mine"):
        assert paths[key].exists(), key


@pytest.mark.parametrize("days", ["-1", "soon"])
def test_keep_parts_must_be_a_number_of_days(tmp_path: Path, run: Start, days: str) -> None:
    listener = run("listen", "--dir", str(tmp_path), "--keep-parts", days)
    assert listener.wait(30) == 2
    assert "--keep-parts" in listener.stderr
