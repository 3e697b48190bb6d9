"""Issue 8, the transfer layer: real aiortc channels on loopback, real files.

Busy and idle senders, concurrent transfers of one name, files that change while
sent, a disk filled mid-file, long names, and the part-file lock held until the
file is in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from transfer.peers import RecordingObserver, connected_pair
from transfer.test_drivers import Receiving, leftovers, sha256_of, write_random

from rtcxfer.errors import ExitCode, PeerBusy, TransferFailed
from rtcxfer.protocol.transfer import FileEntry
from rtcxfer.transfer import IncomingOffer, collect_sources, send_files
from rtcxfer.transfer.storage import DownloadFolder, PartFile, StorageError, numbered_name

pytestmark = pytest.mark.usefixtures("loopback_ice")


async def test_busy_decline_is_its_own_failure(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    write_random(source, 100)

    async def busy(offer: IncomingOffer) -> str:
        return "busy: too many transfers"

    receiver = Receiving(tmp_path / "inbox", decide=busy)
    (tmp_path / "inbox").mkdir()
    async with connected_pair(receiver.on_datachannel) as link:
        with pytest.raises(PeerBusy, match="busy, try again later") as raised:
            await send_files(link.channel, collect_sources([source]),
                             max_message_size=link.max_message_size,
                             observer=RecordingObserver())
        await receiver.report()
    assert raised.value.exit_code == ExitCode.BUSY == 10


async def test_sender_gives_up_on_a_receiver_that_never_answers(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    write_random(source, 100)
    (tmp_path / "inbox").mkdir()

    async def never(offer: IncomingOffer) -> str | None:
        await asyncio.sleep(3600)
        return None

    receiver = Receiving(tmp_path / "inbox", decide=never)
    async with connected_pair(receiver.on_datachannel) as link:
        with pytest.raises(TransferFailed,
                           match="sent nothing for 1 s while we waited for an answer"):
            await asyncio.wait_for(send_files(
                link.channel, collect_sources([source]), max_message_size=link.max_message_size,
                observer=RecordingObserver(), idle_timeout=1.0), 30)
        with contextlib.suppress(TransferFailed):
            await receiver.report()


async def test_a_file_that_grows_while_sent_fails_instead_of_verifying(tmp_path: Path) -> None:
    source = tmp_path / "growing.log"
    write_random(source, 4 * 1024 * 1024)
    other = tmp_path / "steady.txt"
    write_random(other, 1000)
    sources = collect_sources([source, other])
    (tmp_path / "inbox").mkdir()
    receiver = Receiving(tmp_path / "inbox")
    observer = RecordingObserver(progress_mark=1)

    async def grow() -> None:
        await observer.progress_reached.wait()
        with source.open("ab") as handle:
            handle.write(b"appended while sending\n")

    async with connected_pair(receiver.on_datachannel) as link:
        grower = asyncio.create_task(grow())
        with pytest.raises(TransferFailed, match="grew while being sent"):
            await send_files(link.channel, sources, max_message_size=link.max_message_size,
                             observer=observer)
        await grower
        report = await receiver.report()
    assert report.files == 1  # the other file still landed
    assert not (tmp_path / "inbox" / "growing.log").exists()
    assert (tmp_path / "inbox" / "steady.txt").exists()
    assert leftovers(tmp_path / "inbox") == []


async def test_concurrent_transfers_of_one_name_all_land(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sources = []
    for number in range(4):
        source = tmp_path / f"from{number}" / "data.bin"
        source.parent.mkdir()
        write_random(source, 2 * 1024 * 1024)
        sources.append(source)

    async def one(source: Path) -> None:
        receiver = Receiving(inbox)
        async with connected_pair(receiver.on_datachannel) as link:
            await send_files(link.channel, collect_sources([source]),
                             max_message_size=link.max_message_size,
                             observer=RecordingObserver())
            await receiver.report()

    await asyncio.gather(*(one(source) for source in sources))

    landed = sorted(path.name for path in inbox.iterdir())
    assert landed == ["data (1).bin", "data (2).bin", "data (3).bin", "data.bin"]
    assert sorted(sha256_of(inbox / name) for name in landed) == sorted(
        sha256_of(source) for source in sources)


def test_a_second_transfer_gets_its_own_part_file(tmp_path: Path) -> None:
    entry = FileEntry("data.bin", 3, 1.0)
    first, second = DownloadFolder(tmp_path), DownloadFolder(tmp_path)
    assert first.claim([entry]) == [0]
    assert second.claim([entry]) == [0]
    one, two = first.open_part(entry, 0), second.open_part(entry, 0)
    one.write([b"one"])
    two.write([b"two"])
    assert two.finish(hashlib.sha256(b"two").hexdigest(), None, overwrite=False).name == (
        "data.bin")
    assert one.finish(hashlib.sha256(b"one").hexdigest(), None, overwrite=False).name == (
        "data (1).bin")
    first.release()
    second.release()
    assert (tmp_path / "data.bin").read_bytes() == b"two"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data (1).bin", "data.bin"]


def test_finish_keeps_the_lock_until_the_file_is_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second transfer opening the part while it is being placed must not truncate it."""
    entry = FileEntry("data.bin", 8, 1.0)
    part = DownloadFolder(tmp_path).open_part(entry, 0)
    part.write([b"verified"])
    outcomes: list[str] = []
    place = PartFile._place

    def place_while_another_transfer_opens(self: PartFile, *, overwrite: bool) -> str:
        try:
            intruder = DownloadFolder(tmp_path).open_part(entry, 0)
        except StorageError as error:
            outcomes.append(error.reason)
        else:
            outcomes.append("opened")
            intruder.close()
        return place(self, overwrite=overwrite)

    monkeypatch.setattr(PartFile, "_place", place_while_another_transfer_opens)
    part.finish(hashlib.sha256(b"verified").hexdigest(), None, overwrite=False)
    assert outcomes == ["another transfer is receiving this file right now"]
    assert (tmp_path / "data.bin").read_bytes() == b"verified"


