"""What ``send``, ``listen``, ``users`` and ``demo`` tell the person or the script.

Three modes: human (messages and tqdm bars on stderr), quiet (errors only) and
JSON (one event object per line on stdout, nothing else on stdout; the events
are listed in docs/peer.md). :class:`Output` is the single place that knows
the mode; :class:`ProgressObserver` implements the transfer API's
``TransferObserver`` for one transfer.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rtcxfer.text import is_hidden, printable
from rtcxfer.transfer import FileEntry, TransferReport

# --json file_progress events per file and second, at most: enough for a
# progress display, few enough that a fast transfer does not flood the pipe.
PROGRESS_EVENTS_PER_SECOND = 4
BAR_REFRESH_SECONDS = 0.25
MIB = 1024 * 1024


class OutputMode(Enum):
    HUMAN = "human"
    QUIET = "quiet"
    JSON = "json"


class Output:
    """Messages and events of one command run."""

    def __init__(self, mode: OutputMode) -> None:
        self.mode = mode
        # While a question is on the terminal (hold()), messages wait and bars stay still.
        self._held = 0
        self._pending: list[str] = []

    @classmethod
    def from_flags(cls, *, json_events: bool, quiet: bool) -> Output:
        if json_events:
            return cls(OutputMode.JSON)
        return cls(OutputMode.QUIET if quiet else OutputMode.HUMAN)

    def event(self, event: str, **fields: Any) -> None:
        """One ``--json`` event (ignored in the other modes)."""
        if self.mode is OutputMode.JSON:
            line = _json_safe(json.dumps({"event": event, **fields}, ensure_ascii=False))
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def say(self, text: str) -> None:
        """A human message on stderr (ignored with --quiet and --json).

        Hidden characters are escaped (rtcxfer.text.printable): callers put names
        and reasons from peers into ``text``.
        """
        if self.mode is OutputMode.HUMAN:
            self._write_line(printable(text))

    def warn(self, event: str, text: str, **fields: Any) -> None:
        """Something the person must see (not --json: also with --quiet): ``warning: ...``."""
        self.event(event, **fields)
        if self.mode is not OutputMode.JSON:
            self._write_line("warning: " + printable(text))

    def _write_line(self, line: str) -> None:
        if self._held:
            self._pending.append(line)
        else:
            tqdm.write(line, file=sys.stderr)

    @property
    def held(self) -> bool:
        return self._held > 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the terminal still while a question waits for its answer.

        Messages are queued and written afterwards; progress bars skip their
        redraws (the next update redraws them whole).
        """
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held:
                pending, self._pending = self._pending, []
                for line in pending:
                    tqdm.write(line, file=sys.stderr)

    def report(self, event: str, text: str, **fields: Any) -> None:
        """The same fact as a JSON event or a human line."""
        self.event(event, **fields)
        self.say(text)

    def summary(self, report: TransferReport, *, peer: str, session: str, direction: str) -> None:
        rate = report.bytes / MIB / report.seconds if report.seconds > 0 else 0.0
        self.event(
            "summary",
            ok=report.ok,
            peer=peer,
            session=session,
            direction=direction,
            files=report.files,
            bytes=report.bytes,
            resumed_bytes=report.resumed_bytes,
            seconds=round(report.seconds, 3),
            mb_per_s=round(rate, 2),
        )
        if not report.ok:
            return
        verb = "sent to" if direction == "send" else "received from"
        resumed = f" ({format_size(report.resumed_bytes)} resumed)" if report.resumed_bytes else ""
        self.say(
            f"{count(report.files, 'file')}, {format_size(report.bytes)}{resumed} {verb} {peer} "
            f"in {report.seconds:.1f} s ({rate:.1f} MiB/s)"
        )

    def observer(self, *, peer: str, session: str, direction: str) -> ProgressObserver:
        return ProgressObserver(self, peer=peer, session=session, direction=direction)


