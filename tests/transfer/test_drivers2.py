"""rtcxfer/2 drivers over real aiortc data channels: v1 <-> v2 both ways, many files,
resume of complete files, text, streams."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import io
import os
from pathlib import Path

import pytest
from transfer.peers import WAIT_SECONDS, RecordingObserver, connected_pair

from rtcxfer.errors import TransferFailed
from rtcxfer.transfer import IncomingOffer, TransferReport, collect_sources, receive_files
from rtcxfer.transfer.receiver2 import IncomingOffer2, receive_any
from rtcxfer.transfer.sender import send_files
from rtcxfer.transfer.sender2 import plan_paths, plan_stream, plan_text, send_outgoing

pytestmark = pytest.mark.usefixtures("loopback_ice")


class Receiving:
    def __init__(self, inbox: Path, *, v1: bool = False, stdout: io.BytesIO | None = None,
                 ) -> None:
        self.inbox = inbox
        self.v1 = v1
        self.stdout = stdout
        self.observer = RecordingObserver()
        self.offers: list[IncomingOffer] = []
        self.texts: list[str] = []
        self.task: asyncio.Future[TransferReport] | None = None

    async def decide(self, offer: IncomingOffer) -> None:
        self.offers.append(offer)

    def on_datachannel(self, channel: object) -> None:
        if self.v1:
            work = receive_files(channel, download_dir=self.inbox,  # type: ignore[arg-type]
                                 decide=self.decide, overwrite=False, observer=self.observer)
        else:
            work = receive_any(channel, download_dir=self.inbox,  # type: ignore[arg-type]
                               decide=self.decide, overwrite=False, observer=self.observer,
                               stdout=self.stdout, on_text=self.texts.append)
        self.task = asyncio.ensure_future(work)

    async def report(self) -> TransferReport:
        assert self.task is not None
        return await asyncio.wait_for(self.task, WAIT_SECONDS)


def make_tree(root: Path, count: int, size: int = 100) -> dict[str, bytes]:
    made = {}
    for number in range(count):
        path = root / f"d{number % 7}" / f"e{number % 3}" / f"f{number}"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(size if number % 11 else 0)
        path.write_bytes(data)
        made[f"{root.name}/d{number % 7}/e{number % 3}/f{number}"] = data
    return made


def assert_landed(inbox: Path, made: dict[str, bytes]) -> None:
    for name, data in made.items():
        assert (inbox / name).read_bytes() == data, name
    assert len([p for p in inbox.rglob("*") if p.is_file()]) == len(made)


async def send_v2(paths: list[Path], receiving: Receiving,
                  max_message_size: int | None = None) -> tuple[TransferReport, TransferReport,
                                                                RecordingObserver]:
    observer = RecordingObserver()
    async with connected_pair(receiving.on_datachannel) as link:
        outgoing = await asyncio.to_thread(plan_paths, paths)
        sent = await send_outgoing(link.channel, outgoing,
                                   max_message_size=max_message_size or link.max_message_size,
                                   observer=observer)
        received = await receiving.report()
    return sent, received, observer


async def test_v2_to_v2_folder_larger_than_one_message(tmp_path: Path) -> None:
    made = make_tree(tmp_path / "tree", 3000)
    inbox = tmp_path / "in"
    inbox.mkdir()
    receiving = Receiving(inbox)
    # A small max-message-size forces many list batches.
    sent, received, _ = await send_v2([tmp_path / "tree"], receiving, max_message_size=16384)
    assert sent.files == received.files == 3000
    (offer,) = receiving.offers
    assert isinstance(offer, IncomingOffer2) and offer.count == 3000
    assert len(offer.files) < 3000
    assert_landed(inbox, made)


async def test_v2_sender_to_v1_receiver_falls_back(tmp_path: Path) -> None:
    made = make_tree(tmp_path / "tree", 30)
    inbox = tmp_path / "in"
    inbox.mkdir()
    receiving = Receiving(inbox, v1=True)
    sent, received, observer = await send_v2([tmp_path / "tree"], receiving)
    assert sent.files == received.files == 30
    assert len(observer.of("file_finished")) == 30
    assert_landed(inbox, made)


async def test_v2_sender_with_too_many_files_for_v1_receiver_fails_clearly(
        tmp_path: Path) -> None:
    make_tree(tmp_path / "tree", 400)
    inbox = tmp_path / "in"
    inbox.mkdir()
    receiving = Receiving(inbox, v1=True)
    with pytest.raises(TransferFailed, match="only rtcxfer/1"):
        await send_v2([tmp_path / "tree"], receiving, max_message_size=16384)
    with pytest.raises(TransferFailed):
        await receiving.report()
    assert [p for p in inbox.rglob("*") if p.is_file()] == []


async def test_v1_sender_to_v2_receiver(tmp_path: Path) -> None:
    made = make_tree(tmp_path / "tree", 30)
    inbox = tmp_path / "in"
    inbox.mkdir()
    receiving = Receiving(inbox)
    async with connected_pair(receiving.on_datachannel) as link:
        sent = await send_files(link.channel, collect_sources([tmp_path / "tree"]),
                                max_message_size=link.max_message_size,
                                observer=RecordingObserver())
        received = await receiving.report()
    assert sent.files == received.files == 30
    assert not isinstance(receiving.offers[0], IncomingOffer2)
    assert_landed(inbox, made)


async def test_complete_files_are_not_sent_again(tmp_path: Path) -> None:
    made = make_tree(tmp_path / "tree", 50, size=5000)
    inbox = tmp_path / "in"
    inbox.mkdir()
    await send_v2([tmp_path / "tree"], Receiving(inbox))
    # One file changes content (same size and mtime: hashes disagree), one is removed.
    changed = inbox / "tree/d1/e1/f1"
    stamp = changed.stat()
    changed.write_bytes(os.urandom(5000))
    os.utime(changed, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    (inbox / "tree/d2/e2/f2").unlink()
    receiving = Receiving(inbox)
    with pytest.raises(TransferFailed, match="different file"):
        await send_v2([tmp_path / "tree"], receiving)
    received = await receiving.report()
    assert received.files == 49  # 48 verified in place + f2 again
    assert (inbox / "tree/d2/e2/f2").read_bytes() == made["tree/d2/e2/f2"]
    started = receiving.observer.of("file_started")
    resent = [event for event in started if event[3] == 0 and made[event[2]]]
    assert [event[2] for event in resent] == ["tree/d2/e2/f2"]


async def test_text_is_shown_not_written(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    receiving = Receiving(inbox)
    text = "hello\n\x1b[31mred\u202e world"
    async with connected_pair(receiving.on_datachannel) as link:
        sent = await send_outgoing(link.channel, plan_text(text.encode()),
                                   max_message_size=link.max_message_size,
                                   observer=RecordingObserver())
        received = await receiving.report()
    assert sent.ok and received.ok
    assert receiving.texts == [text]
    assert list(inbox.iterdir()) == []


async def test_stream_to_stdout(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    sink = io.BytesIO()
    receiving = Receiving(inbox, stdout=sink)
    data = os.urandom(3 * 1024 * 1024 + 17)
    async with connected_pair(receiving.on_datachannel) as link:
        sent = await send_outgoing(link.channel, plan_stream(io.BytesIO(data), "pipe"),
                                   max_message_size=link.max_message_size,
                                   observer=RecordingObserver())
        received = await receiving.report()
    assert sent.bytes == received.bytes == len(data)
    assert sink.getvalue() == data
    assert list(inbox.iterdir()) == []


async def test_stream_to_a_folder(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    receiving = Receiving(inbox)
    data = os.urandom(200_000)
    async with connected_pair(receiving.on_datachannel) as link:
        await send_outgoing(link.channel, plan_stream(io.BytesIO(data), "backup.tar"),
                            max_message_size=link.max_message_size,
                            observer=RecordingObserver())
        await receiving.report()
    assert (inbox / "backup.tar").read_bytes() == data


async def test_an_unexpected_disk_error_fails_the_transfer_without_hanging(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rtcxfer.transfer import folders2

    def broken(self: object, components: tuple[str, ...]) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(folders2.FolderCache, "new_small_part", broken)
    make_tree(tmp_path / "tree", 20)
    inbox = tmp_path / "in"
    inbox.mkdir()
    receiving = Receiving(inbox)
    with pytest.raises(TransferFailed, match="disk work failed"):
        await send_v2([tmp_path / "tree"], receiving)
    with pytest.raises(TransferFailed, match="disk work failed"):
        await receiving.report()


@pytest.mark.parametrize("syncfs", ["fails", "absent"])
async def test_groups_are_made_durable_without_syncfs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syncfs: str) -> None:
    # A group of files is made durable with syncfs(2) where it works; when it fails
    # (or is not there) every file and folder is fsynced instead, and all still land.
    from rtcxfer.transfer import receiver2

    calls: list[int] = []

    def failing(fd: int) -> int:
        calls.append(fd)
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(receiver2, "_SYNCFS", failing if syncfs == "fails" else None)
    made = make_tree(tmp_path / "tree", 200)
    inbox = tmp_path / "in"
    inbox.mkdir()
    receiving = Receiving(inbox)
    sent, received, _ = await send_v2([tmp_path / "tree"], receiving)
    assert sent.files == received.files == 200
    assert_landed(inbox, made)
    if syncfs == "fails":
        assert calls  # groups of 8 or more were tried with syncfs first
