"""The receiving side of rtcxfer/2, and the choice between rtcxfer/1 and /2.

:func:`receive_any` is what the peer layer starts from the ``datachannel`` event: it
waits for the sender's first frame and hands the channel to the rtcxfer/1 receiver
(:mod:`rtcxfer.transfer.receiver`) or to the rtcxfer/2 receiver below, so a v1 sender
sees exactly the v1 receiver it always did.

The v2 receiver works like the v1 one (frames judged synchronously by the machine,
bytes batched to one disk thread in order) and adds grouped durability: a file whose
sha256 matched goes to a *committer* thread, which takes every file ready within
``GROUP_SECONDS`` (at most ``GROUP_FILES``), fsyncs them in a worker pool, moves them
into place, fsyncs each of their folders once and reports the group to the machine,
which acks it with one ``acks`` message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import hashlib
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from aiortc import RTCDataChannel

from rtcxfer.errors import TransferFailed
from rtcxfer.protocol.transfer import FileEntry, FileStart, TransferProtocolError
from rtcxfer.protocol.transfer2 import (
    Acks,
    Entry,
    Eof2,
    Hello2,
    Pack,
    encode_message2,
    parse_message2,
)
from rtcxfer.transfer import receiver as receiver1
from rtcxfer.transfer.channel import ChannelClosed, ChannelLink
from rtcxfer.transfer.folders2 import FolderCache
from rtcxfer.transfer.machines2 import (
    Actions,
    AskDecision,
    Declined,
    DiscardFile,
    Fail,
    Finished,
    LookupOffsets,
    OpenFile,
    ReceiverMachine2,
    Send,
    VerifyFile,
    WriteChunk,
)
from rtcxfer.transfer.model import IncomingOffer, TransferObserver, TransferReport
from rtcxfer.transfer.names2 import folds_case
from rtcxfer.transfer.paths import split_name
from rtcxfer.transfer.storage import DownloadFolder, PartFile, StorageError

logger = logging.getLogger(__name__)

BATCH_BYTES = 1024 * 1024
# Files up to this size, received from their first byte, get no resume sidecar.
SMALL_PART = 1024 * 1024
PROGRESS_FROM = 256 * 1024
GROUP_FILES = 128
GROUP_SECONDS = 0.02
FSYNC_WORKERS = 4
MAX_READY = 256
READ_BLOCK = 1024 * 1024
# A group of at least this many files is made durable with one syncfs(2) per
# filesystem (before the files are moved into place, and once after) instead of an
# fsync per file and per folder: on ext4 here 128 small files took 1.8 ms that way
# against 15 ms of fsyncs in a pool of 4.
SYNCFS_FROM = 8

Decide = Callable[[IncomingOffer], Awaitable[str | None]]
OnText = Callable[[str], None]

STDOUT_NEEDS_V2 = "listen --stdout takes rtcxfer/2 senders only"


@dataclass(frozen=True)
class IncomingOffer2(IncomingOffer):
    """An rtcxfer/2 offer: ``files`` is the first batch; ``count`` the whole number."""

    count: int = 0
    kind: str = "files"  # "files", "stream" or "text"


def offer_count(offer: IncomingOffer) -> int:
    """How many entries ``offer`` announces (v1 offers list them all)."""
    return offer.count if isinstance(offer, IncomingOffer2) else len(offer.files)


def receive_any(channel: RTCDataChannel, *, download_dir: Path, decide: Decide,
                overwrite: bool, observer: TransferObserver,
                stdout: BinaryIO | None = None, on_text: OnText | None = None,
                allow_hidden: bool = True) -> Coroutine[Any, Any, TransferReport]:
    """Receive on ``channel`` with rtcxfer/1 or /2, whichever the sender's hello picks.

    Call it synchronously from the ``datachannel`` event (like ``receive_files``).
    ``stdout``: write the one file or stream of the transfer there instead of to
    ``download_dir`` (``listen --stdout``). ``on_text``: shows a received text.
    ``allow_hidden`` False: an rtcxfer/2 list naming a hidden path (a component starting
    with ".") is refused, in whichever batch it comes (rtcxfer/1 offers come whole to
    ``decide``).
    """
    return _Dispatcher(channel, download_dir, decide, overwrite, observer, stdout,
                       on_text, allow_hidden).run()


class _Dispatcher:
    def __init__(self, channel: RTCDataChannel, download_dir: Path, decide: Decide,
                 overwrite: bool, observer: TransferObserver, stdout: BinaryIO | None,
                 on_text: OnText | None, allow_hidden: bool = True) -> None:
        self.channel = channel
        self.args = (download_dir, decide, overwrite, observer)
        self.allow_hidden = allow_hidden
        self.stdout = stdout
        self.on_text = on_text
        self.chosen: asyncio.Future[Coroutine[Any, Any, TransferReport]] = (
            asyncio.get_running_loop().create_future())
        channel.on("message", self._first)
        channel.on("close", self._closed)

    def _detach(self) -> None:
        for event, listener in (("message", self._first), ("close", self._closed)):
            with contextlib.suppress(KeyError):
                self.channel.remove_listener(event, listener)

    def _first(self, data: str | bytes) -> None:
        if self.chosen.done():
            return
        self._detach()
        download_dir, decide, overwrite, observer = self.args
        v2 = False
        if isinstance(data, str):
            with contextlib.suppress(TransferProtocolError):
                message = parse_message2(data)
                v2 = isinstance(message, Hello2) and message.offers_v2
        if v2:
            receiver: Any = _Receiver2(self.channel, download_dir, decide, overwrite,
                                       observer, self.stdout, self.on_text,
                                       allow_hidden=self.allow_hidden)
            receiver.on_message(data)
        else:
            if self.stdout is not None:
                async def refuse(offer: IncomingOffer) -> str:
                    return STDOUT_NEEDS_V2
                decide = refuse
            receiver = receiver1._Receiver(self.channel, download_dir, decide, overwrite,
                                           observer)
            receiver._on_message(data)
        self.chosen.set_result(receiver.run())

    def _closed(self) -> None:
        if not self.chosen.done():
            self._detach()
            self.chosen.set_exception(
                TransferFailed("the connection closed before the sender said hello"))

    async def run(self) -> TransferReport:
        try:
            work = await self.chosen
        finally:
            self._detach()
        return await work


@dataclass
class _Ready:
    """A verified part file waiting for the committer."""

    index: int
    entry: Entry
    part: PartFile


class _Handoff:
    """Verified files from the disk thread to the committer, in bulk.

    At most ``limit`` wait here: each holds two open descriptors (its part file and
    its folder), so the limit is also the receiver's bound on descriptors in use.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: collections.deque[_Ready] = collections.deque()
        self.closed = False
        self.changed = threading.Condition()

    def put_many(self, items: list[_Ready]) -> None:
        """Queue ``items`` in order, waiting for room as the committer takes them."""
        position = 0
        with self.changed:
            while position < len(items):
                while len(self.items) >= self.limit:
                    self.changed.wait()
                room = self.limit - len(self.items)
                self.items.extend(items[position:position + room])
                position += room
                self.changed.notify_all()

    def close(self) -> None:
        """No more items: :meth:`take` returns what is left, then None."""
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def take(self, most: int, linger: float) -> list[_Ready] | None:
        """Up to ``most`` items: waits for a first one, then up to ``linger`` seconds for
        the group to fill. None once closed and empty."""
        with self.changed:
            while not self.items:
                if self.closed:
                    return None
                self.changed.wait()
            deadline = time.monotonic() + linger
            while len(self.items) < most and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.changed.wait(left)
            group = [self.items.popleft() for _ in range(min(most, len(self.items)))]
            self.changed.notify_all()
            return group


