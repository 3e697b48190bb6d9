"""The values the transfer API hands to its callers (the peer layer and the CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rtcxfer.errors import ExitCode, RtcxferError
from rtcxfer.protocol.transfer import FileEntry


class SourceError(RtcxferError):
    """A path given to ``send`` that cannot be sent (missing, unreadable, clashing name)."""

    exit_code = ExitCode.FAILURE


@dataclass(frozen=True)
class SourceFile:
    """A file the sender will send: where it is on disk and what the peer is told."""

    path: Path
    entry: FileEntry


@dataclass(frozen=True)
class IncomingOffer:
    """A validated ``hello``, shown to the receiving user before anything is written."""

    files: tuple[FileEntry, ...]
    total: int
    held: int = 0  # bytes of these files that part files already hold (resume)


class TransferObserver(Protocol):
    """Progress sink; the CLI implements a tqdm and a ``--json`` version."""

    def transfer_started(self, files: Sequence[FileEntry], offsets: Sequence[int], *,
                         total: int | None = None) -> None: ...

    def file_started(self, index: int, entry: FileEntry, offset: int) -> None: ...

    def file_progress(self, index: int, done: int) -> None:
        """``done``: bytes of this file held so far, the resumed offset included."""

    def file_finished(self, index: int, entry: FileEntry, ok: bool, reason: str | None,
                      path: Path | None, *, saved_as: str | None = None,
                      resumed_from: int | None = None) -> None:
        """``path``: the final location (receiver) or the source file (sender).

        ``saved_as``: the name the receiver saved the file under when it is not
        ``entry.name`` (``hello (1).txt``); ``resumed_from``: the bytes it already held.
        On the sender both come from the receiver's ``ack`` (an extension: a peer
        that does not send them leaves them None).
        """

    def transfer_finished(self, ok: bool) -> None: ...


class SilentObserver:
    """A :class:`TransferObserver` with nothing to show (benchmarks, tests, embedding)."""

    def transfer_started(self, files: Sequence[FileEntry], offsets: Sequence[int], *,
                         total: int | None = None) -> None:
        pass

    def file_started(self, index: int, entry: FileEntry, offset: int) -> None:
        pass

    def file_progress(self, index: int, done: int) -> None:
        pass

    def file_finished(self, index: int, entry: FileEntry, ok: bool, reason: str | None,
                      path: Path | None, *, saved_as: str | None = None,
                      resumed_from: int | None = None) -> None:
        pass

    def transfer_finished(self, ok: bool) -> None:
        pass


@dataclass(frozen=True)
class TransferReport:
    """What one transfer did, from this side's point of view."""

    files: int  # files that landed (receiver) or were acked ok (sender)
    bytes: int  # bytes that crossed the channel in this run
    resumed_bytes: int  # bytes skipped because the receiver already held them
    seconds: float
    ok: bool
