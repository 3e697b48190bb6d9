"""The sending side of rtcxfer/1 over a data channel: :func:`send_files`."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from aiortc import RTCDataChannel

from rtcxfer.errors import PeerBusy, PeerDeclined, TransferFailed
from rtcxfer.protocol.transfer import (
    Error,
    Hello,
    TransferProtocolError,
    encode_message,
    parse_message,
)
from rtcxfer.transfer.channel import ChannelClosed, ChannelLink
from rtcxfer.transfer.machines import (
    Actions,
    Declined,
    Fail,
    FileOutcome,
    Finished,
    Send,
    SenderMachine,
    SenderState,
    StreamFile,
)
from rtcxfer.transfer.model import SourceFile, TransferObserver, TransferReport

READ_BLOCK = 1024 * 1024
SMALL_FRAME = 16 * 1024
LARGE_FRAME = 64 * 1024

_CLOSED = object()
# A decline whose reason starts with this word means "try again later" (docs/protocol.md).
BUSY_PREFIX = "busy"
# eof for a file that changed while it was read: it can match no content, so the
# receiver refuses the file (and deletes its part) instead of keeping a mix.
CHANGED_SHA256 = "0" * 64


def frame_size(max_message_size: int) -> int:
    """Binary frame size for a peer whose SDP says ``a=max-message-size`` (0: no limit)."""
    if max_message_size == 0 or max_message_size >= LARGE_FRAME:
        return LARGE_FRAME
    return min(SMALL_FRAME, max_message_size)


class SourceChanged(Exception):
    """A source file no longer has the size announced in ``hello``."""


class _FileReader:
    """Reads one source file in blocks and hashes it, from a worker thread."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        self.path = path
        self.remaining = size - offset
        self.digest = hashlib.sha256()
        self.file: BinaryIO = path.open("rb")
        try:
            prefix = offset
            while prefix:
                block = self.file.read(min(READ_BLOCK, prefix))
                if not block:
                    raise SourceChanged(f"{path} shrank while being sent")
                self.digest.update(block)
                prefix -= len(block)
        except BaseException:
            self.file.close()
            raise

    def read_block(self) -> bytes:
        block = self.file.read(min(READ_BLOCK, self.remaining))
        if not block and self.remaining:
            raise SourceChanged(f"{self.path} shrank while being sent")
        self.digest.update(block)
        self.remaining -= len(block)
        return block

    def change(self, size: int, mtime: float | None) -> str | None:
        """After the last read: why the file is not what ``hello`` announced, or None."""
        if self.file.read(1):
            return "it grew while being sent"
        status = os.fstat(self.file.fileno())
        if status.st_size != size:
            return "its size changed while being sent"
        if mtime is not None and status.st_mtime != mtime:
            return "it was modified while being sent"
        return None


async def send_files(channel: RTCDataChannel, sources: Sequence[SourceFile], *,
                     max_message_size: int, observer: TransferObserver,
                     idle_timeout: float | None = None) -> TransferReport:
    """Run the sender side of rtcxfer/1 on ``channel`` (open, or about to open).

    Returns only when the receiver acked every file ok and answered ``done``. Raises
    :class:`PeerDeclined` if the receiver declines, :class:`TransferFailed` when a file
    was refused (naming it and why), the receiver sent ``error``, the channel closed
    early, or the receiver broke the protocol. Disk reads and hashing run in threads;
    at most ``HIGH_WATER`` bytes wait in the channel and one read-ahead block in memory.

    ``idle_timeout``: fail with :class:`TransferFailed` when the receiver lets that many
    seconds pass without a word while we wait for it (its accept, an ack, its done, or
    room in the channel). A decline whose reason starts with "busy" raises
    :class:`PeerBusy`. A file that changed while it was read fails (only that file).
    """
    sender = _Sender(channel, sources, max_message_size, observer, idle_timeout)
    try:
        return await sender.run()
    finally:
        sender.link.detach()
        # Queued jobs (closing the last source file) still run; nothing waits for them.
        sender.disk.shutdown(wait=False)


