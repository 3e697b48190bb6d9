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
from dataclasses import dataclass, field
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
# A receiver lists every saved path up to this many files; beyond, "N files into DIR"
# (renamed files are always listed).
LISTED_PATHS = 10
LISTED_RENAMED = 100


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
        # One stream for messages and bars: tqdm.write clears the bars drawn on it first.
        self.stream = _HeldStream(self)
        # Bar line of each running transfer (index: its position below the messages).
        self._slots: list[bool] = []
        # What the receiver kept, renamed, resumed, per session (for the summary).
        self._outcomes: dict[tuple[str, str], _Outcomes] = {}  # key: (peer, session)

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
            tqdm.write(line, file=self.stream)

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
                    tqdm.write(line, file=self.stream)

    def report(self, event: str, text: str, **fields: Any) -> None:
        """The same fact as a JSON event or a human line."""
        self.event(event, **fields)
        self.say(text)

    def take_slot(self) -> int:
        """The lowest free bar line: each running transfer keeps its own (stable) line."""
        for slot, used in enumerate(self._slots):
            if not used:
                self._slots[slot] = True
                return slot
        self._slots.append(True)
        return len(self._slots) - 1

    def free_slot(self, slot: int) -> None:
        self._slots[slot] = False
        while self._slots and not self._slots[-1]:
            self._slots.pop()

    def summary(self, report: TransferReport, *, peer: str, session: str, direction: str) -> None:
        """The closing line; rates count from the answer to the offer on (not the wait)."""
        rate = report.bytes / MIB / report.seconds if report.seconds > 0 else 0.0
        outcomes = self._outcomes.pop((peer, session), None) or _Outcomes()
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
            renamed=outcomes.renamed_count,
            resumed=outcomes.resumed_count,
        )
        if not report.ok:
            return
        verb = "sent to" if direction == "send" else "received from"
        resumed = f" ({format_size(report.resumed_bytes)} resumed)" if report.resumed_bytes else ""
        line = (f"{count(report.files, 'file')}, {format_size(report.bytes)}{resumed} {verb} "
                f"{peer} in {report.seconds:.1f} s ({rate:.1f} MiB/s)")
        if direction == "send" and (outcomes.renamed_count or outcomes.resumed_count):
            kept = report.files - outcomes.renamed_count
            parts = [f"{printable(peer)} kept {kept} under {'its' if kept == 1 else 'their'} "
                     "own name", f"renamed {outcomes.renamed_count}"]
            if outcomes.resumed_count:
                parts.append(f"resumed {outcomes.resumed_count}")
            line += ": " + ", ".join(parts)
        self.say(line)
        if direction == "send":
            for name, saved_as in outcomes.renamed:
                self.say(f"  {printable(name)} was saved as {printable(saved_as)}")
            if outcomes.renamed_count > len(outcomes.renamed):
                self.say(f"  and {outcomes.renamed_count - len(outcomes.renamed)} more renamed")

    def observer(self, *, peer: str, session: str, direction: str) -> ProgressObserver:
        return ProgressObserver(self, peer=peer, session=session, direction=direction)


@dataclass
class _Outcomes:
    """What happened to the files of one transfer, for its summary."""

    # Counts, and the first few of each kind for the listing: a transfer of a million
    # files keeps a few hundred bytes here, not a path per file.
    saved: list[Path] = field(default_factory=list)  # receiver: where the first files landed
    saved_count: int = 0
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (offered, saved as)
    renamed_count: int = 0
    resumed_count: int = 0
    folder: Path | None = None  # receiver: the download folder