@pytest.mark.parametrize("length", [252, 253, 254, 255])
def test_numbered_names_of_long_names_fit(tmp_path: Path, length: int) -> None:
    leaf = "é" * ((length - 4) // 2) + "x" * ((length - 4) % 2) + ".txt"
    assert len(leaf.encode()) == length
    for number in (1, 12, 9999):
        numbered = numbered_name(leaf, number)
        assert len(numbered.encode()) <= 255
        assert numbered.endswith(f" ({number}).txt")
    (tmp_path / leaf).write_bytes(b"old")
    entry = FileEntry(leaf, 3, 1.0)
    part = DownloadFolder(tmp_path).open_part(entry, 0)
    part.write([b"new"])
    path = part.finish(hashlib.sha256(b"new").hexdigest(), None, overwrite=False)
    assert path.read_bytes() == b"new" and path.name != leaf
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([leaf, path.name])


# A disk filled while a file is written (tmpfs: needs root, as in CI) --------------------

DISK = 2 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs",
                              str(folder)], capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False, timeout=30)


async def test_disk_filled_mid_file_stops_the_sender_at_once(tmp_path: Path,
                                                             small_disk: Path) -> None:
    big = tmp_path / "big.bin"
    write_random(big, 1536 * 1024)
    small = tmp_path / "small.txt"
    write_random(small, 1000)

    class FillDiskOnAccept(RecordingObserver):
        def transfer_started(self, files: object, offsets: object, *,
                             total: int | None = None) -> None:
            # The free-space check passed; something else now takes most of the room.
            with (small_disk / "filler").open("wb") as filler:
                filler.write(b"\0" * (DISK - 512 * 1024))
            super().transfer_started(files, offsets)  # type: ignore[arg-type]

    receiver = Receiving(small_disk)
    receiver.observer = FillDiskOnAccept()
    observer = RecordingObserver()
    async with connected_pair(receiver.on_datachannel) as link:
        with pytest.raises(TransferFailed, match=r"reported an error: big.bin: .*disk is full"):
            await send_files(link.channel, collect_sources([big, small]),
                             max_message_size=link.max_message_size, observer=observer)
        with pytest.raises(TransferFailed):
            await receiver.report()
    # Stopped at the failed write: never sent the eof of big.bin, nor small.txt.
    assert observer.of("file_finished") == []
    assert [event[2] for event in observer.of("file_started")] == ["big.bin"]
    names = {name: os.stat(small_disk / name).st_size for name in os.listdir(small_disk)}
    assert names.get(".big.bin.rtcxfer-part", 0) > 0, names
    assert all(size > 0 for name, size in names.items() if name.endswith(".json")), names
    assert "big.bin" not in names

    # Room again: the same send resumes from the kept part and lands verified.
    os.unlink(small_disk / "filler")
    receiver = Receiving(small_disk)
    observer = RecordingObserver()
    async with connected_pair(receiver.on_datachannel) as link:
        await send_files(link.channel, collect_sources([big, small]),
                         max_message_size=link.max_message_size, observer=observer)
        await receiver.report()
    assert observer.of("file_started")[0][3] == names[".big.bin.rtcxfer-part"]
    assert sha256_of(small_disk / "big.bin") == sha256_of(big)
    assert sorted(os.listdir(small_disk)) == ["big.bin", "small.txt"]


def test_free_space_is_checked_against_the_offer(small_disk: Path) -> None:
    from rtcxfer.transfer.storage import space_problem

    assert space_problem(small_disk, 1000) is None
    problem = space_problem(small_disk, 4 * 1024 * 1024)
    assert problem is not None and problem.startswith("not enough space: need 4.0 MiB, have ")
    assert os.listdir(small_disk) == []


