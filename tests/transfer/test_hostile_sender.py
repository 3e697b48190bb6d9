"""A hand-driven hostile sender against the real receiver, over a real data channel.

Whatever it sends, nothing may appear outside the download folder, failed files leave
no part file behind, and the receiver keeps working.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from transfer.peers import WAIT_SECONDS, RawPeer, connected_pair
from transfer.test_drivers import Receiving, leftovers

from rtcxfer.errors import TransferFailed
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
)
from rtcxfer.transfer import TransferReport

pytestmark = pytest.mark.usefixtures("loopback_ice")


def snapshot(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def hello(*files: tuple[str, int]) -> Hello:
    entries = tuple(FileEntry(name, size, None) for name, size in files)
    return Hello(files=entries, total=sum(size for _, size in files))


class Session:
    def __init__(self, peer: RawPeer, receiver: Receiving) -> None:
        self.peer = peer
        self.receiver = receiver

    async def send_file(self, index: int, content: bytes, *, sha256: str | None = None) -> Ack:
        self.peer.send(FileStart(index, 0))
        for start in range(0, len(content), 16384):
            self.peer.send_raw(content[start:start + 16384])
        self.peer.send(Eof(index, sha256 or hashlib.sha256(content).hexdigest()))
        answer = await self.peer.receive()
        assert isinstance(answer, Ack) and answer.index == index
        return answer

    async def report(self) -> TransferReport:
        return await self.receiver.report()


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[Session]:
    inbox = tmp_path / "jail" / "inbox"
    inbox.mkdir(parents=True)
    (tmp_path / "jail" / "outside").mkdir()
    receiver = Receiving(inbox)
    before = snapshot(tmp_path)
    async with connected_pair(receiver.on_datachannel) as link:
        yield Session(RawPeer(link.channel), receiver)
        if receiver.task is not None and not receiver.task.done():
            receiver.task.cancel()
            await asyncio.gather(receiver.task, return_exceptions=True)
    outside = {path for path in snapshot(tmp_path) - before if inbox not in path.parents}
    assert outside == set(), "something was written outside the download folder"


@pytest.mark.parametrize("name", [
    "../escape.txt", "a/../../escape.txt", "/etc/passwd", "C:/escape.txt", "a\\..\\b",
    "nul\x00byte", "bell\x07", "CON", "lpt1.txt", "a//b", "./a", "a/", "",
    "x" * 256, "a/" * 2100 + "b", ".b.rtcxfer-part",
])
async def test_hostile_name_is_declined(session: Session, name: str) -> None:
    session.peer.send(hello(("fine.txt", 1), (name, 3)))
    answer = await session.peer.receive()
    assert isinstance(answer, Decline)
    assert answer.reason.startswith("refused file name:")
    report = await session.report()
    assert (report.ok, report.files) == (False, 0)
    assert list(session.receiver.download_dir.iterdir()) == []


async def test_duplicate_names_are_declined(session: Session) -> None:
    session.peer.send(hello(("same.txt", 1), ("same.txt", 1)))
    answer = await session.peer.receive()
    assert isinstance(answer, Decline) and "twice" in answer.reason


async def test_symlink_inside_the_download_folder_is_not_followed(
        session: Session, tmp_path: Path) -> None:
    outside = tmp_path / "jail" / "outside"
    (session.receiver.download_dir / "link").symlink_to(outside)
    (session.receiver.download_dir / "file-link").symlink_to(outside / "target")
    session.peer.send(hello(("link/planted.txt", 4), ("file-link", 4)))
    assert await session.peer.receive() == Accept((0, 0))

    through_folder = await session.send_file(0, b"evil")
    over_file_link = await session.send_file(1, b"data")

    assert not through_folder.ok and "symlink" in (through_folder.reason or "")
    assert over_file_link.ok  # lands beside the symlink, which is left alone
    assert list(outside.iterdir()) == []
    assert (session.receiver.download_dir / "file-link (1)").read_bytes() == b"data"


async def test_bad_files_fail_alone_and_leave_nothing(session: Session) -> None:
    good = os.urandom(40_000)
    session.peer.send(hello(("wrong-hash.bin", 30_000), ("too-big.bin", 20_000),
                            ("too-small.bin", 20_000), ("nested/good.bin", len(good))))
    assert await session.peer.receive() == Accept((0, 0, 0, 0))

    wrong_hash = await session.send_file(0, os.urandom(30_000), sha256="0" * 64)
    too_big = await session.send_file(1, os.urandom(50_000))
    too_small = await session.send_file(2, os.urandom(10_000))
    landed = await session.send_file(3, good)
    session.peer.send(Done())

    assert await session.peer.receive() == Done()
    assert (wrong_hash.ok, too_big.ok, too_small.ok, landed.ok) == (False, False, False, True)
    assert "sha256 mismatch" in (wrong_hash.reason or "")
    assert "more than the announced 20000 bytes" in (too_big.reason or "")
    assert "announced 20000 bytes but sent 10000" in (too_small.reason or "")
    report = await session.report()
    assert (report.ok, report.files) == (False, 1)
    inbox = session.receiver.download_dir
    assert (inbox / "nested" / "good.bin").read_bytes() == good
    assert sorted(path.name for path in inbox.iterdir()) == ["nested"]
    assert leftovers(inbox) == []


async def test_binary_frame_before_file_is_a_protocol_error(session: Session) -> None:
    session.peer.send(hello(("a.bin", 10)))
    assert await session.peer.receive() == Accept((0,))
    session.peer.send_raw(b"0123456789")
    answer = await session.peer.receive()
    assert isinstance(answer, Error) and "protocol violation" in answer.message
    with pytest.raises(TransferFailed, match="broke the protocol"):
        await session.report()
    await asyncio.wait_for(session.peer.closed.wait(), WAIT_SECONDS)


@pytest.mark.parametrize("frame", [
    '{"type":"teleport"}', "not json", "[1,2]",
    '{"type":"hello","version":2,"files":[],"total":0}',
    '{"type":"hello","version":1,"files":[{"name":"a","size":-1}],"total":-1}',
    '{"type":"hello","version":1,"files":[{"name":"a","size":1}],"total":5}',
])
async def test_malformed_control_frame_is_a_protocol_error(session: Session,
                                                           frame: str) -> None:
    session.peer.send_raw(frame)
    answer = await session.peer.receive()
    assert isinstance(answer, Error) and "protocol violation" in answer.message
    with pytest.raises(TransferFailed):
        await session.report()


async def test_sender_error_keeps_the_part_file(session: Session) -> None:
    session.peer.send(hello(("half.bin", 100_000)))
    assert await session.peer.receive() == Accept((0,))
    session.peer.send(FileStart(0, 0))
    session.peer.send_raw(os.urandom(50_000))
    session.peer.send(Error("disk on fire"))
    with pytest.raises(TransferFailed, match="disk on fire"):
        await session.report()
    inbox = session.receiver.download_dir
    assert [path.name for path in leftovers(inbox)] == [".half.bin.rtcxfer-part",
                                                         ".half.bin.rtcxfer-part.json"]
