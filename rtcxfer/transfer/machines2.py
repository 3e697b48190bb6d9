"""The rtcxfer/2 sender and receiver as explicit state machines, without any I/O.

Same shape as :mod:`rtcxfer.transfer.machines` (rtcxfer/1): each machine consumes
events and returns the actions its driver must carry out, in order. The rules are those
of docs/protocol.md, "rtcxfer/2": lists in batches, offsets per batch (``accept`` /
``have``), files in index order with up to ``WINDOW`` unsettled, cumulative ``acks``.

Memory: the machines keep full state only for entries listed and not yet settled (at
most ``LIST_AHEAD``) and, for clash detection, the receiver's :class:`NameGuard`.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from rtcxfer.protocol.transfer import Decline, Done, Error, FileStart, shorten
from rtcxfer.protocol.transfer2 import (
    LIST_AHEAD,
    MAX_TEXT_BYTES,
    VERSION2,
    WINDOW,
    Accept2,
    Acks,
    Entry,
    Eof2,
    Have,
    Hello2,
    ListBatch,
    Message2,
)
from rtcxfer.transfer.names2 import NameGuard
from rtcxfer.transfer.paths import UnsafeName

# Failures kept with their reason (the rest are only counted).
KEPT_FAILURES = 5


@dataclass(frozen=True)
class Send:
    message: Message2


@dataclass(frozen=True)
class ListMore:
    """Sender: list up to ``limit`` more entries (call :meth:`SenderMachine2.list_batch`)."""

    limit: int


@dataclass(frozen=True)
class StreamFile:
    """Sender: send entry ``index`` from ``offset``, then call ``file_sent``."""

    index: int
    offset: int


@dataclass(frozen=True)
class FallBackToV1:
    """Sender: the receiver answered the compatible hello as rtcxfer/1."""

    offsets: tuple[int, ...]


@dataclass(frozen=True)
class Settled:
    """Sender: entries ``first`` … ``upto``−1 are settled; ``failed`` (index, reason)."""

    first: int
    upto: int
    failed: tuple[tuple[int, str], ...]
    renamed: tuple[tuple[int, str], ...] = ()  # ext: kept under another name


@dataclass(frozen=True)
class AskDecision:
    """Receiver: ask the user about the transfer and look up the offsets of batch 0."""

    hello: Hello2


@dataclass(frozen=True)
class LookupOffsets:
    """Receiver: find the bytes held of each entry; answer with ``offsets_found``."""

    first: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class OpenFile:
    index: int
    entry: Entry
    offset: int


@dataclass(frozen=True)
class WriteChunk:
    index: int


@dataclass(frozen=True)
class DiscardFile:
    index: int


@dataclass(frozen=True)
class VerifyFile:
    """Receiver: check, make durable (possibly in a group) and report ``file_settled``."""

    index: int
    entry: Entry
    sha256: str
    size: int


@dataclass(frozen=True)
class Declined:
    reason: str


@dataclass(frozen=True)
class Finished:
    """Done exchanged. ``failed``: how many entries failed; ``failures``: the first few."""

    failed: int
    failures: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Fail:
    reason: str
    close_channel: bool


Action = (Send | ListMore | StreamFile | FallBackToV1 | Settled | AskDecision | LookupOffsets
          | OpenFile | WriteChunk | DiscardFile | VerifyFile | Declined | Finished | Fail)
Actions = tuple[Action, ...]


class State(enum.Enum):
    READY = "ready"
    AWAITING_HELLO = "awaiting hello"
    AWAITING_ACCEPT = "awaiting accept"
    DECIDING = "deciding"
    RUNNING = "running"
    DONE = "done"
    DECLINED = "declined"
    FAILED = "failed"
    HANDED_OVER = "handed over to rtcxfer/1"


_ENDED = (State.DONE, State.DECLINED, State.FAILED, State.HANDED_OVER)


def _kind(message: Message2) -> str:
    return type(message).__name__.lower()


class _Failures:
    def __init__(self) -> None:
        self.count = 0
        self.kept: list[tuple[int, str]] = []

    def add(self, index: int, reason: str) -> None:
        self.count += 1
        if len(self.kept) < KEPT_FAILURES:
            self.kept.append((index, reason))


class _Ending:
    """How either machine ends early: the same rules on both sides, worded for the peer."""

    state: State
    PEER = "peer"  # who broke the protocol, as the person reads it
    CLOSED_EARLY = "the connection closed early"

    def abort(self, reason: str) -> Actions:
        if self.state in _ENDED:
            return ()
        self.state = State.FAILED
        return (Send(Error(shorten(reason))), Fail(reason, True))

    def channel_closed(self) -> Actions:
        if self.state in _ENDED:
            return ()
        self.state = State.FAILED
        return (Fail(self.CLOSED_EARLY, False),)

    def protocol_violation(self, reason: str) -> Actions:
        if self.state in _ENDED:
            return ()
        self.state = State.FAILED
        return (Send(Error(f"protocol violation: {reason}")),
                Fail(f"the {self.PEER} broke the protocol: {reason}", True))


class SenderMachine2(_Ending):
    """The sending side of rtcxfer/2 (and the choice between v1 and v2)."""

    PEER = "receiver"
    CLOSED_EARLY = "the connection closed before the receiver confirmed every file"

    def __init__(self, count: int, total: int) -> None:
        self.count = count
        self.total = total
        self.state = State.READY
        self.compatible = False
        self.listed = 0
        self.list_requested = False
        self.sizes: dict[int, int | None] = {}  # listed, not yet started
        self.offsets: dict[int, int] = {}  # answered, not yet started
        self.unanswered: deque[tuple[int, int]] = deque()  # (first, n) of lists sent
        self.next_start = 0
        self.streaming = -1
        self.settled = 0
        self.done_sent = False
        self.failures = _Failures()

    # -- events --------------------------------------------------------------------

    def start(self, batch: Sequence[Entry], *, compatible: bool) -> Actions:
        """Send the hello with ``batch`` (all entries if ``compatible``: a v1 hello)."""
        if self.state is not State.READY:
            raise RuntimeError("the sender machine was already started")
        self.state = State.AWAITING_ACCEPT
        self.compatible = compatible
        batch = tuple(batch)
        if compatible:
            if len(batch) != self.count or any(e.size is None or e.text for e in batch):
                raise ValueError("a compatible hello lists every file, with sizes")
            hello = Hello2(version=1, count=self.count, total=self.total, files=batch,
                           versions=(1, VERSION2))
        else:
            hello = Hello2(version=VERSION2, count=self.count, total=self.total, files=batch)
        self._listed(batch)
        return (Send(hello),)

    def list_batch(self, batch: Sequence[Entry]) -> Actions:
        """The driver's answer to :class:`ListMore`."""
        if self.state in _ENDED:
            return ()
        if not self.list_requested:
            raise RuntimeError("list_batch() without ListMore")
        self.list_requested = False
        batch = tuple(batch)
        if not batch or self.listed + len(batch) > self.count:
            raise ValueError("list_batch() needs 1 to the remaining number of entries")
        first = self.listed
        self._listed(batch)
        return (Send(ListBatch(first=first, files=batch)), *self._progress())

    def file_sent(self, index: int, sha256: str, size: int) -> Actions:
        if self.state in _ENDED:
            return ()
        if index != self.streaming:
            raise RuntimeError(f"file_sent({index}) while streaming {self.streaming}")
        self.streaming = -1
        self.next_start = index + 1
        return (Send(Eof2(index=index, sha256=sha256, size=size)), *self._progress())

    def receive_message(self, message: Message2) -> Actions:
        if self.state in _ENDED:
            return ()
        if isinstance(message, Error):
            self.state = State.FAILED
            return (Fail(f"the receiver reported an error: {message.message}", False),)
        match self.state, message:
            case State.AWAITING_ACCEPT, Decline():
                self.state = State.DECLINED
                return (Declined(message.reason),)
            case State.AWAITING_ACCEPT, Accept2():
                return self._accepted(message)
            case State.RUNNING, Have():
                return self._have(message.first, message.offsets, "have")
            case State.RUNNING, Acks():
                return self._acks(message)
            case State.RUNNING, Done() if self.done_sent and self.settled == self.count:
                self.state = State.DONE
                return (Finished(self.failures.count, tuple(self.failures.kept)),)
        return self.protocol_violation(f"unexpected {_kind(message)!r} while {self.state.value}")

    def receive_chunk(self, length: int) -> Actions:
        return self.protocol_violation("the receiver sent a binary frame")

    # -- internals -----------------------------------------------------------------

    def _listed(self, batch: tuple[Entry, ...]) -> None:
        for offset, entry in enumerate(batch):
            self.sizes[self.listed + offset] = entry.size
        self.unanswered.append((self.listed, len(batch)))
        self.listed += len(batch)

    def _accepted(self, message: Accept2) -> Actions:
        if message.version is None:
            if not self.compatible:
                return self.protocol_violation("a v1 accept to an rtcxfer/2 hello")
            self.state = State.HANDED_OVER
            return (FallBackToV1(message.offsets),)
        if message.version != VERSION2:
            return self.protocol_violation(f"accept with version {message.version}")
        self.state = State.RUNNING
        return self._have(0, message.offsets, "accept")

    def _have(self, first: int, offsets: tuple[int, ...], kind: str) -> Actions:
        if not self.unanswered:
            return self.protocol_violation(f"{kind!r} without a list to answer")
        expected_first, length = self.unanswered[0]
        if first != expected_first or len(offsets) != length:
            return self.protocol_violation(
                f"{kind!r} for {len(offsets)} entries from {first}, expected {length} "
                f"from {expected_first}")
        for position, offset in enumerate(offsets):
            index = first + position
            size = self.sizes[index]
            limit = 0 if size is None else size
            if offset > limit:
                return self.protocol_violation(
                    f"offset {offset} of entry {index} is past its size {limit}")
        self.unanswered.popleft()
        for position, offset in enumerate(offsets):
            self.offsets[first + position] = offset
        return self._progress()

    def _acks(self, message: Acks) -> Actions:
        if not self.settled <= message.upto <= self.next_start:
            return self.protocol_violation(
                f"acks up to {message.upto} when {self.settled} were settled and "
                f"{self.next_start} sent")
        previous = -1
        for index, reason in message.failed:
            if not self.settled <= index < message.upto or index <= previous:
                return self.protocol_violation(f"acks: failed entry {index} out of range")
            previous = index
            self.failures.add(index, reason)
        first, self.settled = self.settled, message.upto
        renamed = tuple((i, name) for i, name in message.renamed if first <= i < message.upto)
        return (Settled(first, message.upto, message.failed, renamed), *self._progress())

    def _progress(self) -> Actions:
        actions: list[Action] = []
        if (self.listed < self.count and not self.list_requested
                and self.listed < self.settled + LIST_AHEAD and self.state is State.RUNNING):
            self.list_requested = True
            limit = min(self.count - self.listed, self.settled + LIST_AHEAD - self.listed)
            actions.append(ListMore(limit))
        if (self.state is State.RUNNING and self.streaming < 0 and self.next_start < self.count
                and self.next_start in self.offsets
                and self.next_start < self.settled + WINDOW):
            index = self.next_start
            self.streaming = index
            offset = self.offsets.pop(index)
            self.sizes.pop(index, None)
            actions.append(Send(FileStart(index=index, offset=offset)))
            actions.append(StreamFile(index, offset))
        if (self.state is State.RUNNING and not self.done_sent and self.streaming < 0
                and self.next_start == self.count):
            self.done_sent = True
            actions.append(Send(Done()))
        return tuple(actions)


