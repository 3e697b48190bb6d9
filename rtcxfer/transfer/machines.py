"""The rtcxfer/1 sender and receiver as explicit state machines, without any I/O.

Each machine consumes events (a parsed control message, the length of a binary frame,
a local decision, the outcome of a verification, the channel closing) and returns the
actions its driver must carry out, in order: messages to send, files to stream, open,
verify or discard, and how the transfer ended. The asyncio drivers
(``rtcxfer.transfer.sender`` / ``receiver``) own the channel and the disk; everything
about what is allowed when lives here, so it can be tested without a network.

A message that is not allowed in the current state is a protocol violation: the
machine answers with an ``error`` message and a :class:`Fail` action asking the driver
to close the channel.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rtcxfer.protocol.transfer import (
    Accept,
    Ack,
    Decline,
    Done,
    Eof,
    Error,
    FileEntry,
    FileStart,
    Hello,
    Message,
    shorten,
)
from rtcxfer.transfer.model import IncomingOffer
from rtcxfer.transfer.paths import UnsafeName, validate_offer


@dataclass(frozen=True)
class Send:
    message: Message


@dataclass(frozen=True)
class StreamFile:
    """Sender: send the bytes of file ``index`` from ``offset`` on, then report its sha256."""

    index: int
    offset: int


@dataclass(frozen=True)
class AskDecision:
    """Receiver: ask the user about ``offer`` and look up how much of each file we hold."""

    offer: IncomingOffer


@dataclass(frozen=True)
class OpenFile:
    """Receiver: open the part file of ``index`` and keep its first ``offset`` bytes."""

    index: int
    entry: FileEntry
    offset: int


@dataclass(frozen=True)
class WriteChunk:
    """Receiver: append the binary frame just received to file ``index``."""

    index: int


@dataclass(frozen=True)
class DiscardFile:
    """Receiver: file ``index`` failed; delete its part file."""

    index: int


@dataclass(frozen=True)
class VerifyFile:
    """Receiver: check the whole file against ``sha256``, flush it and move it into place."""

    index: int
    sha256: str


@dataclass(frozen=True)
class FileOutcome:
    index: int
    ok: bool
    reason: str | None
    path: Path | None = None
    # What the receiver kept (ack extensions, docs/protocol.md): the name the file
    # landed under when it is not its own, and the bytes it already held.
    saved_as: str | None = None
    resumed_from: int | None = None


@dataclass(frozen=True)
class Declined:
    reason: str


@dataclass(frozen=True)
class Finished:
    """Both sides exchanged ``done``; ``failures`` lists (index, reason) of refused files."""

    failures: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Fail:
    """The transfer cannot go on. ``close_channel``: we detected it and must close."""

    reason: str
    close_channel: bool


Action = (
    Send | StreamFile | AskDecision | OpenFile | WriteChunk | DiscardFile | VerifyFile
    | FileOutcome | Declined | Finished | Fail
)
Actions = tuple[Action, ...]


class SenderState(enum.Enum):
    READY = "ready"
    AWAITING_ACCEPT = "awaiting accept"
    SENDING_FILE = "sending file"
    AWAITING_ACK = "awaiting ack"
    AWAITING_DONE = "awaiting done"
    DONE = "done"
    DECLINED = "declined"
    FAILED = "failed"


class ReceiverState(enum.Enum):
    AWAITING_HELLO = "awaiting hello"
    DECIDING = "deciding"
    AWAITING_FILE = "awaiting file"
    RECEIVING_FILE = "receiving file"
    DONE = "done"
    DECLINED = "declined"
    FAILED = "failed"


_SENDER_ENDED = (SenderState.DONE, SenderState.DECLINED, SenderState.FAILED)
_RECEIVER_ENDED = (ReceiverState.DONE, ReceiverState.DECLINED, ReceiverState.FAILED)


def _kind(message: Message) -> str:
    return {
        Hello: "hello", Accept: "accept", Decline: "decline", FileStart: "file", Eof: "eof",
        Ack: "ack", Done: "done", Error: "error",
    }[type(message)]


class SenderMachine:
    """The sending side: hello, then a file/eof/ack round per file, then done."""

    def __init__(self, files: Sequence[FileEntry]) -> None:
        self.files = tuple(files)
        self.state = SenderState.READY
        self.offsets: tuple[int, ...] = ()
        self.current = -1
        self.failures: list[tuple[int, str]] = []

    def start(self) -> Actions:
        if self.state is not SenderState.READY:
            raise RuntimeError("the sender machine was already started")
        self.state = SenderState.AWAITING_ACCEPT
        total = sum(entry.size for entry in self.files)
        return (Send(Hello(files=self.files, total=total)),)

    def receive_message(self, message: Message) -> Actions:
        if self.state in _SENDER_ENDED:
            return ()
        if isinstance(message, Error):
            self.state = SenderState.FAILED
            return (Fail(f"the receiver reported an error: {message.message}", False),)
        match self.state, message:
            case SenderState.AWAITING_ACCEPT, Decline():
                self.state = SenderState.DECLINED
                return (Declined(message.reason),)
            case SenderState.AWAITING_ACCEPT, Accept():
                return self._accepted(message.offsets)
            case SenderState.AWAITING_ACK, Ack() if message.index == self.current:
                outcome = FileOutcome(self.current, message.ok, message.reason,
                                      saved_as=message.saved_as,
                                      resumed_from=message.resumed_from)
                if not message.ok:
                    self.failures.append((self.current, message.reason or "no reason given"))
                return (outcome, *self._next_file())
            case SenderState.AWAITING_DONE, Done():
                self.state = SenderState.DONE
                return (Finished(tuple(self.failures)),)
        return self.protocol_violation(f"unexpected {_kind(message)!r} while {self.state.value}")

    def receive_chunk(self, length: int) -> Actions:
        if self.state in _SENDER_ENDED:
            return ()
        return self.protocol_violation("the receiver sent a binary frame")

    def file_sent(self, index: int, sha256: str) -> Actions:
        """The driver sent every byte of file ``index``; its whole content hashes to sha256."""
        if self.state in _SENDER_ENDED:
            return ()
        if self.state is not SenderState.SENDING_FILE or index != self.current:
            raise RuntimeError(f"file_sent({index}) while {self.state.value}")
        self.state = SenderState.AWAITING_ACK
        return (Send(Eof(index=index, sha256=sha256)),)

    def abort(self, reason: str) -> Actions:
        """A local failure (unreadable file, interruption): tell the peer and stop."""
        if self.state in _SENDER_ENDED:
            return ()
        self.state = SenderState.FAILED
        return (Send(Error(shorten(reason))), Fail(reason, True))

    def channel_closed(self) -> Actions:
        if self.state in _SENDER_ENDED:
            return ()
        self.state = SenderState.FAILED
        return (Fail("the connection closed before the receiver confirmed every file", False),)

    def _accepted(self, offsets: tuple[int, ...]) -> Actions:
        if len(offsets) != len(self.files):
            return self.protocol_violation(
                f"accept has {len(offsets)} offsets for {len(self.files)} files"
            )
        for index, (offset, entry) in enumerate(zip(offsets, self.files, strict=True)):
            if offset > entry.size:
                return self.protocol_violation(
                    f"accept offset {offset} of file {index} is past its size {entry.size}"
                )
        self.offsets = offsets
        return self._next_file()

    def _next_file(self) -> Actions:
        self.current += 1
        if self.current == len(self.files):
            self.state = SenderState.AWAITING_DONE
            return (Send(Done()),)
        self.state = SenderState.SENDING_FILE
        offset = self.offsets[self.current]
        return (Send(FileStart(self.current, offset)), StreamFile(self.current, offset))

    def protocol_violation(self, reason: str) -> Actions:
        """The peer broke the protocol (also: a frame that did not parse)."""
        if self.state in _SENDER_ENDED:
            return ()
        self.state = SenderState.FAILED
        message = f"protocol violation: {reason}"
        return (Send(Error(message)), Fail(f"the receiver broke the protocol: {reason}", True))


class ReceiverMachine:
    """The receiving side: hello, a decision, file/eof rounds answered by acks, then done.

    Files must arrive in order. The receiver tolerates a sender that starts the next
    file before the previous ack (verifications complete in order behind it), and
    answers ``done`` only after every file has been acked.
    """

    def __init__(self) -> None:
        self.state = ReceiverState.AWAITING_HELLO
        self.files: tuple[FileEntry, ...] = ()
        self.offered_offsets: tuple[int, ...] = ()
        self.next_index = 0
        self.current = -1
        self.received = 0
        self.current_failure: str | None = None
        self.verifying: set[int] = set()
        self.done_requested = False
        self.failures: list[tuple[int, str]] = []
        self.start_offsets: dict[int, int] = {}  # index -> offset of its `file` message

    def receive_message(self, message: Message) -> Actions:
        if self.state in _RECEIVER_ENDED:
            return ()
        if isinstance(message, Error):
            self.state = ReceiverState.FAILED
            return (Fail(f"the sender reported an error: {message.message}", False),)
        match self.state, message:
            case ReceiverState.AWAITING_HELLO, Hello():
                return self._hello(message)
            case ReceiverState.AWAITING_FILE, FileStart():
                return self._file_start(message)
            case ReceiverState.AWAITING_FILE, Done():
                return self._done()
            case ReceiverState.RECEIVING_FILE, Eof() if message.index == self.current:
                return self._eof(message)
        return self.protocol_violation(f"unexpected {_kind(message)!r} while {self.state.value}")

    def receive_chunk(self, length: int) -> Actions:
        if self.state in _RECEIVER_ENDED:
            return ()
        if self.state is not ReceiverState.RECEIVING_FILE:
            return self.protocol_violation(f"a binary frame while {self.state.value}")
        if self.current_failure is not None:
            return ()
        size = self.files[self.current].size
        if self.received + length > size:
            self.current_failure = f"the sender sent more than the announced {size} bytes"
            return (DiscardFile(self.current),)
        self.received += length
        return (WriteChunk(self.current),)

    def decide(self, reason: str | None, offsets: Sequence[int]) -> Actions:
        """The user's answer to the offer (None accepts) and the bytes already held."""
        if self.state is not ReceiverState.DECIDING:
            return ()
        if reason is not None:
            self.state = ReceiverState.DECLINED
            return (Send(Decline(shorten(reason))), Declined(reason))
        if len(offsets) != len(self.files) or any(
            not 0 <= offset <= entry.size
            for offset, entry in zip(offsets, self.files, strict=False)
        ):
            raise ValueError("resume offsets do not match the offered files")
        self.offered_offsets = tuple(offsets)
        self.state = ReceiverState.AWAITING_FILE
        return (Send(Accept(self.offered_offsets)),)

    def file_verified(self, index: int, ok: bool, reason: str | None,
                      path: Path | None, saved_as: str | None = None) -> Actions:
        """The outcome of a :class:`VerifyFile` (or of a failed open or write of that file).

        ``saved_as``: the name (relative, ``/`` separators) the file landed under when it
        is not the offered one; the ``ack`` tells the sender (extension).
        """
        if self.state in _RECEIVER_ENDED or index not in self.verifying:
            return ()
        self.verifying.discard(index)
        if not ok:
            self.failures.append((index, reason or "unknown failure"))
        offset = self.start_offsets.get(index, 0)
        saved = shorten(saved_as) if ok and saved_as and saved_as != self.files[index].name \
            else None
        resumed = offset if ok and offset > 0 else None
        actions: list[Action] = [
            Send(Ack(index=index, ok=ok, reason=None if ok else shorten(reason or ""),
                     saved_as=saved, resumed_from=resumed)),
            FileOutcome(index, ok, reason, path, saved_as=saved, resumed_from=resumed),
        ]
        actions.extend(self._finish_if_requested())
        return tuple(actions)

    def fail_current(self, index: int, reason: str) -> None:
        """Writing file ``index`` failed locally (disk full, permissions): drop its
        remaining frames and refuse it at its ``eof``."""
        if (
            self.state is ReceiverState.RECEIVING_FILE
            and index == self.current
            and self.current_failure is None
        ):
            self.current_failure = reason

    def abort(self, reason: str) -> Actions:
        """A local failure that ends the transfer (interruption): tell the peer and stop."""
        if self.state in _RECEIVER_ENDED:
            return ()
        self.state = ReceiverState.FAILED
        return (Send(Error(shorten(reason))), Fail(reason, True))

    def channel_closed(self) -> Actions:
        if self.state in _RECEIVER_ENDED:
            return ()
        self.state = ReceiverState.FAILED
        return (Fail("the connection closed before the transfer finished", False),)

    def _hello(self, hello: Hello) -> Actions:
        try:
            offer = validate_offer(hello)
        except UnsafeName as error:
            self.state = ReceiverState.DECLINED
            reason = f"refused file name: {error}"
            return (Send(Decline(shorten(reason))), Declined(reason))
        self.files = offer.files
        self.state = ReceiverState.DECIDING
        return (AskDecision(offer),)

    def _file_start(self, message: FileStart) -> Actions:
        if message.index >= len(self.files):
            return self.protocol_violation(
                f"'file' {message.index} but the offer has {len(self.files)} files"
            )
        if message.index != self.next_index:
            return self.protocol_violation(
                f"'file' {message.index} when file {self.next_index} was expected"
            )
        if message.offset > self.offered_offsets[message.index]:
            return self.protocol_violation(
                f"'file' {message.index} starts at {message.offset}, past the "
                f"{self.offered_offsets[message.index]} bytes held"
            )
        entry = self.files[message.index]
        self.state = ReceiverState.RECEIVING_FILE
        self.current = message.index
        self.received = message.offset
        self.start_offsets[message.index] = message.offset
        self.current_failure = None
        return (OpenFile(message.index, entry, message.offset),)

    def _eof(self, message: Eof) -> Actions:
        index = self.current
        size = self.files[index].size
        self.state = ReceiverState.AWAITING_FILE
        self.next_index = index + 1
        if self.current_failure is None and self.received != size:
            self.current_failure = (
                f"the sender announced {size} bytes but sent {self.received}"
            )
            self.verifying.add(index)
            return (DiscardFile(index), *self.file_verified(index, False, self.current_failure,
                                                            None))
        self.verifying.add(index)
        if self.current_failure is not None:
            return self.file_verified(index, False, self.current_failure, None)
        return (VerifyFile(index, message.sha256),)

    def _done(self) -> Actions:
        if self.next_index != len(self.files):
            return self.protocol_violation(
                f"'done' after {self.next_index} of {len(self.files)} files"
            )
        self.done_requested = True
        return self._finish_if_requested()

    def _finish_if_requested(self) -> Actions:
        if not self.done_requested or self.verifying:
            return ()
        self.state = ReceiverState.DONE
        return (Send(Done()), Finished(tuple(self.failures)))

    def protocol_violation(self, reason: str) -> Actions:
        """The peer broke the protocol (also: a frame that did not parse)."""
        if self.state in _RECEIVER_ENDED:
            return ()
        self.state = ReceiverState.FAILED
        message = f"protocol violation: {reason}"
        return (Send(Error(message)), Fail(f"the sender broke the protocol: {reason}", True))
