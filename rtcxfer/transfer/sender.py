"""The sending side of rtcxfer/1 over a data channel: :func:`send_files`."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from aiortc import RTCDataChannel

from rtcxfer.errors import PeerDeclined, TransferFailed
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


async def send_files(channel: RTCDataChannel, sources: Sequence[SourceFile], *,
                     max_message_size: int, observer: TransferObserver) -> TransferReport:
    """Run the sender side of rtcxfer/1 on ``channel`` (open, or about to open).

    Returns only when the receiver acked every file ok and answered ``done``. Raises
    :class:`PeerDeclined` if the receiver declines, :class:`TransferFailed` when a file
    was refused (naming it and why), the receiver sent ``error``, the channel closed
    early, or the receiver broke the protocol. Disk reads and hashing run in threads;
    at most ``HIGH_WATER`` bytes wait in the channel and one read-ahead block in memory.
    """
    sender = _Sender(channel, sources, max_message_size, observer)
    try:
        return await sender.run()
    finally:
        sender.link.detach()
        # Queued jobs (closing the last source file) still run; nothing waits for them.
        sender.disk.shutdown(wait=False)


class _Sender:
    def __init__(self, channel: RTCDataChannel, sources: Sequence[SourceFile],
                 max_message_size: int, observer: TransferObserver) -> None:
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
            actions = self._receive(await self.inbox.get())

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
                case FileOutcome(index, ok, reason):
                    source = self.sources[index]
                    if ok:
                        self.acked += 1
                    self.observer.file_finished(index, source.entry, ok, reason, source.path)
                case Declined(reason):
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
                        await self.link.drain()
                    if self.link.closed.is_set() or not self.inbox.empty():
                        return None
                    self.link.send(block[start:start + self.frame])
                position += len(block)
                self.sent_bytes += len(block)
                self.observer.file_progress(index, position)
            return reader.digest.hexdigest()
        except ChannelClosed:
            return None
        finally:
            # Queued behind any read still running in the disk thread.
            self.disk.submit(reader.file.close)

    def _describe_failures(self, failures: tuple[tuple[int, str], ...]) -> str:
        shown = "; ".join(f"{self.sources[index].entry.name}: {reason}"
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
