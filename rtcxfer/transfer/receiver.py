"""The receiving side of rtcxfer/1 over a data channel: :func:`receive_files`.

Frames are handled synchronously in the channel's ``message`` callback: the state
machine judges each one, binary frames are gathered into batches of about
``BATCH_BYTES``, and every disk operation (open and re-hash a part file, write and
hash a batch, verify + fsync + rename, discard) is queued, in order, to one disk
thread per transfer. Its results come back to the event loop as events for the
machine (an ``ack`` is sent only after the file is verified, flushed and in place).

Memory: aiortc delivers frames through callbacks and offers no way to pause them, so
the bound comes from the disk queue: it holds at most ``MAX_QUEUED_JOBS`` jobs. When
the disk falls that far behind the network, queueing the next batch blocks the event
loop until the disk thread catches up; meanwhile the loop reads no packets, the SCTP
receive window fills, and the sender's ``bufferedAmount`` backpressure takes over.
So the receiver holds at most about ``(MAX_QUEUED_JOBS + 1) * BATCH_BYTES`` of file data.
"""

from __future__ import annotations

import asyncio
import dataclasses
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from aiortc import RTCDataChannel

from rtcxfer.errors import TransferFailed
from rtcxfer.protocol.transfer import FileEntry, TransferProtocolError, parse_message
from rtcxfer.transfer.channel import ChannelClosed, ChannelLink
from rtcxfer.transfer.machines import (
    Actions,
    AskDecision,
    Declined,
    DiscardFile,
    Fail,
    FileOutcome,
    Finished,
    OpenFile,
    ReceiverMachine,
    Send,
    VerifyFile,
    WriteChunk,
)
from rtcxfer.transfer.model import IncomingOffer, TransferObserver, TransferReport
from rtcxfer.transfer.storage import DownloadFolder, PartFile, StorageError, space_problem

BATCH_BYTES = 1024 * 1024
MAX_QUEUED_JOBS = 8

Decide = Callable[[IncomingOffer], Awaitable[str | None]]


def receive_files(channel: RTCDataChannel, *, download_dir: Path, decide: Decide,
                  overwrite: bool, observer: TransferObserver,
                  ) -> Coroutine[Any, Any, TransferReport]:
    """Run the receiver side of rtcxfer/1 on ``channel``; await the result for the report.

    Call it synchronously from the ``datachannel`` event: it registers its ``message``
    listener before returning (so no early frame is lost) and returns the coroutine
    that runs the transfer; the channel may be open or still connecting.

    ``decide`` gets the validated offer and returns None to accept or a decline reason.
    An offer with a hostile name is declined without asking. The report comes when
    ``done`` is exchanged, or after a decline (``ok`` False, no files). Raises
    :class:`TransferFailed` when the sender sends ``error``, breaks the protocol, or the
    channel closes early; partial files stay as part files for a later resume.
    """
    receiver = _Receiver(channel, download_dir, decide, overwrite, observer)
    return receiver.run()


class _DiskThread:
    """One thread doing every disk operation of a transfer, in the order queued."""

    def __init__(self) -> None:
        self.jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(MAX_QUEUED_JOBS)
        self.thread = threading.Thread(target=self._work, name="rtcxfer-receive", daemon=True)
        self.thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        # Blocks the caller (the event loop) when the disk is MAX_QUEUED_JOBS behind:
        # that is the receiver's memory bound, see the module docstring.
        self.jobs.put(job)

    def stop(self) -> None:
        self.jobs.put(None)

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            job()