@dataclass
class _Incoming:
    """The file being received."""

    index: int
    entry: Entry
    received: int
    failure: str | None = None


class ReceiverMachine2(_Ending):
    """The receiving side of rtcxfer/2, from a hello that offers version 2."""

    PEER = "sender"
    CLOSED_EARLY = "the connection closed before the transfer finished"

    def __init__(self, *, fold_case: bool = False, stdout: bool = False,
                 allow_hidden: bool = True) -> None:
        self.state = State.AWAITING_HELLO
        self.names = NameGuard(fold_case=fold_case, allow_hidden=allow_hidden)
        self.stdout = stdout
        self.version1_compatible = False
        self.count = 0
        self.total = 0
        self.listed_total = 0
        self.listed = 0
        self.entries: dict[int, Entry] = {}  # listed, not yet started
        self.offsets: dict[int, int] = {}  # answered, not yet started
        self.lookups: deque[tuple[int, int]] = deque()  # (first, n) of lookups under way
        self.answered = 0
        self.next_file = 0
        self.current: _Incoming | None = None
        self.verifying: set[int] = set()
        self.finished: dict[int, str | None] = {}  # settled but not yet acked (index: failure)
        self.renamed: dict[int, str] = {}  # settled under another name, not yet acked
        self.settled = 0
        self.done_requested = False
        self.failures = _Failures()
        self.text = False

    # -- events --------------------------------------------------------------------

    def receive_message(self, message: Message2) -> Actions:
        if self.state in _ENDED:
            return ()
        if isinstance(message, Error):
            self.state = State.FAILED
            return (Fail(f"the sender reported an error: {message.message}", False),)
        match self.state, message:
            case State.AWAITING_HELLO, Hello2():
                return self._hello(message)
            case State.RUNNING, ListBatch():
                return self._list(message)
            case State.RUNNING, FileStart() if self.current is None:
                return self._file_start(message)
            case State.RUNNING, Eof2() if (self.current is not None
                                          and message.index == self.current.index):
                return self._eof(message)
            case State.RUNNING, Done() if self.current is None and not self.done_requested:
                if self.next_file != self.count:
                    return self.protocol_violation(
                        f"'done' after {self.next_file} of {self.count} entries")
                self.done_requested = True
                return self._finish_if_requested()
        return self.protocol_violation(f"unexpected {_kind(message)!r} while {self.state.value}")

    def receive_chunk(self, length: int) -> Actions:
        if self.state in _ENDED:
            return ()
        current = self.current
        if self.state is not State.RUNNING or current is None:
            return self.protocol_violation("a binary frame outside a file")
        if current.failure is not None:
            return ()
        size = current.entry.size
        limit = (MAX_TEXT_BYTES if current.entry.text else size) if size is not None else None
        if limit is not None and current.received + length > limit:
            current.failure = f"the sender sent more than the announced {size} bytes"
            return (DiscardFile(current.index),)
        current.received += length
        return (WriteChunk(current.index),)

    def decide(self, reason: str | None, offsets: Sequence[int]) -> Actions:
        """The user's answer (None accepts) and the bytes held of batch 0."""
        if self.state is not State.DECIDING:
            return ()
        if reason is not None:
            self.state = State.DECLINED
            return (Send(Decline(shorten(reason))), Declined(reason))
        self.state = State.RUNNING
        first, length = self.lookups.popleft()
        return self._answer(first, length, tuple(offsets), accept=True)

    def offsets_found(self, first: int, offsets: Sequence[int]) -> Actions:
        if self.state is not State.RUNNING or not self.lookups or self.lookups[0][0] != first:
            return ()
        _, length = self.lookups.popleft()
        return self._answer(first, length, tuple(offsets), accept=False)

    def fail_current(self, index: int, reason: str) -> None:
        """Writing entry ``index`` failed locally: drop its frames, fail it at ``eof``."""
        if self.current is not None and self.current.index == index and (
                self.current.failure is None):
            self.current.failure = reason

    def file_settled(self, index: int, failure: str | None) -> Actions:
        """Entry ``index`` is durable (``failure`` None) or failed."""
        return self.files_settled(((index, failure),))

    def files_settled(self, results: Sequence[tuple[int, str | None]],
                      renamed: Sequence[tuple[int, str]] = ()) -> Actions:
        """A group of entries settled: one ``acks`` for all of them. ``renamed``: the
        files of the group kept under another name (told in the ``acks``)."""
        if self.state in _ENDED:
            return ()
        self.renamed.update(renamed)
        for index, failure in results:
            if index in self.verifying:
                self.verifying.discard(index)
                self.finished[index] = failure
        upto = self.settled
        failed: list[tuple[int, str]] = []
        saved_as: list[tuple[int, str]] = []
        while upto in self.finished:
            failure = self.finished.pop(upto)
            if failure is not None:
                failed.append((upto, shorten(failure)))
                self.failures.add(upto, failure)
            name = self.renamed.pop(upto, None)
            if name is not None and failure is None:
                saved_as.append((upto, name))
            upto += 1
        if upto == self.settled:
            return ()
        self.settled = upto
        return (Send(Acks(upto=upto, failed=tuple(failed), renamed=tuple(saved_as))),
                *self._finish_if_requested())

    # -- internals -----------------------------------------------------------------

    def _hello(self, hello: Hello2) -> Actions:
        if not hello.offers_v2:
            raise ValueError("ReceiverMachine2 takes a hello that offers rtcxfer/2")
        self.version1_compatible = hello.version == 1
        self.count, self.total = hello.count, hello.total
        texts = [entry for entry in hello.files if entry.text]
        if texts and hello.count != 1:
            return self.protocol_violation("a text must be the only entry of its transfer")
        self.text = bool(texts)
        if self.stdout and (hello.count != 1 or self.text):
            self.state = State.DECLINED
            reason = "this receiver takes exactly one file or stream (listen --stdout)"
            return (Send(Decline(reason)), Declined(reason))
        try:
            problem = self._check_batch(hello.files)
        except UnsafeName as error:
            self.state = State.DECLINED
            reason = f"refused file name: {error}"
            return (Send(Decline(shorten(reason))), Declined(reason))
        if problem is not None:
            return self.protocol_violation(problem)
        self.state = State.DECIDING
        self._take(hello.files)
        return (AskDecision(hello),)

    def _check_batch(self, batch: Sequence[Entry]) -> str | None:
        """A protocol problem of the batch's sizes, or UnsafeName for a refused name."""
        listed_total = self.listed_total
        for entry in batch:
            if entry.text and self.count != 1:
                return "a text must be the only entry of its transfer"
            if entry.size is not None:
                listed_total += entry.size
        if listed_total > self.total:
            return f"the entries listed add up to more than the announced total {self.total}"
        if self.listed + len(batch) == self.count and listed_total != self.total:
            return (f"the entries add up to {listed_total} bytes, not the announced "
                    f"total {self.total}")
        for entry in batch:
            if not entry.text:
                self.names.add(entry.name)
        self.listed_total = listed_total
        return None

    def _take(self, batch: Sequence[Entry]) -> None:
        self.lookups.append((self.listed, len(batch)))
        for position, entry in enumerate(batch):
            self.entries[self.listed + position] = entry
        self.listed += len(batch)

    def _list(self, message: ListBatch) -> Actions:
        if message.first != self.listed:
            return self.protocol_violation(
                f"'list' from {message.first} when {self.listed} entries were listed")
        if not message.files or self.listed + len(message.files) > self.count:
            return self.protocol_violation(
                f"'list' of {len(message.files)} entries from {message.first} "
                f"(the transfer has {self.count})")
        if self.listed + len(message.files) > self.settled + LIST_AHEAD:
            return self.protocol_violation(
                f"'list' beyond {LIST_AHEAD} entries past the {self.settled} settled")
        try:
            problem = self._check_batch(message.files)
        except UnsafeName as error:
            return self.abort(f"refused file name: {error}")
        if problem is not None:
            return self.protocol_violation(problem)
        first = self.listed
        self._take(message.files)
        return (LookupOffsets(first, message.files),)

    def _answer(self, first: int, length: int, offsets: tuple[int, ...], *,
                accept: bool) -> Actions:
        if len(offsets) != length:
            raise ValueError("offsets do not match the entries looked up")
        for position, offset in enumerate(offsets):
            entry = self.entries[first + position]
            limit = 0 if entry.size is None or entry.text else entry.size
            if not 0 <= offset <= limit:
                raise ValueError("an offset past the entry's size")
            self.offsets[first + position] = offset
        self.answered = first + length
        message: Message2 = (Accept2(offsets=offsets, version=VERSION2) if accept
                             else Have(first=first, offsets=offsets))
        return (Send(message),)

    def _file_start(self, message: FileStart) -> Actions:
        index = message.index
        if index != self.next_file:
            return self.protocol_violation(f"'file' {index} when {self.next_file} was expected")
        if index >= self.answered:
            return self.protocol_violation(f"'file' {index} before its offset was given")
        if index >= self.settled + WINDOW:
            return self.protocol_violation(
                f"'file' {index} beyond the window of {WINDOW} past the {self.settled} settled")
        held = self.offsets[index]
        if message.offset > held:
            return self.protocol_violation(
                f"'file' {index} starts at {message.offset}, past the {held} bytes held")
        del self.offsets[index]
        entry = self.entries.pop(index)
        self.next_file = index + 1
        self.current = _Incoming(index, entry, message.offset)
        return (OpenFile(index, entry, message.offset),)

    def _eof(self, message: Eof2) -> Actions:
        current = self.current
        assert current is not None
        self.current = None
        entry = current.entry
        self.verifying.add(current.index)
        if entry.size is None:
            if message.size is None:
                return self.protocol_violation("the 'eof' of a stream has no 'size'")
            if current.failure is None and message.size != current.received:
                current.failure = (f"the sender announced {message.size} bytes but sent "
                                   f"{current.received}")
        elif message.size is not None and message.size != entry.size:
            return self.protocol_violation(
                f"'eof' size {message.size} differs from the announced {entry.size}")
        elif current.failure is None and current.received != entry.size:
            current.failure = f"the sender announced {entry.size} bytes but sent {current.received}"
            return (DiscardFile(current.index), *self.file_settled(current.index,
                                                                    current.failure))
        if current.failure is not None:
            return (DiscardFile(current.index),
                    *self.file_settled(current.index, current.failure))
        return (VerifyFile(current.index, entry, message.sha256, current.received),)

    def _finish_if_requested(self) -> Actions:
        if not self.done_requested or self.verifying or self.settled != self.count:
            return ()
        self.state = State.DONE
        return (Send(Done()), Finished(self.failures.count, tuple(self.failures.kept)))