class ProgressObserver:
    """Progress of one transfer: tqdm bars (human) or file_* events (JSON)."""

    def __init__(self, output: Output, *, peer: str, session: str, direction: str) -> None:
        self.output = output
        self.label = printable(f"to {peer}" if direction == "send" else f"from {peer}", limit=40)
        self._stream = _HeldStream(output)
        self.peer = peer
        self.session = session
        # Bars redraw with cursor movements: on a log file or a pipe they are noise.
        self._bars = output.mode is OutputMode.HUMAN and sys.stderr.isatty()
        self._files: Sequence[FileEntry] = ()
        self._total_bar: tqdm | None = None
        self._file_bar: tqdm | None = None
        self._file_done = 0
        self._completed_bytes = 0
        self._last_event = 0.0

    def _fields(self, index: int, entry: FileEntry) -> dict[str, Any]:
        return {"peer": self.peer, "session": self.session, "index": index,
                "name": entry.name, "size": entry.size}

    def transfer_started(self, files: Sequence[FileEntry], offsets: Sequence[int]) -> None:
        self._files = files
        if self._bars:
            self._total_bar = _bar(self.label, sum(f.size for f in files), self._stream)
            self._total_bar.update(sum(offsets))

    def file_started(self, index: int, entry: FileEntry, offset: int) -> None:
        self._file_done = offset
        self.output.event("file_started", offset=offset, **self._fields(index, entry))
        if self._bars:
            self._file_bar = _bar(_shorten(printable(entry.name)), entry.size, self._stream,
                                  leave=False)
            self._file_bar.update(offset)

    def file_progress(self, index: int, done: int) -> None:
        step, self._file_done = done - self._file_done, done
        if self._file_bar is not None and self._total_bar is not None:
            self._file_bar.update(step)
            self._total_bar.update(step)
            return
        now = time.monotonic()
        due = now - self._last_event >= 1 / PROGRESS_EVENTS_PER_SECOND
        if due and index < len(self._files):
            self._last_event = now
            entry = self._files[index]
            self.output.event("file_progress", bytes=done, **self._fields(index, entry))

    def file_finished(self, index: int, entry: FileEntry, ok: bool, reason: str | None,
                      path: Path | None) -> None:
        self.output.event("file_done", ok=ok, reason=reason,
                          path=str(path) if path is not None else None,
                          **self._fields(index, entry))
        if self._file_bar is not None:
            self._file_bar.close()
            self._file_bar = None
        if not ok:
            self.output.say(f"{printable(entry.name)}: {printable(reason)}")

    def transfer_finished(self, ok: bool) -> None:
        if self._file_bar is not None:
            self._file_bar.close()
            self._file_bar = None
        if self._total_bar is not None:
            self._total_bar.close()
            self._total_bar = None


class _HeldStream:
    """stderr for progress bars: their writes are dropped while the Output is held.

    A bar redraws its whole line on every refresh, so a dropped redraw loses nothing;
    what it cannot do is overwrite a question waiting for its answer.
    """

    def __init__(self, output: Output) -> None:
        self.output = output

    def write(self, text: str) -> int:
        if not self.output.held:
            sys.stderr.write(text)
        return len(text)

    def flush(self) -> None:
        if not self.output.held:
            sys.stderr.flush()

    def fileno(self) -> int:
        return sys.stderr.fileno()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def _bar(description: str, total: int, stream: _HeldStream, *, leave: bool = True) -> tqdm:
    return tqdm(
        total=total,
        desc=description,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        leave=leave,
        file=stream,
        mininterval=BAR_REFRESH_SECONDS,
        dynamic_ncols=True,
    )


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _json_safe(line: str) -> str:
    """``line`` (JSON) with every hidden character written as a ``\\u`` escape.

    json.dumps already escapes C0 controls; bidi controls, U+2028, C1 controls and
    the like would otherwise reach a terminal that shows the events raw. Outside
    strings JSON text is ASCII, so each escape lands inside a string: same value.
    """
    if all(not is_hidden(char) for char in line):
        return line
    return "".join(_json_escape(char) if is_hidden(char) else char for char in line)


def count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _shorten(name: str, width: int = 30) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


def format_size(size: float) -> str:
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TiB"