# Receiver path rules and the sender's folder walk ---------------------------------------


@pytest.mark.parametrize("name", ["photo\u202egnp.exe", "a\u200b/b.txt", "x\u2066.txt",
                                  "line\u2028break"])
def test_receiver_refuses_invisible_and_bidi_names(name: str) -> None:
    from rtcxfer.transfer.paths import UnsafeName, split_name

    with pytest.raises(UnsafeName) as refused:
        split_name(name)
    assert "\u202e" not in str(refused.value) and "\u200b" not in str(refused.value)


def test_special_files_are_never_sent_as_empty_files(tmp_path: Path) -> None:
    from rtcxfer.transfer import SourceError

    with pytest.raises(SourceError, match="/proc or /sys"):
        collect_sources([Path("/proc/self/status")])
    share = tmp_path / "share"
    share.mkdir()
    (share / "ok.txt").write_text("ok")
    os.mkfifo(share / "pipe")
    with pytest.raises(SourceError, match=r"pipe: not a regular file \(a FIFO\)"):
        collect_sources([share])
    skipped: list = []
    sources = collect_sources([share], skip_unreadable=True, skipped=skipped)
    assert [source.entry.name for source in sources] == ["share/ok.txt"]
    assert [(item.path.name, item.reason) for item in skipped] == [
        ("pipe", "not a regular file (a FIFO)")]


def test_paths_past_path_max_are_listed_not_skipped_silently(tmp_path: Path) -> None:
    from rtcxfer.transfer import SourceError

    share = tmp_path / "share"
    share.mkdir()
    (share / "ok.txt").write_text("ok")
    # 40 nested folders of 120 characters: past PATH_MAX (4096), so no path-based call
    # reaches the file at the bottom.
    folder = os.open(share, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(40):
            os.mkdir("d" * 120, dir_fd=folder)
            child = os.open("d" * 120, os.O_RDONLY | os.O_DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = child
        with open("deep.txt", "w", opener=lambda name, flags: os.open(
                name, flags, 0o644, dir_fd=folder)) as deep:
            deep.write("deep")
    finally:
        os.close(folder)

    with pytest.raises(SourceError, match=r"(?s)cannot send 1 path .*File name too long"):
        collect_sources([share])
    skipped: list = []
    sources = collect_sources([share], skip_unreadable=True, skipped=skipped)
    assert [source.entry.name for source in sources] == ["share/ok.txt"]
    assert len(skipped) == 1


def test_symlinks_leaving_the_folder_are_not_followed(tmp_path: Path) -> None:
    from rtcxfer.transfer import SourceError

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    share = tmp_path / "share"
    share.mkdir()
    (share / "own.txt").write_text("own")
    (share / "ref").symlink_to("../outside")
    (share / "loop").symlink_to("..")
    (share / "inner").symlink_to("own.txt")

    with pytest.raises(SourceError, match="a symlink leading out of the folder"):
        collect_sources([share])
    skipped: list = []
    names = [source.entry.name for source in
             collect_sources([share], skip_unreadable=True, skipped=skipped)]
    assert names == ["share/inner", "share/own.txt"]
    assert sorted(item.path.name for item in skipped) == ["loop", "ref"]
    followed = [source.entry.name for source in
                collect_sources([share], follow_symlinks=True, skip_unreadable=True)]
    assert "share/ref/secret.txt" in followed


def test_a_file_and_a_folder_of_one_name_clash_before_connecting(tmp_path: Path) -> None:
    from rtcxfer.transfer import SourceError

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a").write_text("file")
    (tmp_path / "y" / "a").mkdir(parents=True)
    (tmp_path / "y" / "a" / "inner.txt").write_text("in folder")
    with pytest.raises(SourceError, match="a file and a folder"):
        collect_sources([tmp_path / "x" / "a", tmp_path / "y" / "a"])


async def test_a_transfer_that_would_clash_is_refused_before_its_bytes(tmp_path: Path) -> None:
    from rtcxfer.transfer.storage import MAX_PART_KEYS

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = tmp_path / "data.bin"
    write_random(source, 100_000)
    entry = collect_sources([source])[0].entry
    # Every part file of that name is taken by a transfer running right now.
    running = [DownloadFolder(inbox) for _ in range(MAX_PART_KEYS)]
    for folder in running:
        assert folder.unclaimed == [] and folder.claim([entry]) == [0]
    try:
        receiver = Receiving(inbox)
        observer = RecordingObserver()
        async with connected_pair(receiver.on_datachannel) as link:
            with pytest.raises(PeerBusy, match="being received by other transfers"):
                await send_files(link.channel, [collect_sources([source])[0]],
                                 max_message_size=link.max_message_size, observer=observer)
            await receiver.report()
        assert observer.of("file_started") == []  # not one byte was sent
        assert os.listdir(inbox) == []
    finally:
        for folder in running:
            folder.release()
