"""The sending side of rtcxfer/2 (falling back to rtcxfer/1): :func:`send_outgoing`.

What to send is an :class:`Outgoing`: a count, a total and a way to walk the entries
(files of a folder walk, standard input as a stream, or a text). The folder is walked
twice: :func:`plan_paths` counts it (and checks its names) before connecting, the
transfer walks it again and lists it in batches, so memory does not grow with the
number of files beyond a 16-byte digest per name (clash detection).

Frames from the receiver are handled synchronously by the machine; one task streams
files in order, reading small files ahead in a thread pool, and one lists batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from aiortc import RTCDataChannel

from rtcxfer.errors import PeerBusy, PeerDeclined, RtcxferError, TransferFailed
from rtcxfer.protocol.transfer import Done, Error, FileStart, TransferProtocolError
from rtcxfer.protocol.transfer2 import (
    MAX_BATCH_BYTES,
    MAX_PACK_FILES,
    MAX_TEXT_BYTES,
    Entry,
    Eof2,
    Hello2,
    Pack,
    Packed,
    encode_message2,
    entry_bytes,
    parse_message2,
)
from rtcxfer.text import printable
from rtcxfer.transfer import sender as sender1
from rtcxfer.transfer.channel import ChannelClosed, ChannelLink
from rtcxfer.transfer.machines2 import (
    Actions,
    Declined,
    Fail,
    FallBackToV1,
    Finished,
    ListMore,
    Send,
    SenderMachine2,
    Settled,
    State,
    StreamFile,
)
from rtcxfer.transfer.model import SourceError, SourceFile, TransferObserver, TransferReport
from rtcxfer.transfer.names2 import NameGuard
from rtcxfer.transfer.paths import UnsafeName
from rtcxfer.transfer.sender import BUSY_PREFIX, SourceChanged, frame_size
from rtcxfer.transfer.sources import Skipped, iter_sources, skipped_error

READ_BLOCK = 1024 * 1024
# Files up to this size are read whole, ahead of time, in the thread pool.
SMALL_FILE = 256 * 1024
PREFETCH_FILES = 64
PREFETCH_BATCH_BYTES = 1024 * 1024
READ_WORKERS = 2
# Room for the fields of hello/list around the files array.
ENVELOPE_BYTES = 200


@dataclass(frozen=True)
class Item:
    """One entry to send and where its bytes come from."""

    entry: Entry
    path: Path | None = None
    data: bytes | None = None
    stdin: BinaryIO | None = None


@dataclass(frozen=True)
class Outgoing:
    count: int
    total: int
    walk: Callable[[], Iterator[Item]]
    description: str


def plan_paths(paths: Sequence[Path], *, follow_symlinks: bool = False,
               skip_unreadable: bool = False,
               skipped: list[Skipped] | None = None) -> Outgoing:
    """Count the files under ``paths`` and check their names (raises SourceError).

    The walk is :func:`~rtcxfer.transfer.sources.iter_sources`: paths it cannot send
    fail the plan, all listed, unless ``skip_unreadable`` (then they go to ``skipped``).
    Two paths arriving under one name, or as a file and a folder, fail it too: before
    anything connects.
    """
    guard = NameGuard(fold_case=False)
    count = total = 0
    left_out: list[Skipped] = []
    for source in iter_sources(paths, follow_symlinks=follow_symlinks, skipped=left_out):
        try:
            guard.add(source.entry.name)
        except UnsafeName as error:
            raise SourceError(f"cannot send {printable(source.path)}: {error}") from None
        count += 1
        total += source.entry.size
    if left_out and not skip_unreadable:
        raise skipped_error(left_out)
    if skipped is not None:
        skipped.extend(left_out)

    def walk() -> Iterator[Item]:
        for source in iter_sources(paths, follow_symlinks=follow_symlinks):
            entry = Entry(source.entry.name, source.entry.size, source.entry.mtime)
            yield Item(entry, path=source.path)

    return Outgoing(count, total, walk, f"{count} file{'s' if count != 1 else ''}")


def plan_stream(stdin: BinaryIO, name: str) -> Outgoing:
    def walk() -> Iterator[Item]:
        yield Item(Entry(name, None), stdin=stdin)

    return Outgoing(1, 0, walk, "standard input")


def plan_text(text: bytes) -> Outgoing:
    if len(text) > MAX_TEXT_BYTES:
        raise SourceError(f"the text has {len(text)} bytes; at most {MAX_TEXT_BYTES} fit")
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError("the text is not valid UTF-8") from None

    def walk() -> Iterator[Item]:
        yield Item(Entry("text", len(text), text=True), data=text)

    return Outgoing(1, len(text), walk, "a text")


class _FallBack(Exception):
    def __init__(self, frame: str) -> None:
        super().__init__("the receiver speaks rtcxfer/1")
        self.frame = frame


async def send_outgoing(channel: RTCDataChannel, outgoing: Outgoing, *,
                        max_message_size: int, observer: TransferObserver,
                        idle_timeout: float | None = None) -> TransferReport:
    """Send ``outgoing`` on ``channel``; return when every entry was acked ok.

    Raises :class:`PeerDeclined` (:class:`PeerBusy` for a decline whose reason starts
    with "busy"), or :class:`TransferFailed` (an entry refused, the receiver's error,
    the channel closing early, a protocol violation, a receiver that only speaks
    rtcxfer/1 and cannot take this transfer, a file that changed while it was read).

    ``idle_timeout``: fail when the receiver says nothing for that many seconds while
    we wait for it (its accept, acks, its done) and nothing we send moves either.
    """
    sender = _Sender2(channel, outgoing, max_message_size, observer, idle_timeout)
    try:
        return await sender.run()
    finally:
        sender.link.detach()
        sender.io.shutdown(wait=False, cancel_futures=True)


class _Sender2:
    def __init__(self, channel: RTCDataChannel, outgoing: Outgoing, max_message_size: int,
                 observer: TransferObserver, idle_timeout: float | None = None) -> None:
        self.channel = channel
        self.idle_timeout = idle_timeout
        # When the receiver last said something, or a frame of ours last left.
        self.last_activity = time.monotonic()
        self.outgoing = outgoing
        self.max_message_size = max_message_size
        limit = max_message_size if max_message_size else MAX_BATCH_BYTES
        self.message_limit = min(limit, MAX_BATCH_BYTES)
        self.frame = frame_size(max_message_size)
        self.observer = observer
        self.machine = SenderMachine2(outgoing.count, outgoing.total)
        self.loop = asyncio.get_running_loop()
        self.outcome: asyncio.Future[TransferReport] = self.loop.create_future()
        self.link = ChannelLink(channel, self._on_frame)
        self.link.on_close(lambda: self._execute(self.machine.channel_closed()))
        self.io = ThreadPoolExecutor(READ_WORKERS, thread_name_prefix="rtcxfer-read")
        self.walk: Iterator[Item] | None = None
        self.peeked: Item | None = None
        self.walked = 0
        self.walked_total = 0
        self.items: dict[int, Item] = {}
        # Small files are read ahead in batches (one pool job per batch): index -> the
        # batch's future, whose result maps each of its indexes to (data, sha256) or
        # the error reading it.
        self.prefetched: dict[int, Future[dict[int, _Read]]] = {}
        self.prefetch_end = 0
        self.streams: asyncio.Queue[StreamFile] = asyncio.Queue()
        self.held_starts: dict[int, FileStart] = {}
        self.pack: list[Packed] = []
        self.pack_data: list[bytes] = []
        self.pack_bytes = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.batch0: tuple[Entry, ...] = ()
        self.started = time.monotonic()
        self.sent_bytes = 0
        self.resumed_bytes = 0
        self.acked = 0
        self.failed_names: list[tuple[str, str]] = []
        self.resumed_from: dict[int, int] = {}  # file index -> offset the receiver held

    async def run(self) -> TransferReport:
        try:
            try:
                report = await self._run()
            except _FallBack as fallback:
                report = await self._run_v1(fallback.frame)
        except asyncio.CancelledError:
            self.link.try_send_message(Error("the sender was interrupted"))
            self.observer.transfer_finished(False)
            raise
        except RtcxferError:
            self.observer.transfer_finished(False)
            raise
        finally:
            for task in self.tasks:
                task.cancel()
        self.observer.transfer_finished(True)
        return report

    async def _run(self) -> TransferReport:
        try:
            await self.link.wait_open()
        except ChannelClosed as error:
            raise TransferFailed(str(error)) from None
        try:
            batch = await asyncio.to_thread(self._next_batch, self.outgoing.count)
        except (SourceChanged, SourceError) as error:
            raise TransferFailed(str(error)) from None
        self.batch0 = tuple(item.entry for item in batch)
        compatible = len(batch) == self.outgoing.count and all(
            item.entry.size is not None and not item.entry.text for item in batch)
        if compatible:
            hello = Hello2(version=1, count=len(batch), total=self.outgoing.total,
                           files=self.batch0, versions=(1, 2))
            compatible = len(encode_message2(hello).encode()) <= self.message_limit
        self.tasks.append(asyncio.create_task(self._guard(self._stream_loop())))
        if self.idle_timeout is not None:
            self.tasks.append(asyncio.create_task(self._guard(self._watch_idle())))
        self._execute(self.machine.start(self.batch0, compatible=compatible))
        return await self.outcome

    async def _watch_idle(self) -> None:
        assert self.idle_timeout is not None
        while not self.outcome.done():
            idle = time.monotonic() - self.last_activity
            if idle >= self.idle_timeout:
                if self.machine.state is State.AWAITING_ACCEPT:
                    waiting = "an answer to the offer"
                elif self.link.over_high_water():
                    waiting = "room to send (it stopped reading)"
                else:
                    waiting = "its receipts (acks) and its final 'done'"
                reason = (f"the receiver sent nothing for {self.idle_timeout:g} s while we "
                          f"waited for {waiting}; giving up")
                self.link.try_send_message(Error(reason))
                self.link.close()
                self._fail(TransferFailed(reason))
                return
            await asyncio.sleep(min(1.0, self.idle_timeout - idle))

    # -- listing (thread) ------------------------------------------------------------

    def _next_batch(self, limit: int) -> list[Item]:
        if self.walk is None:
            self.walk = self.outgoing.walk()
        batch: list[Item] = []
        size = ENVELOPE_BYTES
        while len(batch) < limit and self.walked < self.outgoing.count:
            item = self.peeked
            self.peeked = None
            if item is None:
                item = next(self.walk, None)
                if item is None:
                    raise SourceChanged("the folder changed while being sent: "
                                        f"{self.walked} files instead of {self.outgoing.count}")
            length = entry_bytes(item.entry)
            if batch and size + length > self.message_limit:
                self.peeked = item
                break
            if size + length > self.message_limit:
                raise SourceError(f"{item.entry.name!r}: its name is too long to send")
            size += length
            batch.append(item)
            self.items[self.walked] = item
            self.walked += 1
            self.walked_total += item.entry.size or 0
        if self.walked == self.outgoing.count and (
                self.walked_total != self.outgoing.total
                or (self.peeked or next(self.walk, None)) is not None):
            raise SourceChanged("the folder changed while being sent; send it again")
        return batch

    async def _list_more(self, limit: int) -> None:
        try:
            batch = await asyncio.to_thread(self._next_batch, limit)
        except (SourceChanged, SourceError, OSError) as error:
            self._execute(self.machine.abort(str(error)))
            return
        self._execute(self.machine.list_batch([item.entry for item in batch]))

    # -- frames and actions ------------------------------------------------------------

    def _on_frame(self, data: str | bytes) -> None:
        self.last_activity = time.monotonic()
        if self.outcome.done():
            return
        if isinstance(data, bytes):
            self._execute(self.machine.receive_chunk(len(data)))
            return
        try:
            message = parse_message2(data)
        except TransferProtocolError as error:
            self._execute(self.machine.protocol_violation(str(error)))
            return
        awaiting = self.machine.state is State.AWAITING_ACCEPT
        if awaiting and isinstance(message, Error) and not self.machine.compatible:
            self.machine.state = State.FAILED
            self.outcome.set_exception(TransferFailed(
                f"the receiver refused this transfer ({message.message}); a receiver that "
                "speaks only rtcxfer/1 takes at most the files that fit in one message, "
                "and no stream or text"))
            return
        actions = self.machine.receive_message(message)
        if awaiting and self.machine.state is State.RUNNING:
            # The rate leaves out the time the person took to answer.
            self.started = time.monotonic()
            offsets = list(self.machine.offsets.get(i, 0) for i in range(len(self.batch0)))
            self.observer.transfer_started([e.as_file_entry() for e in self.batch0], offsets,
                                           total=self.outgoing.total)
        if any(isinstance(action, FallBackToV1) for action in actions):
            self.outcome.set_exception(_FallBack(data))
            return
        self._execute(actions)

    def _execute(self, actions: Actions, *, packed: int = -1) -> None:
        """Carry out ``actions``. ``packed``: the file just added to the pack, whose
        ``eof`` the pack carries. A ``file`` waits for the stream loop (which either
        sends it or packs the file); ``done`` goes out after the pack."""
        for action in actions:
            match action:
                case Send(FileStart() as start):
                    self.held_starts[start.index] = start
                case Send(Eof2() as eof) if eof.index == packed:
                    pass
                case Send(message):
                    if isinstance(message, Done):
                        self._flush_pack()
                    try:
                        self.link.send(encode_message2(message))
                    except ChannelClosed:
                        self._execute(self.machine.channel_closed())
                        return
                case ListMore(limit):
                    self.tasks.append(asyncio.create_task(self._guard(self._list_more(limit))))
                case StreamFile():
                    self.streams.put_nowait(action)
                case Settled(first, upto, failed, renamed):
                    reasons = dict(failed)
                    saved = dict(renamed)
                    for index in range(first, upto):
                        item = self.items.pop(index)
                        ok = index not in reasons
                        self.acked += ok
                        if not ok and len(self.failed_names) < 5:
                            self.failed_names.append((item.entry.name, reasons[index]))
                        self.observer.file_finished(
                            index, item.entry.as_file_entry(), ok, reasons.get(index),
                            item.path, saved_as=saved.get(index),
                            resumed_from=self.resumed_from.pop(index, None))
                case Declined(reason):
                    if reason.lower().startswith(BUSY_PREFIX):
                        busy = PeerBusy(f"the receiver is busy, try again later ({reason})")
                        busy.reason = reason
                        self._fail(busy)
                    else:
                        # A reason that says "declined" itself is not wrapped in another.
                        self._fail(PeerDeclined(reason if "declin" in reason.lower()
                                                else f"the receiver declined: {reason}"))
                case Finished(failed, failures):
                    if failed:
                        self._fail(TransferFailed(self._describe(failed, failures)))
                    elif not self.outcome.done():
                        self.outcome.set_result(TransferReport(
                            files=self.acked, bytes=self.sent_bytes,
                            resumed_bytes=self.resumed_bytes,
                            seconds=time.monotonic() - self.started, ok=True))
                case Fail(reason, close_channel):
                    if close_channel:
                        self.link.close()
                    self._fail(TransferFailed(reason))
                case _:
                    pass

    async def _guard(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a helper task; a bug in it fails the transfer instead of hanging it."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._execute(self.machine.abort(f"the sender failed: {error!r}"))
            self._fail(TransferFailed(f"the sender failed: {error!r}"))

    def _fail(self, error: Exception) -> None:
        if not self.outcome.done():
            self.outcome.set_exception(error)

    def _describe(self, failed: int, failures: Sequence[tuple[int, str]]) -> str:
        shown = "; ".join(f"{name}: {reason}" for name, reason in self.failed_names)
        more = (f" (and {failed - len(self.failed_names)} more)"
                if failed > len(self.failed_names) else "")
        return f"the receiver refused {failed} file{'s' if failed > 1 else ''}: {shown}{more}"

    # -- streaming -------------------------------------------------------------------

    async def _stream_loop(self) -> None:
        while not self.outcome.done():
            if self.pack and self.streams.empty():
                self._flush_pack()
            action = await self.streams.get()
            index, offset = action.index, action.offset
            item = self.items[index]
            start = self.held_starts.pop(index)
            self.observer.file_started(index, item.entry.as_file_entry(), offset)
            self.resumed_bytes += offset
            if offset:
                self.resumed_from[index] = offset
            self._prefetch(index + 1)
            size = item.entry.size
            if (item.path is not None and size is not None and size <= SMALL_FILE
                    and size - offset <= self.frame):
                try:
                    data, digest = await self._read_small(index, item.path, size)
                except (SourceChanged, OSError) as error:
                    self._execute(self.machine.abort(_describe_read_error(item, error)))
                    return
                if self.outcome.done():
                    return
                self._add_to_pack(index, offset, data[offset:], digest)
                self.sent_bytes += size - offset
                self.observer.file_progress(index, size)
                self._execute(self.machine.file_sent(index, digest, size), packed=index)
                continue
            self._flush_pack()
            try:
                self.link.send(encode_message2(start))
                sent = await self._stream(index, item, offset)
            except ChannelClosed:
                self._execute(self.machine.channel_closed())
                return
            except (SourceChanged, OSError) as error:
                self._execute(self.machine.abort(_describe_read_error(item, error)))
                return
            if sent is None or self.outcome.done():
                return
            digest, size = sent
            self._execute(self.machine.file_sent(index, digest, size))

    def _add_to_pack(self, index: int, offset: int, data: bytes, digest: str) -> None:
        if self.pack and (self.pack_bytes + len(data) > self.frame
                          or len(self.pack) >= MAX_PACK_FILES):
            self._flush_pack()
        self.pack.append(Packed(index, offset, len(data), digest))
        self.pack_data.append(data)
        self.pack_bytes += len(data)

    def _flush_pack(self) -> None:
        """Send the files gathered for one ``pack`` (header, then one binary frame)."""
        if not self.pack or self.outcome.done():
            return
        pack, data = Pack(tuple(self.pack)), b"".join(self.pack_data)
        self.pack, self.pack_data, self.pack_bytes = [], [], 0
        try:
            self.link.send(encode_message2(pack))
            if data:
                self.link.send(data)
        except ChannelClosed:
            self._execute(self.machine.channel_closed())

    def _prefetch(self, start: int) -> None:
        """Read the small files among the next PREFETCH_FILES ahead, a batch per job
        (at most PREFETCH_BATCH_BYTES each), unless half of them are read already."""
        index = max(start, self.prefetch_end)
        if index >= start + PREFETCH_FILES // 2:
            return
        end = start + PREFETCH_FILES
        batch: list[tuple[int, Path, int]] = []
        batch_bytes = 0
        while index < end:
            item = self.items.get(index)
            if item is None:
                break
            size = item.entry.size
            if (item.path is not None and size is not None and size <= SMALL_FILE
                    and index not in self.prefetched):
                batch.append((index, item.path, size))
                batch_bytes += size
                if batch_bytes >= PREFETCH_BATCH_BYTES:
                    self._submit_reads(batch)
                    batch, batch_bytes = [], 0
            index += 1
        self.prefetch_end = index
        if batch:
            self._submit_reads(batch)

    def _submit_reads(self, batch: list[tuple[int, Path, int]]) -> None:
        future = self.io.submit(_read_batch, batch)
        for index, _path, _size in batch:
            self.prefetched[index] = future

    async def _read_small(self, index: int, path: Path, size: int) -> tuple[bytes, str]:
        """The bytes and sha256 of a small file: read ahead, or now."""
        future = self.prefetched.pop(index, None)
        if future is None:
            future = self.io.submit(_read_batch, [(index, path, size)])
        results = future.result() if future.done() else await asyncio.wrap_future(future)
        result = results[index]
        if isinstance(result, BaseException):
            raise result
        return result

    async def _send_frames(self, data: bytes | memoryview) -> bool:
        view = memoryview(data)
        for start in range(0, len(view), self.frame):
            if self.link.over_high_water():
                await self.link.drain()
            if self.outcome.done():
                return False
            self.link.send(bytes(view[start:start + self.frame]))
            self.last_activity = time.monotonic()
        return True

    async def _stream(self, index: int, item: Item, offset: int) -> tuple[str, int] | None:
        try:
            if item.data is not None:
                if not await self._send_frames(item.data):
                    return None
                self.sent_bytes += len(item.data)
                return hashlib.sha256(item.data).hexdigest(), len(item.data)
            if item.stdin is not None:
                return await self._stream_stdin(index, item.stdin)
            assert item.path is not None and item.entry.size is not None
            if item.entry.size <= SMALL_FILE:
                data, digest = await self._read_small(index, item.path, item.entry.size)
                if not await self._send_frames(memoryview(data)[offset:]):
                    return None
                self.sent_bytes += len(data) - offset
                self.observer.file_progress(index, len(data))
                return digest, len(data)
            return await self._stream_large(index, item.path, offset, item.entry.size)
        except ChannelClosed:
            return None

    async def _stream_large(self, index: int, path: Path, offset: int,
                            size: int) -> tuple[str, int] | None:
        reader = await self.loop.run_in_executor(self.io, sender1._FileReader, path, offset,
                                                 size)
        position = offset
        try:
            while position < size:
                block = await self.loop.run_in_executor(self.io, reader.read_block)
                if not await self._send_frames(block):
                    return None
                position += len(block)
                self.sent_bytes += len(block)
                self.observer.file_progress(index, position)
            mtime = self.items[index].entry.mtime if index in self.items else None
            changed = await self.loop.run_in_executor(self.io, reader.change, size, mtime)
            if changed is not None:
                # Never "verified" for bytes that are not the file announced.
                raise SourceChanged(f"{path}: {changed}")
            return reader.digest.hexdigest(), size
        finally:
            reader.file.close()

    async def _stream_stdin(self, index: int, stdin: BinaryIO) -> tuple[str, int] | None:
        digest = hashlib.sha256()
        size = 0
        while True:
            block = await _read_in_daemon(stdin)
            if not block:
                return digest.hexdigest(), size
            digest.update(block)
            if not await self._send_frames(block):
                return None
            size += len(block)
            self.sent_bytes += len(block)
            self.observer.file_progress(index, size)

    # -- rtcxfer/1 ---------------------------------------------------------------------

    async def _run_v1(self, accept_frame: str) -> TransferReport:
        """The receiver answered the compatible hello as rtcxfer/1: run rtcxfer/1."""
        self.link.detach()
        for task in self.tasks:
            task.cancel()
        sources = [SourceFile(item.path, item.entry.as_file_entry())
                   for _, item in sorted(self.items.items()) if item.path is not None]
        v1 = sender1._Sender(self.channel, sources, self.max_message_size, self.observer,
                             self.idle_timeout)
        try:
            v1.machine.start()  # its hello is the one we sent
            v1.inbox.put_nowait(accept_frame)
            actions: Actions | Any = ()
            while True:
                report = await v1._execute(actions)
                if report is not None:
                    return report
                actions = v1._receive(await v1._next_message())
        finally:
            v1.link.detach()
            v1.disk.shutdown(wait=False)


def _describe_read_error(item: Item, error: Exception) -> str:
    if isinstance(error, OSError):
        return f"cannot read {item.path or 'standard input'}: {error.strerror or error}"
    return str(error)


def _read_whole(path: Path, size: int) -> tuple[bytes, str]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        parts = [os.read(fd, size + 1)]
        got = len(parts[0])
        while 0 < got <= size:  # a short read (rare on a regular file): read on
            more = os.read(fd, size + 1 - got)
            if not more:
                break
            parts.append(more)
            got += len(more)
    finally:
        os.close(fd)
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    if len(data) != size:
        raise SourceChanged(f"{path} changed size while being sent")
    return data, hashlib.sha256(data).hexdigest()


_Read = tuple[bytes, str] | BaseException


def _read_batch(batch: list[tuple[int, Path, int]]) -> dict[int, _Read]:
    """Read each file of ``batch``; an error belongs to its file, not to the batch."""
    results: dict[int, _Read] = {}
    for index, path, size in batch:
        try:
            results[index] = _read_whole(path, size)
        except (OSError, SourceChanged) as error:
            results[index] = error
    return results


async def _read_in_daemon(stdin: BinaryIO) -> bytes:
    """One block of ``stdin``, read in a daemon thread: a read blocked on a terminal or
    an idle pipe must not keep the process alive after Ctrl-C (pool threads would)."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[bytes] = loop.create_future()

    def read() -> None:
        try:
            block = _read_some(stdin)
        except BaseException as error:  # delivered to the awaiting task
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, result, None, error)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, result, block, None)

    threading.Thread(target=read, name="rtcxfer-stdin", daemon=True).start()
    return await result


def _settle(future: asyncio.Future[bytes], value: bytes | None,
            error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert value is not None
        future.set_result(value)


def _read_some(stdin: BinaryIO) -> bytes:
    # The descriptor, not the buffered object: a daemon thread still blocked in a
    # BufferedReader at exit makes the interpreter abort (it holds the buffer's lock).
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    if fd >= 0:
        return os.read(fd, READ_BLOCK)
    read = getattr(stdin, "read1", None)
    return bytes(read(READ_BLOCK) if read is not None else stdin.read(READ_BLOCK))


def describe_entries(entries: Sequence[Entry]) -> str:
    return json.dumps([entry.name for entry in entries])