class ProgressObserver:
    """Progress of one transfer: one tqdm bar line (human) or file_* events (JSON).

    Each transfer draws a single bar on its own line (its slot in :class:`Output`), so
    two transfers at once never write into each other's line.
    """

    def __init__(self, output: Output, *, peer: str, session: str, direction: str) -> None:
        self.output = output
        self.direction = direction
        self.label = printable(f"to {peer}" if direction == "send" else f"from {peer}", limit=40)
        self._stream = output.stream
        self.peer = peer
        self.session = session
        # Bars redraw with cursor movements: on a log file or a pipe they are noise.
        self._bars = output.mode is OutputMode.HUMAN and sys.stderr.isatty()
        self._files: Sequence[FileEntry] = ()
        self._total_bar: _Bar | None = None
        self._slot: int | None = None
        # Files started and not finished: index -> (entry, bytes done). rtcxfer/2 has
        # several in flight, and reports progress from its disk thread (late reports
        # for a finished file are ignored).
        self._in_flight: dict[int, tuple[FileEntry, int]] = {}
        self._completed_bytes = 0
        self._last_event = 0.0
        self._named_at = 0.0
        self._named_index = -1
        self.outcomes = _Outcomes()
        output._outcomes[(peer, session)] = self.outcomes

    def _fields(self, index: int, entry: FileEntry) -> dict[str, Any]:
        return {"peer": self.peer, "session": self.session, "index": index,
                "name": entry.name, "size": entry.size}

    def transfer_started(self, files: Sequence[FileEntry], offsets: Sequence[int], *,
                         total: int | None = None) -> None:
        """``files``: the entries known at the start (rtcxfer/2: the first batch);
        ``total``: the bytes of the whole transfer, when more entries follow."""
        self._files = files
        if self._bars and self._total_bar is None:
            self._slot = self.output.take_slot()
            # The bar starts at the bytes already held (resume), not at zero.
            size = total if total is not None else sum(f.size for f in files)
            self._total_bar = _Bar(self.label, size, self._stream,
                                   initial=sum(offsets), position=self._slot)

    def file_started(self, index: int, entry: FileEntry, offset: int) -> None:
        self._in_flight[index] = (entry, offset)
        if self.output.mode is OutputMode.JSON:
            self.output.event("file_started", offset=offset, **self._fields(index, entry))
        if offset > 0:
            self.output.say(f"resuming {printable(entry.name)} from {format_size(offset)}")
        if self._total_bar is not None:
            now = time.monotonic()
            # The bar names the file being moved; thousands of small files a second
            # need not be named one by one.
            if now - self._named_at >= 1 / PROGRESS_EVENTS_PER_SECOND:
                self._name(index, entry, now)

    def _name(self, index: int, entry: FileEntry, now: float) -> None:
        assert self._total_bar is not None
        self._named_at, self._named_index = now, index
        self._total_bar.set_description_str(
            f"{self.label} · {_shorten(printable(entry.name))}", refresh=False)

    def file_progress(self, index: int, done: int) -> None:
        flying = self._in_flight.get(index)
        if flying is None:
            return  # a late report for a file counted whole already
        entry, before = flying
        self._in_flight[index] = (entry, max(before, done))
        if self._total_bar is not None:
            if index != self._named_index:  # a file long enough to report progress
                now = time.monotonic()
                if now - self._named_at >= 1 / PROGRESS_EVENTS_PER_SECOND:
                    self._name(index, entry, now)
            if done > before:
                self._total_bar.update(done - before)
            return
        now = time.monotonic()
        if now - self._last_event >= 1 / PROGRESS_EVENTS_PER_SECOND:
            self._last_event = now
            self.output.event("file_progress", bytes=done, **self._fields(index, entry))

    def file_finished(self, index: int, entry: FileEntry, ok: bool, reason: str | None,
                      path: Path | None, *, saved_as: str | None = None,
                      resumed_from: int | None = None) -> None:
        receiving = self.direction != "send"
        if (receiving and ok and path is not None and saved_as is None
                and not str(path).endswith("/" + entry.name)):
            # An observer driven without the ack extension still sees the path.
            saved_as = _renamed(entry.name, path)
        if self.output.mode is OutputMode.JSON:
            self.output.event("file_done", ok=ok, reason=reason,
                              path=str(path) if path is not None else None,
                              saved_as=saved_as, resumed_from=resumed_from,
                              **self._fields(index, entry))
        _, done = self._in_flight.pop(index, (entry, entry.size))
        if self._total_bar is not None and done < entry.size and ok:
            # An empty file (or one held whole) still moves the bar to its end.
            self._total_bar.update(entry.size - done)
        if not ok:
            self.output.say(f"{printable(entry.name)}: {printable(reason)}")
            return
        outcomes = self.outcomes
        if resumed_from:
            outcomes.resumed_count += 1
        if receiving and path is not None:
            outcomes.saved_count += 1
            if len(outcomes.saved) <= LISTED_PATHS:
                outcomes.saved.append(path)
            if outcomes.folder is None:
                outcomes.folder = _folder_of(path, entry.name)
        if saved_as is not None:
            outcomes.renamed_count += 1
            if len(outcomes.renamed) < LISTED_RENAMED:
                outcomes.renamed.append((entry.name, saved_as))
            if receiving:
                self.output.warn(
                    "renamed", f"{entry.name} already exists: saved as "
                    f"{path if path is not None else saved_as}",
                    peer=self.peer, session=self.session, index=index, name=entry.name,
                    saved_as=saved_as, path=str(path) if path is not None else None)

    def transfer_finished(self, ok: bool) -> None:
        if not ok:
            # No summary follows a failed transfer: nothing to keep for it.
            self.output._outcomes.pop((self.peer, self.session), None)
        if self._total_bar is not None:
            bar, self._total_bar = self._total_bar, None
            bar.set_description_str(self.label, refresh=False)
            if ok:
                bar.finish()
            final = str(bar)
            # Cleared from its slot, then written once as an ordinary line: a finished
            # bar never lands in the line of a transfer still running.
            bar.leave = False
            bar.close()
            # tqdm leaves the cursor at the end of a cleared line below the first one
            # (it writes "\r" only for position 0): back to the start of the line.
            self._stream.write("\r")
            self._stream.flush()
            if self._slot is not None:
                self.output.free_slot(self._slot)
                self._slot = None
            if ok:
                self.output.say(final)
        if self.direction != "send":
            self._list_saved()

    def _list_saved(self) -> None:
        outcomes = self.outcomes
        saved = outcomes.saved
        if not saved:
            return
        if outcomes.saved_count <= LISTED_PATHS:
            for path in saved:
                self.output.say(f"saved {path}")
        else:
            renamed = outcomes.renamed
            note = f", {outcomes.renamed_count} of them renamed:" if renamed else ""
            self.output.say(f"saved {outcomes.saved_count} files into {outcomes.folder}{note}")
            for name, saved_as in renamed:
                self.output.say(f"  {name} -> {saved_as}")
            if outcomes.renamed_count > len(renamed):
                self.output.say(f"  and {outcomes.renamed_count - len(renamed)} more")