class _Receiver2:
    def __init__(self, channel: RTCDataChannel, download_dir: Path, decide: Decide,
                 overwrite: bool, observer: TransferObserver, stdout: BinaryIO | None,
                 on_text: OnText | None, *, allow_hidden: bool = True) -> None:
        self.loop = asyncio.get_running_loop()
        self.root = download_dir
        self.folder = DownloadFolder(download_dir)
        self.decide = decide
        self.overwrite = overwrite
        self.observer = observer
        self.stdout = stdout
        self.on_text = on_text
        self.machine = ReceiverMachine2(fold_case=folds_case(download_dir),
                                        allow_hidden=allow_hidden,
                                        stdout=stdout is not None)
        self.outcome: asyncio.Future[TransferReport] = self.loop.create_future()
        self.link = ChannelLink(channel, self.on_message)
        self.link.on_close(lambda: self._execute(self.machine.channel_closed()))
        self.disk = receiver1._DiskThread()
        self.ready = _Handoff(MAX_READY)
        self.verified: list[_Ready] = []  # disk thread: files verified by the current job
        self.committer = threading.Thread(target=self._commit_loop, daemon=True,
                                          name="rtcxfer-commit")
        self.committer.start()
        self.fsyncs = ThreadPoolExecutor(FSYNC_WORKERS, thread_name_prefix="rtcxfer-fsync")
        self.decision: asyncio.Task[None] | None = None
        self.pending_pack: Pack | None = None
        self.ops: list[Callable[[], None]] | None = None
        self.batch: list[bytes] = []
        self.batch_bytes = 0
        self.batch_index = -1
        # Disk thread only.
        self.existing: set[int] = set()
        # Disk thread: the components of small listed entries, split once at lookup and
        # used at open (at most LIST_AHEAD entries are listed and not yet opened).
        self.components: dict[int, tuple[str, ...]] = {}
        self.folders = FolderCache(download_dir)
        self.part: PartFile | None = None
        self.part_index = -1
        self.mode = ""
        self.digest: Any = None
        self.text_bytes = bytearray()
        self.existing_path: Path | None = None
        # Event loop only.
        self.started = time.monotonic()
        self.resumed_from: dict[int, int] = {}  # file index -> bytes held at its start
        self.received_bytes = 0
        self.resumed_bytes = 0
        self.landed = 0
        self.names: dict[int, Entry] = {}

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
            self.disk.submit(self._close_part)
            self.disk.submit(self.folders.close)
            self.disk.stop()
            await asyncio.to_thread(self.disk.thread.join)
            self.ready.close()
            await asyncio.to_thread(self.committer.join)
            self.fsyncs.shutdown(wait=False)
            self.folder.release()
        self.observer.transfer_finished(report.ok)
        return report

    # Event loop side ---------------------------------------------------------------

    def on_message(self, data: str | bytes) -> None:
        if self.outcome.done():
            return
        # Disk work of one frame (a pack holds many files) goes to the disk thread as
        # one job: the bounded queue then counts frames, not files.
        self.ops = []
        try:
            self._on_frame(data)
        finally:
            ops, self.ops = self.ops, None
            if ops:
                self.disk.submit(lambda: self._run_all(ops))

    def _disk_op(self, job: Callable[[], None]) -> None:
        if self.ops is not None:
            self.ops.append(job)
        else:
            self.disk.submit(lambda: self._run_all([job]))

    def _on_frame(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            pack, self.pending_pack = self.pending_pack, None
            if pack is not None:
                self._unpack(pack, data)
            else:
                self._chunk(data)
            return
        try:
            message = parse_message2(data)
        except TransferProtocolError as error:
            self._execute(self.machine.protocol_violation(str(error)))
            return
        if self.pending_pack is not None:
            self._execute(self.machine.protocol_violation(
                "a control message where the binary frame of a 'pack' was due"))
        elif isinstance(message, Pack):
            if message.length:
                self.pending_pack = message
            else:
                self._unpack(message, b"")
        else:
            self._execute(self.machine.receive_message(message))

    def _chunk(self, data: bytes) -> None:
        actions = self.machine.receive_chunk(len(data))
        if actions and isinstance(actions[0], WriteChunk):
            self.batch.append(data)
            self.batch_bytes += len(data)
            self.batch_index = actions[0].index
            self.received_bytes += len(data)
            if self.batch_bytes >= BATCH_BYTES:
                self._flush_batch()
            return
        self._execute(actions)

    def _unpack(self, pack: Pack, data: bytes) -> None:
        """A ``pack``: exactly its files' file / bytes / eof, one after the other."""
        if len(data) != pack.length:
            self._execute(self.machine.protocol_violation(
                f"a 'pack' of {pack.length} bytes came with a frame of {len(data)}"))
            return
        position = 0
        for item in pack.files:
            self._execute(self.machine.receive_message(FileStart(item.index, item.offset)))
            if item.length and not self.outcome.done():
                self._chunk(data[position:position + item.length])
                position += item.length
            if self.outcome.done():
                return
            self._execute(self.machine.receive_message(
                Eof2(item.index, item.sha256, item.offset + item.length)))

    def _flush_batch(self) -> None:
        if not self.batch:
            return
        chunks, index = self.batch, self.batch_index
        self.batch, self.batch_bytes = [], 0
        self._disk_op(lambda: self._write(index, chunks))

    def _execute(self, actions: Actions) -> None:
        for action in actions:
            match action:
                case Send(message):
                    if isinstance(message, Acks):
                        # Failures the machine settled itself (bytes beyond the size,
                        # a write that failed) are reported here.
                        for index, reason in message.failed:
                            entry = self.names.pop(index, None)
                            if entry is not None:
                                self.observer.file_finished(index, entry.as_file_entry(),
                                                            False, reason, None)
                    try:
                        self.link.send(encode_message2(message))
                    except ChannelClosed:
                        self._execute(self.machine.channel_closed())
                        return
                case AskDecision(hello):
                    self.decision = asyncio.ensure_future(self._decide(hello))
                case LookupOffsets(first, entries):
                    self._disk_op(lambda first=first, entries=entries: self._post(
                        self._found, first, self._lookup(first, entries)))
                case OpenFile(index, entry, offset):
                    self._flush_batch()
                    self.names[index] = entry
                    self.resumed_bytes += offset
                    if offset:
                        self.resumed_from[index] = offset
                    self.observer.file_started(index, entry.as_file_entry(), offset)
                    self._disk_op(lambda i=index, e=entry, o=offset: self._open(i, e, o))
                case DiscardFile(index):
                    self._flush_batch()
                    self._disk_op(lambda i=index: self._discard(i))
                case VerifyFile(index, entry, sha256):
                    self._flush_batch()
                    self._disk_op(lambda i=index, e=entry, s=sha256: self._verify(i, e, s))
                case Declined():
                    self._conclude(ok=False)
                case Finished(failed):
                    self._conclude(ok=failed == 0)
                case Fail(reason, close_channel):
                    if close_channel:
                        self.link.close()
                    if not self.outcome.done():
                        self.outcome.set_exception(TransferFailed(reason))
                case _:
                    pass
        # Settled files are reported by _settled.

    def _conclude(self, *, ok: bool) -> None:
        if not self.outcome.done():
            self.outcome.set_result(TransferReport(
                files=self.landed, bytes=self.received_bytes, resumed_bytes=self.resumed_bytes,
                seconds=time.monotonic() - self.started, ok=ok))

    async def _decide(self, hello: Hello2) -> None:
        kind = "text" if self.machine.text else (
            "stream" if any(e.is_stream for e in hello.files) and hello.count == 1
            else "files")
        offer = IncomingOffer2(files=tuple(e.as_file_entry() for e in hello.files),
                               total=hello.total, count=hello.count, kind=kind)
        try:
            reason = await self.decide(offer)
            offsets: list[int] = []
            if reason is None:
                found: asyncio.Future[list[int]] = self.loop.create_future()

                def look_up() -> None:
                    try:
                        held = self._lookup(0, hello.files)
                    except Exception as error:
                        self._post(found.set_exception, error)
                        return
                    self._post(found.set_result, held)

                self.disk.submit(look_up)
                offsets = await found
        except Exception as error:
            self._execute(self.machine.abort("the receiver failed while deciding"))
            if not self.outcome.done():
                self.outcome.set_exception(error)
            return
        if reason is None:
            # The rate leaves out the time the person took to answer.
            self.started = time.monotonic()
            self.observer.transfer_started(offer.files, offsets, total=offer.total)
        self._execute(self.machine.decide(reason, offsets))

    def _found(self, first: int, offsets: list[int]) -> None:
        self._execute(self.machine.offsets_found(first, offsets))

    def _settled(self, results: Sequence[tuple[int, str | None, Path | None]]) -> None:
        if self.outcome.done():
            return
        renamed: list[tuple[int, str]] = []
        for index, failure, path in results:
            entry = self.names.pop(index, None)
            resumed_from = self.resumed_from.pop(index, None)
            if failure is None:
                self.landed += 1
            saved_as = None
            if failure is None and path is not None and entry is not None:
                folder, _, leaf = entry.name.rpartition("/")
                if path.name != leaf:  # relative to the download folder, as on the wire
                    saved_as = f"{folder}/{path.name}" if folder else path.name
                    renamed.append((index, saved_as))
            if entry is not None:
                self.observer.file_finished(index, entry.as_file_entry(), failure is None,
                                            failure, path, saved_as=saved_as,
                                            resumed_from=resumed_from)
        self._execute(self.machine.files_settled([(i, f) for i, f, _ in results], renamed))

    def _show_text(self, text: str) -> None:
        if self.on_text is not None:
            self.on_text(text)

    def _post(self, callback: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self.loop.call_soon_threadsafe(callback, *args)

    # Disk thread side --------------------------------------------------------------

    def _lookup(self, first: int, entries: Sequence[Entry]) -> list[int]:
        offsets = []
        for position, entry in enumerate(entries):
            if entry.size is None or entry.text or self.stdout is not None:
                offsets.append(0)
                continue
            components = split_name(entry.name)
            if entry.size <= SMALL_PART:
                self.components[first + position] = components  # for _open
            kind, held = self.folders.lookup(components, entry.size, entry.mtime)
            if kind == "complete":
                self.existing.add(first + position)
            offsets.append(held)
        return offsets

    def _open(self, index: int, entry: Entry, offset: int) -> None:
        self._close_part()
        self.part_index = index
        self.digest = None
        self.text_bytes = bytearray()
        components = self.components.pop(index, None)
        if entry.text:
            self.mode = "text"
            return
        if self.stdout is not None:
            self.mode = "stdout"
            self.digest = hashlib.sha256()
            return
        if index in self.existing:
            self.existing.discard(index)
            if offset == entry.size:
                self.mode = "existing"
                try:
                    components = components or split_name(entry.name)
                    self.digest = self.folders.hash_in_place(components)
                    self.existing_path = self.root.joinpath(*components)
                except (OSError, StorageError) as error:
                    self.mode = "failed"
                    self._post(self.machine.fail_current, index,
                               f"cannot read the file already here: {error}")
                return
            if offset > 0:
                self.mode = "failed"
                self._post(self.machine.fail_current, index,
                           "cannot resume inside a file that is already complete")
                return
        self.mode = "part"
        try:
            components = components or split_name(entry.name)
            if offset == 0 and entry.size is not None and entry.size <= SMALL_PART:
                self.part = self.folders.new_small_part(components)
            else:
                self.part = self._open_part(entry.as_file_entry(), offset)
        except StorageError as error:
            self.mode = "failed"
            self._post(self.machine.fail_current, index, error.reason)

    def _open_part(self, entry: FileEntry, offset: int) -> PartFile:
        """The part file of a large file. When another transfer is receiving the same
        name right now, a file received from its first byte takes a part file of its
        own (``.name~N.rtcxfer-part``) and lands as ``name (N).ext``."""
        try:
            return self.folder.open_part(entry, offset)
        except StorageError:
            if offset != 0 or not self.folder.claim_fresh(entry):
                raise
            return self.folder.open_part(entry, 0)

    def _write(self, index: int, chunks: list[bytes]) -> None:
        if index != self.part_index:
            return
        try:
            if self.mode == "part" and self.part is not None:
                self.part.write(chunks)
                if self.part.held >= PROGRESS_FROM:
                    # Small files report no progress: a wake-up of the loop per file
                    # would cost more than the file.
                    self._post(self.observer.file_progress, index, self.part.held)
            elif self.mode == "stdout" and self.stdout is not None:
                for chunk in chunks:
                    self.stdout.write(chunk)
                    self.digest.update(chunk)
            elif self.mode == "text":
                for chunk in chunks:
                    self.text_bytes += chunk
        except StorageError as error:
            self._close_part()
            self.mode = "failed"
            self._post(self.machine.fail_current, index, error.reason)
        except OSError as error:
            self.mode = "failed"
            self._post(self.machine.fail_current, index,
                       f"cannot write to standard output: {error.strerror or error}")

    def _verify(self, index: int, entry: Entry, sha256: str) -> None:
        mode, self.mode = self.mode, ""
        if index != self.part_index:
            self._post(self._settled, [(index, "not written", None)])
            return
        if mode == "part" and self.part is not None:
            part, self.part = self.part, None
            actual = part.digest.hexdigest()
            if actual != sha256:
                part.discard()
                self._post(self._settled, [(index, _mismatch(sha256, actual), None)])
                return
            try:
                if entry.mtime is not None and part.fd is not None:
                    os.utime(part.fd, times=(time.time(), entry.mtime))
            except OSError as error:
                part.close()
                self._post(self._settled, [(index, f"cannot set its time: {error}", None)])
                return
            self.verified.append(_Ready(index, entry, part))
            return
        if mode in ("stdout", "existing", "text"):
            actual = self.digest.hexdigest() if mode != "text" else hashlib.sha256(
                self.text_bytes).hexdigest()
            if actual != sha256:
                reason = (_mismatch(sha256, actual) if mode != "existing" else
                          "a different file with this name, size and mtime is already here")
                self._post(self._settled, [(index, reason, None)])
                return
            path: Path | None = self.existing_path if mode == "existing" else None
            if mode == "stdout" and self.stdout is not None:
                try:
                    self.stdout.flush()
                except OSError as error:
                    self._post(self._settled, [(index, f"standard output: {error}", None)])
                    return
            if mode == "text":
                try:
                    text = bytes(self.text_bytes).decode("utf-8")
                except UnicodeDecodeError:
                    self._post(self._settled, [(index, "the text is not valid UTF-8", None)])
                    return
                self._post(self._show_text, text)
            self._post(self._settled, [(index, None, path)])
            return
        self._post(self._settled, [(index, "the file could not be written", None)])

    def _discard(self, index: int) -> None:
        if index == self.part_index and self.part is not None:
            self.part.discard()
            self.part = None
        if index == self.part_index:
            self.mode = "failed"

    def _close_part(self) -> None:
        if self.part is not None:
            self.part.close()
            self.part = None

    # Committer thread ----------------------------------------------------------------

    def _run_all(self, jobs: list[Callable[[], None]]) -> None:
        """Disk jobs in order. An unexpected error (out of descriptors, a bug) ends the
        transfer with a named failure instead of killing the thread and hanging."""
        try:
            for job in jobs:
                try:
                    job()
                except Exception as error:
                    logger.exception("receiving: disk job failed")
                    self._post(self._disk_failed, f"the receiver's disk work failed: {error}")
                    return
        finally:
            # The files this job verified go to the committer together: one hand-off
            # (and one wake-up of its thread) per received frame, not per file.
            if self.verified:
                verified, self.verified = self.verified, []
                self.ready.put_many(verified)

    def _disk_failed(self, reason: str) -> None:
        self._execute(self.machine.abort(reason))

    def _commit_loop(self) -> None:
        while (group := self.ready.take(GROUP_FILES, GROUP_SECONDS)) is not None:
            try:
                self._commit(group)
            except Exception as error:
                logger.exception("receiving: committing files failed")
                self._post(self._disk_failed, f"the receiver could not store files: {error}")

    def _commit(self, group: list[_Ready]) -> None:
        """Make ``group`` durable, move it into place, make the names durable, report.

        A file is reported settled (and acked) only after both steps: its data was
        flushed before its name appeared, and the folder entry after."""
        def sync(item: _Ready) -> str | None:
            # The part file stays open, so locked, until it is linked into place
            # (part.close() below): no concurrent transfer of the name can take it over.
            try:
                assert item.part.fd is not None
                os.fsync(item.part.fd)
            except OSError as error:
                return str(error.strerror or error)
            return None

        grouped = _SYNCFS is not None and len(group) >= SYNCFS_FROM
        problems: list[str | None] | None = None
        if grouped:
            problems = self._syncfs_all((item.part.components[:-1], item.part.folder)
                                        for item in group)
        if problems is None:
            problems = list(self.fsyncs.map(sync, group))
        results: list[tuple[int, str | None, Path | None]] = []
        folders: dict[tuple[str, ...], int] = {}  # folder (relative path) -> a descriptor
        for item, problem in zip(group, problems, strict=True):
            part = item.part
            if problem is not None:
                part.close()
                results.append((item.index, f"cannot flush the file: {problem}", None))
                continue
            try:
                leaf = part._place(overwrite=self.overwrite)
                part.remove_sidecar()
                key = part.components[:-1]
                if key not in folders:
                    folders[key] = os.dup(part.folder)
            except StorageError as error:
                part.close()
                results.append((item.index, error.reason, None))
                continue
            except OSError as error:
                part.close()
                results.append((item.index, f"cannot place the file: {error.strerror}", None))
                continue
            part.close()
            results.append((item.index, None,
                            self.root.joinpath(*part.components[:-1], leaf)))
        try:
            if grouped and len(folders) > 1:
                names = self._syncfs_all(folders.items())
                failed = next((name for name in names or () if name is not None), None)
                if names is None or failed is not None:
                    self._fsync_folders(folders.values())
            else:
                self._fsync_folders(folders.values())
        except OSError as error:
            results = [(i, f if f else f"cannot flush the folder: {error}", p)
                       for i, f, p in results]
        finally:
            for fd in folders.values():
                os.close(fd)
        self._post(self._settled, results)

    @staticmethod
    def _fsync_folders(fds: Iterable[int]) -> None:
        for fd in fds:
            os.fsync(fd)

    @staticmethod
    def _syncfs_all(folders: Iterable[tuple[tuple[str, ...], int | None]]
                    ) -> list[str | None] | None:
        """One syncfs per filesystem among ``folders`` ((relative path, descriptor)
        pairs, one per file or folder); a problem per pair (all None when every
        filesystem synced), or None when syncfs failed: the caller then falls back to
        fsync per file, which names the file that cannot be flushed."""
        looked_at: set[tuple[str, ...]] = set()
        synced: set[int] = set()
        answers: list[str | None] = []
        for path, fd in folders:
            if fd is None:
                return None
            if path not in looked_at:  # a folder mounted over may be another filesystem
                looked_at.add(path)
                device = os.fstat(fd).st_dev
                if device not in synced:
                    synced.add(device)
                    try:
                        syncfs(fd)
                    except OSError:
                        return None
            answers.append(None)
        return answers


def _load_syncfs() -> Callable[[int], int] | None:
    if not hasattr(os, "sched_getaffinity"):  # not Linux: fsync per file and folder
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return cast(Callable[[int], int], function)


_SYNCFS = _load_syncfs()


def syncfs(fd: int) -> None:
    """Make everything written to the filesystem of ``fd`` durable (Linux syncfs(2)):
    data and metadata of every file, and writeback errors since ``fd`` was opened
    are reported (Linux 5.8+). Raises :class:`OSError`."""
    assert _SYNCFS is not None
    if _SYNCFS(fd) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def _mismatch(announced: str, actual: str) -> str:
    return f"sha256 mismatch (announced {announced[:16]}..., received {actual[:16]}...)"


def file_entries(entries: Sequence[Entry]) -> list[FileEntry]:
    return [entry.as_file_entry() for entry in entries]
