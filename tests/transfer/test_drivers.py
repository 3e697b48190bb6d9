"""send_files / receive_files over real aiortc data channels on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest
from aiortc import RTCDataChannel
from transfer.peers import WAIT_SECONDS, RecordingObserver, connected_pair

from rtcxfer.errors import PeerDeclined, TransferFailed
from rtcxfer.transfer import (
    IncomingOffer,
    TransferReport,
    collect_sources,
    receive_files,
    send_files,
)
from rtcxfer.transfer import receiver as receiver_module
from rtcxfer.transfer.sender import frame_size
from rtcxfer.transfer.storage import PartFile, part_names

pytestmark = pytest.mark.usefixtures("loopback_ice")

Decide = Callable[[IncomingOffer], Awaitable[str | None]]


async def accept_all(offer: IncomingOffer) -> None:
    return None


class Receiving:
    """Starts receive_files from the datachannel event, as the peer layer does."""

    def __init__(self, download_dir: Path, *, decide: Decide = accept_all,
                 overwrite: bool = False) -> None:
        self.download_dir = download_dir
        self.decide = decide
        self.overwrite = overwrite
        self.observer = RecordingObserver()
        self.task: asyncio.Task[TransferReport] | None = None

    def on_datachannel(self, channel: RTCDataChannel) -> None:
        self.task = asyncio.ensure_future(receive_files(
            channel, download_dir=self.download_dir, decide=self.decide,
            overwrite=self.overwrite, observer=self.observer,
        ))

    async def report(self) -> TransferReport:
        assert self.task is not None
        return await asyncio.wait_for(self.task, WAIT_SECONDS)


async def transfer(paths: list[Path], download_dir: Path, **receiving: object,
                   ) -> tuple[TransferReport, TransferReport, RecordingObserver, Receiving]:
    receiver = Receiving(download_dir, **receiving)  # type: ignore[arg-type]
    observer = RecordingObserver()
    async with connected_pair(receiver.on_datachannel) as link:
        sent = await send_files(link.channel, collect_sources(paths),
                                max_message_size=link.max_message_size, observer=observer)
        received = await receiver.report()
    return sent, received, observer, receiver


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if ".rtcxfer-part" in path.name)


async def test_single_file_arrives_whole(tmp_path: Path) -> None:
    source = tmp_path / "report.pdf"
    source.write_bytes(os.urandom(300_000))
    os.utime(source, (1_700_000_000, 1_700_000_000))
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    sent, received, observer, receiver = await transfer([source], inbox)

    landed = inbox / "report.pdf"
    assert landed.read_bytes() == source.read_bytes()
    assert landed.stat().st_mtime == 1_700_000_000
    assert sent == TransferReport(1, 300_000, 0, sent.seconds, True)
    assert (received.files, received.bytes, received.ok) == (1, 300_000, True)
    assert observer.of("file_finished") == [("file_finished", 0, "report.pdf", True, None,
                                             source)]
    assert receiver.observer.of("file_finished")[0][5] == landed
    assert receiver.observer.of("transfer_finished") == [("transfer_finished", True)]
    assert leftovers(inbox) == []


async def test_tree_with_nested_and_empty_files(tmp_path: Path) -> None:
    tree = tmp_path / "project"
    (tree / "src" / "deep" / "deeper").mkdir(parents=True)
    (tree / "empty-folder-with-empty-file").mkdir()
    files = {
        "project/README": b"hello\n",
        "project/src/main.py": os.urandom(70_000),
        "project/src/deep/deeper/data.bin": os.urandom(200_001),
        "project/empty-folder-with-empty-file/zero": b"",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    single = tmp_path / "loose.txt"
    single.write_bytes(b"")
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    sent, received, _, _ = await transfer([tree, single], inbox)

    for name, content in files.items():
        assert (inbox / name).read_bytes() == content
    assert (inbox / "loose.txt").read_bytes() == b""
    assert sent.files == received.files == 5
    assert leftovers(inbox) == []


@pytest.mark.slow
async def test_large_random_file(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    with source.open("wb") as output:
        for _ in range(64):
            output.write(os.urandom(1024 * 1024))
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    sent, received, observer, _ = await transfer([source], inbox)

    assert sha256_of(inbox / "big.bin") == sha256_of(source)
    assert sent.bytes == received.bytes == 64 * 1024 * 1024
    progress = [done for _, _, done in observer.of("file_progress")]
    assert progress == sorted(progress) and progress[-1] == 64 * 1024 * 1024


def write_random(path: Path, size: int) -> bytes:
    content = os.urandom(size)
    path.write_bytes(content)
    return content


async def test_decline_is_reported_to_the_sender(tmp_path: Path) -> None:
    source = tmp_path / "unwanted.txt"
    write_random(source, 1000)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    offers: list[IncomingOffer] = []

    async def refuse(offer: IncomingOffer) -> str:
        offers.append(offer)
        return "not today"

    receiver = Receiving(inbox, decide=refuse)
    async with connected_pair(receiver.on_datachannel) as link:
        with pytest.raises(PeerDeclined, match="not today"):
            await send_files(link.channel, collect_sources([source]),
                             max_message_size=link.max_message_size,
                             observer=RecordingObserver())
        report = await receiver.report()
    assert (report.ok, report.files) == (False, 0)
    assert [entry.name for entry in offers[0].files] == ["unwanted.txt"]
    assert list(inbox.iterdir()) == []


async def test_existing_name_gets_a_number(tmp_path: Path) -> None:
    source = tmp_path / "notes.tar.gz"
    content = write_random(source, 5000)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "notes.tar.gz").write_bytes(b"precious")
    (inbox / "notes (1).tar.gz").write_bytes(b"also precious")

    _, _, _, receiver = await transfer([source], inbox)

    assert (inbox / "notes.tar.gz").read_bytes() == b"precious"
    assert (inbox / "notes (1).tar.gz").read_bytes() == b"also precious"
    assert (inbox / "notes (2).tar.gz").read_bytes() == content
    assert receiver.observer.of("file_finished")[0][5] == inbox / "notes (2).tar.gz"


async def test_overwrite_replaces_the_existing_file(tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    content = write_random(source, 5000)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "notes.txt").write_bytes(b"old")

    await transfer([source], inbox, overwrite=True)

    assert (inbox / "notes.txt").read_bytes() == content
    assert sorted(path.name for path in inbox.iterdir()) == ["notes.txt"]


async def test_resume_after_the_sender_is_interrupted(tmp_path: Path) -> None:
    source = tmp_path / "movie.bin"
    content = write_random(source, 12 * 1024 * 1024)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    part, meta = (inbox / name for name in part_names("movie.bin"))

    receiver = Receiving(inbox)
    receiver.observer.progress_mark = 2 * 1024 * 1024  # written to the part file
    async with connected_pair(receiver.on_datachannel) as link:
        sending = asyncio.ensure_future(send_files(
            link.channel, collect_sources([source]), max_message_size=link.max_message_size,
            observer=RecordingObserver()))
        await asyncio.wait_for(receiver.observer.progress_reached.wait(), WAIT_SECONDS)
        sending.cancel()  # what Ctrl-C does to the sender
        with pytest.raises(asyncio.CancelledError):
            await sending
        with pytest.raises(TransferFailed, match="sender was interrupted"):
            await receiver.report()
    held = part.stat().st_size
    assert 0 < held < len(content) and meta.exists()
    assert not (inbox / "movie.bin").exists()

    sent, received, observer, _ = await transfer([source], inbox)

    assert observer.of("transfer_started")[0][2] == (held,)
    assert sent.resumed_bytes == received.resumed_bytes == held
    assert sent.bytes == received.bytes == len(content) - held
    assert (inbox / "movie.bin").read_bytes() == content
    assert leftovers(inbox) == []


async def test_corrupt_part_file_fails_the_file_and_is_removed(tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    content = write_random(source, 400_000)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    part, meta = (inbox / name for name in part_names("data.bin"))
    part.write_bytes(b"x" * 100_000)  # same length as a real prefix, wrong bytes
    meta.write_text(f'{{"size": {len(content)}, "mtime": {source.stat().st_mtime!r}}}')

    receiver = Receiving(inbox)
    async with connected_pair(receiver.on_datachannel) as link:
        with pytest.raises(TransferFailed, match=r"data\.bin: sha256 mismatch"):
            await send_files(link.channel, collect_sources([source]),
                             max_message_size=link.max_message_size,
                             observer=RecordingObserver())
        report = await receiver.report()
    assert (report.ok, report.resumed_bytes) == (False, 100_000)
    assert list(inbox.iterdir()) == []

    await transfer([source], inbox)
    assert (inbox / "data.bin").read_bytes() == content


async def test_receiver_interrupted_tells_the_sender_and_keeps_the_part(tmp_path: Path) -> None:
    source = tmp_path / "video.bin"
    write_random(source, 8 * 1024 * 1024)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    receiver = Receiving(inbox)
    receiver.observer.progress_mark = 1024 * 1024
    async with connected_pair(receiver.on_datachannel) as link:
        sending = asyncio.ensure_future(send_files(
            link.channel, collect_sources([source]), max_message_size=link.max_message_size,
            observer=RecordingObserver()))
        await asyncio.wait_for(receiver.observer.progress_reached.wait(), WAIT_SECONDS)
        assert receiver.task is not None
        receiver.task.cancel()  # what Ctrl-C does to the listener
        with pytest.raises(TransferFailed, match="receiver was interrupted"):
            await asyncio.wait_for(sending, WAIT_SECONDS)
        with pytest.raises(asyncio.CancelledError):
            await receiver.task
    assert receiver.observer.of("transfer_finished") == [("transfer_finished", False)]
    assert [path.name for path in leftovers(inbox)] == [".video.bin.rtcxfer-part",
                                                         ".video.bin.rtcxfer-part.json"]


async def test_source_that_shrinks_while_sending_fails_cleanly(tmp_path: Path) -> None:
    source = tmp_path / "log.txt"
    write_random(source, 3 * 1024 * 1024)
    sources = collect_sources([source])
    with source.open("r+b") as handle:
        handle.truncate(1024 * 1024)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    receiver = Receiving(inbox)
    async with connected_pair(receiver.on_datachannel) as link:
        with pytest.raises(TransferFailed, match="shrank while being sent"):
            await send_files(link.channel, sources, max_message_size=link.max_message_size,
                             observer=RecordingObserver())
        with pytest.raises(TransferFailed, match="shrank while being sent"):
            await receiver.report()
    assert not (inbox / "log.txt").exists()


@pytest.mark.parametrize(("max_message_size", "frame"), [
    (0, 65536), (65536, 65536), (262144, 65536), (65535, 16384), (16384, 16384), (8000, 8000),
])
def test_frame_size_follows_max_message_size(max_message_size: int, frame: int) -> None:
    assert frame_size(max_message_size) == frame


async def test_slow_disk_holds_back_the_network_and_loses_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "slow.bin"
    content = write_random(source, 12 * 1024 * 1024)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    real_write = PartFile.write
    backlog_full = threading.Event()
    largest_backlog = 0

    def stalled_write(part: PartFile, chunks: Sequence[bytes]) -> None:
        # The disk "stalls" until the receiver has queued all it may queue.
        backlog_full.wait(WAIT_SECONDS)
        real_write(part, chunks)

    def watch_backlog(disk: object, job: object) -> None:
        nonlocal largest_backlog
        jobs = disk.jobs  # type: ignore[attr-defined]
        largest_backlog = max(largest_backlog, jobs.qsize())
        if jobs.full():
            backlog_full.set()
        jobs.put(job)

    monkeypatch.setattr(PartFile, "write", stalled_write)
    monkeypatch.setattr(receiver_module._DiskThread, "submit", watch_backlog)

    await transfer([source], inbox)

    assert (inbox / "slow.bin").read_bytes() == content
    assert largest_backlog == receiver_module.MAX_QUEUED_JOBS


async def test_file_list_too_big_for_one_message_is_refused_before_sending(
        tmp_path: Path) -> None:
    sources = []
    for index in range(20):
        (tmp_path / f"file-{index}.txt").write_bytes(b"")
        sources.append(tmp_path / f"file-{index}.txt")
    receiver = Receiving(tmp_path)
    async with connected_pair(receiver.on_datachannel) as link:
        with pytest.raises(TransferFailed, match="send fewer files at once"):
            await send_files(link.channel, collect_sources(sources), max_message_size=500,
                             observer=RecordingObserver())
        with pytest.raises(TransferFailed, match="send fewer files at once"):
            await receiver.report()


async def test_whole_part_file_is_verified_and_placed_without_resending(
        tmp_path: Path) -> None:
    source = tmp_path / "complete.bin"
    content = write_random(source, 300_000)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    part, meta = (inbox / name for name in part_names("complete.bin"))
    part.write_bytes(content)  # e.g. the receiver died between the last write and rename
    meta.write_text(f'{{"size": {len(content)}, "mtime": {source.stat().st_mtime!r}}}')

    sent, received, _, _ = await transfer([source], inbox)

    assert (sent.bytes, sent.resumed_bytes, received.resumed_bytes) == (0, 300_000, 300_000)
    assert (inbox / "complete.bin").read_bytes() == content
    assert leftovers(inbox) == []