def _renamed(name: str, path: Path) -> str | None:
    """The name ``path`` has inside its download folder when it is not ``name``."""
    parts = name.split("/")
    landed = path.parts[-len(parts):]
    return None if list(landed) == parts else "/".join(landed)


def _folder_of(path: Path, name: str) -> Path:
    depth = len(name.split("/"))
    return path.parents[depth - 1] if depth <= len(path.parents) else path.parent


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


class _Bar(tqdm):  # type: ignore[type-arg]
    """A byte-count bar in the same units as every message: ``12 B``, ``3.5 MiB/s``.

    tqdm's own ``unit_scale`` prints ``12.0/12.0`` for a 12-byte file and keeps
    going for an empty one; this one formats sizes with :func:`format_size` and
    shows an empty transfer as a finished bar.
    """

    BAR_FORMAT = ("{desc}: {percentage:3.0f}%|{bar}| {size_done} / {size_total} "
                  "[{elapsed}<{remaining}, {speed}]")

    def __init__(self, description: str, total: int, stream: _HeldStream, *,
                 initial: int = 0, position: int = 0) -> None:
        self.size_total = total
        super().__init__(
            total=max(total, 1),  # tqdm draws no bar for a total of 0
            initial=min(initial, max(total, 1)),
            desc=description,
            unit="B",
            leave=True,
            file=stream,
            mininterval=BAR_REFRESH_SECONDS,
            dynamic_ncols=True,
            position=position,
            bar_format=self.BAR_FORMAT,
        )

    def finish(self) -> None:
        if self.n < self.total:
            self.n = self.total
        self.refresh()

    @property
    def format_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = super().format_dict
        done = min(values["n"], self.size_total)
        rate = values.get("rate")
        elapsed = values.get("elapsed") or 0.0
        if rate is None and elapsed > 0:
            rate = (values["n"] - values.get("initial", 0)) / elapsed
        values["size_done"] = format_size(done)
        values["size_total"] = format_size(self.size_total)
        if self.size_total == 0:
            rate = 0.0  # the stand-in total of 1 is no byte
        values["speed"] = f"{format_size(rate)}/s" if rate is not None else "? B/s"
        return values


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