class _Receiver:
    def __init__(self, channel: RTCDataChannel, download_dir: Path, decide: Decide,
                 overwrite: bool, observer: TransferObserver) -> None:
        self.loop = asyncio.get_running_loop()
        self.folder = DownloadFolder(download_dir)
        self.decide = decide
        self.overwrite = overwrite
        self.observer = observer
        self.machine = ReceiverMachine()
        self.outcome: asyncio.Future[TransferReport] = self.loop.create_future()
        self.link = ChannelLink(channel, self._on_message)
        self.link.on_close(lambda: self._execute(self.machine.channel_closed()))
        self.disk: _DiskThread | None = None
        self.decision: asyncio.Task[None] | None = None
        self.batch: list[bytes] = []
        self.batch_bytes = 0
        self.batch_index = -1
        # Touched only by the disk thread: the part file being written and why it failed.
        self.part: PartFile | None = None
        self.part_index = -1
        self.part_failure: str | None = None
        self.started = time.monotonic()
        self.received_bytes = 0
        self.resumed_bytes = 0
        self.landed = 0

    async def run(self) -> TransferReport:
        try:
            report = await self.outcome
        except asyncio.CancelledError:
            self._execute(self.machine.abort("the receiver was interrupted"))
            self.observer.transfer_finished(False)
            raise
        except BaseException:
            self.observer.transfer_finished(False)
            raise
        finally:
            self.link.detach()
            if self.decision is not None:
                self.decision.cancel()
            if self.disk is not None:
                # Closes (and keeps) the current part file once earlier jobs are done;
                # waiting for it means the disk is settled when the caller looks at it.
                self.disk.submit(self._close_part)
                self.disk.stop()
                await asyncio.to_thread(self.disk.thread.join)
            self.folder.release()
        self.observer.transfer_finished(report.ok)
        return report

    # Event loop side ---------------------------------------------------------------

    def _on_message(self, data: str | bytes) -> None:
        if self.outcome.done():
            return
        if isinstance(data, bytes):
            actions = self.machine.receive_chunk(len(data))
            if actions and isinstance(actions[0], WriteChunk):
                self._buffer(actions[0].index, data)
                return
        else:
            try:
                actions = self.machine.receive_message(parse_message(data))
            except TransferProtocolError as error:
                actions = self.machine.protocol_violation(str(error))
        self._execute(actions)

    def _buffer(self, index: int, data: bytes) -> None:
        self.batch.append(data)
        self.batch_bytes += len(data)
        self.batch_index = index
        self.received_bytes += len(data)
        if self.batch_bytes >= BATCH_BYTES:
            self._flush_batch()

    def _flush_batch(self) -> None:
        if not self.batch:
            return
        chunks, index = self.batch, self.batch_index
        self.batch, self.batch_bytes = [], 0
        self._disk().submit(lambda: self._write(index, chunks))

    def _execute(self, actions: Actions) -> None:
        for action in actions:
            match action:
                case Send(message):
                    try:
                        self.link.send_message(message)
                    except ChannelClosed:
                        self._execute(self.machine.channel_closed())
                case AskDecision(offer):
                    self.decision = self.loop.create_task(self._decide(offer))
                case OpenFile(index, entry, offset):
                    # Frames left from a file that failed mid-way belong to no part file.
                    self.batch, self.batch_bytes = [], 0
                    self.resumed_bytes += offset
                    self.observer.file_started(index, entry, offset)
                    self._disk().submit(lambda i=index, e=entry, o=offset: self._open(i, e, o))
                case DiscardFile():
                    self.batch, self.batch_bytes = [], 0
                    self._disk().submit(self._discard)
                case VerifyFile(index, sha256):
                    self._flush_batch()
                    mtime = self.machine.files[index].mtime
                    self._disk().submit(lambda i=index, s=sha256, m=mtime: self._finish(i, s, m))
                case FileOutcome(index, ok, reason, path, saved_as, resumed_from):
                    if ok:
                        self.landed += 1
                    entry = self.machine.files[index]
                    self.observer.file_finished(index, entry, ok, reason, path,
                                                saved_as=saved_as, resumed_from=resumed_from)
                case Declined():
                    self._conclude(ok=False)
                case Finished(failures):
                    self._conclude(ok=not failures)
                case Fail(reason, close_channel):
                    if close_channel:
                        self.link.close()
                    if not self.outcome.done():
                        self.outcome.set_exception(TransferFailed(reason))

    def _conclude(self, *, ok: bool) -> None:
        if self.outcome.done():
            return
        self.outcome.set_result(TransferReport(
            files=self.landed,
            bytes=self.received_bytes,
            resumed_bytes=self.resumed_bytes,
            seconds=time.monotonic() - self.started,
            ok=ok,
        ))

    async def _decide(self, offer: IncomingOffer) -> None:
        try:
            # Reserve the part files first: a transfer of the same names running now
            # gets other part files (its copy lands as "name (1).ext"), decided here,
            # before any byte is sent, never found out after the upload.
            offsets = await asyncio.to_thread(self.folder.claim, offer.files)
            offer = dataclasses.replace(offer, held=sum(offsets))
            if self.folder.unclaimed:
                # A clash is refused before its bytes are sent, not after.
                reason: str | None = (
                    f"busy: {len(self.folder.unclaimed)} of these files are being received "
                    f"by other transfers right now (first: {self.folder.unclaimed[0]!r}); "
                    "try again later")
            else:
                reason = await self.decide(offer)
            if reason is None:
                # Whatever decide said, an offer that cannot fit is declined before
                # anything is written (rtcxfer listen checks before asking, too).
                reason = await asyncio.to_thread(space_problem, self.folder.root,
                                                 offer.total - offer.held)
            if reason is not None:
                self.folder.release()
                offsets = []
        except Exception as error:
            self._execute(self.machine.abort("the receiver failed while deciding"))
            if not self.outcome.done():
                self.outcome.set_exception(error)
            return
        actions = self.machine.decide(reason, offsets)
        if reason is None:
            # Rates count from the answer on: the person's time to decide is not transfer time.
            self.started = time.monotonic()
            self.observer.transfer_started(offer.files, offsets)
        self._execute(actions)

    def _disk(self) -> _DiskThread:
        if self.disk is None:
            self.disk = _DiskThread()
        return self.disk

    def _post(self, callback: Callable[..., None], *args: object) -> None:
        self.loop.call_soon_threadsafe(callback, *args)

    def _write_failed(self, index: int, reason: str) -> None:
        self.machine.fail_current(index, reason)

    def _write_broke(self, index: int, reason: str) -> None:
        """A write failed mid-file (disk full, I/O error): stop the sender at once.

        The rest of the file (and of the transfer) would only be thrown away; the
        part file keeps what reached the disk for a resume once there is room.
        """
        if self.outcome.done() or index >= len(self.machine.files):
            return
        entry = self.machine.files[index]
        self.observer.file_finished(index, entry, False, reason, None)
        self._execute(self.machine.abort(f"{entry.name}: {reason}"))

    def _verified(self, index: int, ok: bool, reason: str | None, path: Path | None) -> None:
        saved_as = None
        if ok and path is not None:
            # The name it landed under ("hello (1).txt"), told to the sender in the ack.
            try:
                saved_as = path.relative_to(self.folder.root).as_posix()
            except ValueError:
                saved_as = None
        self._execute(self.machine.file_verified(index, ok, reason, path, saved_as))

    # Disk thread side --------------------------------------------------------------

    def _open(self, index: int, entry: FileEntry, offset: int) -> None:
        self._close_part()
        self.part_failure = None
        self.part_index = index
        try:
            self.part = self.folder.open_part(entry, offset)
        except StorageError as error:
            self._fail_part(index, error.reason)

    def _write(self, index: int, chunks: list[bytes]) -> None:
        if self.part is None or index != self.part_index:
            return
        try:
            self.part.write(chunks)
        except StorageError as error:
            self._close_part()
            self.part_failure = error.reason
            self._post(self._write_broke, index, error.reason)
            return
        self._post(self.observer.file_progress, index, self.part.held)

    def _finish(self, index: int, sha256: str, mtime: float | None) -> None:
        part, self.part = self.part, None
        if part is None:
            self._post(self._verified, index, False, self.part_failure or "not written", None)
            return
        try:
            path = part.finish(sha256, mtime, overwrite=self.overwrite)
        except StorageError as error:
            self._post(self._verified, index, False, error.reason, None)
            return
        self._post(self._verified, index, True, None, path)

    def _discard(self) -> None:
        if self.part is not None:
            self.part.discard()
            self.part = None

    def _close_part(self) -> None:
        if self.part is not None:
            self.part.close()
            self.part = None

    def _fail_part(self, index: int, reason: str) -> None:
        self.part_failure = reason
        self._post(self._write_failed, index, reason)
