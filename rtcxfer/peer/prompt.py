"""The question ``rtcxfer listen`` asks on the terminal before accepting an offer.

Rules (issue 8): what was typed before the question is thrown away (a stray key, or
the answer to an offer whose sender gave up, never answers a later offer); the
question lists what will be written and where; ``?`` lists every file; nothing else
(progress bars, messages) is drawn over the question while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import termios
from dataclasses import dataclass

from rtcxfer.text import printable

# Files listed in the question before "and N more".
SHOWN_FILES = 10
MAX_LINE = 4096
# The cancel message of a question ended by Ctrl-C: the offer is declined.
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Question:
    """One offer put to the person: the summary, the file lines and what answers mean."""

    summary: list[str]  # sender, code, total, destination (already printable)
    files: list[str]  # one line per file known now (already printable)
    # Files in the whole transfer: rtcxfer/2 lists a big folder in batches, and only
    # the first is known when the question is asked (None: ``files`` is all of them).
    total_files: int | None = None

    def text(self, *, every_file: bool = False) -> str:
        shown = self.files if every_file else self.files[:SHOWN_FILES]
        lines = [*self.summary, *(f"  {line}" for line in shown)]
        hidden = len(self.files) - len(shown)
        later = max(0, (self.total_files or 0) - len(self.files))
        if hidden:
            lines.append(f"  … and {hidden + later} more (answer ? to list "
                         + ("the first batch)" if later else "them all)"))
        elif later:
            lines.append(f"  … and {later} more, listed by the sender as the transfer "
                         "goes (each name is checked like these)")
        return "\n".join(lines)


def flush_terminal_input() -> None:
    """Discard whatever was typed but not read yet (before a question is shown)."""
    with contextlib.suppress(termios.error, OSError, ValueError):
        termios.tcflush(sys.stdin.fileno(), termios.TCIFLUSH)


async def ask_on_terminal(question: Question) -> bool:
    """Ask ``question`` on the terminal; True for yes. Cancellable (Ctrl-C, sender gone).

    Reads the terminal's descriptor through the event loop, one line at a time, with
    no buffering of its own: nothing typed for this question is left over for the next.
    """
    sys.stderr.write(question.text() + "\n")
    try:
        while True:
            sys.stderr.write("Accept? [y/N, ? lists every file] ")
            sys.stderr.flush()
            line = await _read_line(sys.stdin.fileno())
            if line is None:
                return False  # end of input: no
            answer = line.strip().lower()
            if answer in ("y", "yes"):
                return True
            if answer in ("", "n", "no"):
                return False
            if answer == "?":
                sys.stderr.write(question.text(every_file=True) + "\n")
    except asyncio.CancelledError as cancelled:
        if cancelled.args and cancelled.args[0] == INTERRUPTED:
            sys.stderr.write("\n(interrupted: this offer is declined)\n")
        else:
            sys.stderr.write("\n(the offer was withdrawn; that answer is not used)\n")
        sys.stderr.flush()
        raise


async def confirm_on_terminal(text: str) -> bool:
    """Ask a yes/no question (``text`` + " [y/N]") on the terminal; True for yes.

    Like :func:`ask_on_terminal`: what was typed before the question is thrown away,
    and the answer is read line by line through the event loop (cancellable).
    """
    flush_terminal_input()
    while True:
        sys.stderr.write(f"{text} [y/N] ")
        sys.stderr.flush()
        line = await _read_line(sys.stdin.fileno())
        if line is None:
            return False
        answer = line.strip().lower()
        if answer in ("y", "yes"):
            return True
        if answer in ("", "n", "no"):
            return False


async def _read_line(fd: int) -> str | None:
    """One line from ``fd`` (a terminal in canonical mode); None at end of input."""
    loop = asyncio.get_running_loop()
    collected = b""
    while b"\n" not in collected and len(collected) < MAX_LINE:
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, _settle, readable)
        try:
            await readable
        finally:
            loop.remove_reader(fd)
        try:
            chunk = os.read(fd, MAX_LINE)
        except BlockingIOError:
            continue
        except OSError:
            return None
        if not chunk:
            return None if not collected else collected.decode(errors="replace")
        collected += chunk
    return collected.decode(errors="replace").split("\n", 1)[0]


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def describe_file(name: str, size: str, flags: list[str]) -> str:
    flagged = f"  [{', '.join(flags)}]" if flags else ""
    return f"{printable(name)}  {size}{flagged}"