class _Sender:
    def __init__(self, channel: RTCDataChannel, sources: Sequence[SourceFile],
                 max_message_size: int, observer: TransferObserver,
                 idle_timeout: float | None = None) -> None:
        self.idle_timeout = idle_timeout
        # Files we failed ourselves (changed while read): our reason beats the receiver's.
        self.local_failures: dict[int, str] = {}
        self.sources = tuple(sources)
        self.max_message_size = max_message_size
        self.frame = frame_size(max_message_size)
        self.observer = observer
        self.machine = SenderMachine([source.entry for source in self.sources])
        self.inbox: asyncio.Queue[object] = asyncio.Queue()
        # One thread per transfer, so reads, hashing and closing a file run in order.
        self.disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtcxfer-send")
        self.link = ChannelLink(channel, self.inbox.put_nowait)
        self.link.on_close(lambda: self.inbox.put_nowait(_CLOSED))
        self.started = time.monotonic()
        self.sent_bytes = 0
        self.resumed_bytes = 0
        self.acked = 0

    async def run(self) -> TransferReport:
        try:
            report = await self._run()
        except asyncio.CancelledError:
            self.link.try_send_message(Error("the sender was interrupted"))
            self.observer.transfer_finished(False)
            raise
        except (PeerDeclined, TransferFailed):
            self.observer.transfer_finished(False)
            raise
        self.observer.transfer_finished(True)
        return report

    async def _run(self) -> TransferReport:
        try:
            await self.link.wait_open()
        except ChannelClosed as error:
            raise TransferFailed(str(error)) from None
        hello_actions = self.machine.start()
        self._check_hello_fits(hello_actions)
        actions: Actions = hello_actions
        while True:
            report = await self._execute(actions)
            if report is not None:
                return report
            actions = self._receive(await self._next_message())

    async def _next_message(self) -> object:
        if self.idle_timeout is None:
            return await self.inbox.get()
        try:
            return await asyncio.wait_for(self.inbox.get(), self.idle_timeout)
        except TimeoutError:
            raise self._idle_failure() from None

    def _idle_failure(self) -> TransferFailed:
        state = self.machine.state
        if state is SenderState.AWAITING_ACCEPT:
            waiting = "an answer to the offer"
        elif state is SenderState.AWAITING_DONE:
            waiting = "its final 'done'"
        elif state is SenderState.AWAITING_ACK:
            waiting = f"the receipt (ack) of {self.sources[self.machine.current].entry.name!r}"
        else:
            waiting = "room to send (it stopped reading)"
        reason = (f"the receiver sent nothing for {self.idle_timeout:g} s while we waited "
                  f"for {waiting}; giving up")
        self.link.try_send_message(Error(reason))
        self.link.close()
        return TransferFailed(reason)

    def _check_hello_fits(self, actions: Actions) -> None:
        for action in actions:
            if isinstance(action, Send) and isinstance(action.message, Hello):
                length = len(encode_message(action.message).encode())
                if self.max_message_size and length > self.max_message_size:
                    reason = (
                        f"the list of {len(self.sources)} files takes {length} bytes, more "
                        f"than the receiver accepts in one message ({self.max_message_size}); "
                        "send fewer files at once"
                    )
                    # Tell the receiver, which would otherwise wait for a hello.
                    self.link.try_send_message(Error(reason))
                    raise TransferFailed(reason)

    def _receive(self, data: object) -> Actions:
        if data is _CLOSED:
            return self.machine.channel_closed()
        if isinstance(data, bytes):
            return self.machine.receive_chunk(len(data))
        assert isinstance(data, str)
        try:
            message = parse_message(data)
        except TransferProtocolError as error:
            return self.machine.protocol_violation(str(error))
        was_awaiting_accept = self.machine.state is SenderState.AWAITING_ACCEPT
        actions = self.machine.receive_message(message)
        if was_awaiting_accept and self.machine.state not in (SenderState.DECLINED,
                                                              SenderState.FAILED):
            # Rates count from the answer on: the person's time to decide is not transfer time.
            self.started = time.monotonic()
            self.observer.transfer_started(self.machine.files, self.machine.offsets)
        return actions

    async def _execute(self, actions: Actions) -> TransferReport | None:
        """Carry out ``actions``; the report once the transfer is over, else None."""
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            match action:
                case Send(message):
                    try:
                        self.link.send_message(message)
                    except ChannelClosed:
                        pending = list(self.machine.channel_closed())
                case StreamFile(index, offset):
                    pending = list(await self._stream_step(index, offset)) + pending
                case FileOutcome(index, ok, reason, _path, saved_as, resumed_from):
                    source = self.sources[index]
                    reason = self.local_failures.get(index, reason)
                    if ok:
                        self.acked += 1
                    self.observer.file_finished(index, source.entry, ok, reason, source.path,
                                                saved_as=saved_as, resumed_from=resumed_from)
                case Declined(reason):
                    if reason.lower().startswith(BUSY_PREFIX):
                        busy = PeerBusy(f"the receiver is busy, try again later ({reason})")
                        busy.reason = reason
                        raise busy
                    # A reason that says "declined" itself is not wrapped in another one.
                    raise PeerDeclined(reason if "declin" in reason.lower()
                                       else f"the receiver declined: {reason}")
                case Finished(failures):
                    if failures:
                        raise TransferFailed(self._describe_failures(failures))
                    return self._report()
                case Fail(reason, close_channel):
                    if close_channel:
                        self.link.close()
                    raise TransferFailed(reason)
        return None

    async def _stream_step(self, index: int, offset: int) -> Actions:
        """Stream file ``index``; the machine's answer once it is sent (or failed)."""
        source = self.sources[index]
        self.observer.file_started(index, source.entry, offset)
        self.resumed_bytes += offset
        try:
            digest = await self._stream(source, index, offset)
        except SourceChanged as error:
            return self.machine.abort(str(error))
        except OSError as error:
            return self.machine.abort(f"cannot read {source.path}: {error.strerror or error}")
        if digest is None:
            # A message or the channel's close interrupted us: the run loop handles it.
            return ()
        if index in self.local_failures:
            return self.machine.file_sent(index, CHANGED_SHA256)
        return self.machine.file_sent(index, digest)

    async def _stream(self, source: SourceFile, index: int, offset: int) -> str | None:
        size = source.entry.size
        loop = asyncio.get_running_loop()
        reader = await loop.run_in_executor(self.disk, _FileReader, source.path, offset, size)
        position = offset
        next_block: asyncio.Future[bytes] | None = None
        try:
            if position < size:
                next_block = loop.run_in_executor(self.disk, reader.read_block)
            while next_block is not None:
                block = await next_block
                next_block = None
                if position + len(block) < size:
                    # Read ahead while this block goes out.
                    next_block = loop.run_in_executor(self.disk, reader.read_block)
                for start in range(0, len(block), self.frame):
                    if self.link.over_high_water():
                        await self._drain()
                    if self.link.closed.is_set() or not self.inbox.empty():
                        return None
                    self.link.send(block[start:start + self.frame])
                position += len(block)
                self.sent_bytes += len(block)
                self.observer.file_progress(index, position)
            change = await loop.run_in_executor(self.disk, reader.change, size,
                                                source.entry.mtime)
            if change is not None:
                self.local_failures[index] = f"{change} (not sent; send it again)"
            return reader.digest.hexdigest()
        except ChannelClosed:
            return None
        finally:
            # Queued behind any read still running in the disk thread.
            self.disk.submit(reader.file.close)

    async def _drain(self) -> None:
        if self.idle_timeout is None:
            await self.link.drain()
            return
        try:
            await asyncio.wait_for(self.link.drain(), self.idle_timeout)
        except TimeoutError:
            raise self._idle_failure() from None

    def _describe_failures(self, failures: tuple[tuple[int, str], ...]) -> str:
        shown = "; ".join(
            f"{self.sources[index].entry.name}: {self.local_failures.get(index, reason)}"
            for index, reason in failures[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        count = len(failures)
        return f"the receiver refused {count} file{'s' if count > 1 else ''}: {shown}{more}"

    def _report(self) -> TransferReport:
        return TransferReport(
            files=self.acked,
            bytes=self.sent_bytes,
            resumed_bytes=self.resumed_bytes,
            seconds=time.monotonic() - self.started,
            ok=True,
        )
