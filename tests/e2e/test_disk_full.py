"""A receiver whose disk fills up: a clear failure, nothing lost, a resume once there is room.

The download folder is a tiny tmpfs mounted for the test (the tests run as root in
CI); where mounting is not permitted the test is skipped.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import CliProcess, json_events, write_random_file

Start = Callable[..., CliProcess]
TIMEOUT = 120.0
DISK = 2 * 1024 * 1024
FILE = 4 * 1024 * 1024
HALF = 3 * 1024 * 1024 // 2
PART = ".big.bin.rtcxfer-part"


def _mount_tmpfs(folder: Path, size: int) -> bool:
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True, check=False,
    )
    return result.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "small-disk"
    folder.mkdir()
    if not _mount_tmpfs(folder, DISK):
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    try:
        yield folder
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run(["umount", "--lazy", str(folder)], check=False, timeout=30)


def test_an_offer_larger_than_the_free_space_is_declined_before_any_byte(
        tmp_path: Path, small_disk: Path, listen: Start, send: Start) -> None:
    source = write_random_file(tmp_path / "out" / "big.bin", FILE)
    listener = listen("bob", small_disk, "--yes")

    sender = send("alice", "bob", source)

    assert sender.wait(TIMEOUT) == 6, sender.stderr
    assert "not enough space: need 4.0 MiB, have" in sender.stderr
    (declined,) = json_events(listener, "declined")
    assert declined["reason"].startswith("not enough space")
    assert list(small_disk.iterdir()) == []  # no part file, no sidecar
    assert listener.popen.poll() is None


def test_disk_filled_by_another_transfer_stops_the_sender_and_resumes_later(
        tmp_path: Path, small_disk: Path, listen: Start, send: Start) -> None:
    # Each offer fits the free space on its own; together they do not, so one of
    # them (or both) runs out mid-file.
    sources = [write_random_file(tmp_path / f"out{n}" / "big.bin", HALF) for n in (1, 2)]
    listener = listen("bob", small_disk, "--yes")

    senders = [send(name, "bob", source) for name, source in zip(("alice", "carol"), sources,
                                                                strict=True)]
    codes = [sender.wait(TIMEOUT) for sender in senders]

    failed = [sender for sender, code in zip(senders, codes, strict=True) if code != 0]
    assert failed, [sender.stderr for sender in senders]
    for sender in failed:
        assert sender.popen.returncode == 8, sender.stderr
        # Stopped by the receiver's error at the failed write, not refused at eof
        # after the whole file went through.
        assert "the receiver reported an error" in sender.stderr, sender.stderr
        assert "disk is full" in sender.stderr
        assert "Traceback" not in sender.stderr
    assert "Traceback" not in listener.stderr
    leftovers = [path for path in small_disk.iterdir() if path.name.endswith(".json")]
    assert all(path.stat().st_size > 0 for path in leftovers), "no empty sidecar"
    assert listener.popen.poll() is None, "the listener keeps serving"

    subprocess.run(["mount", "-o", f"remount,size={4 * DISK}", str(small_disk)], check=True)
    for sender in failed:
        source = sources[senders.index(sender)]
        again = send(sender.args[4], "bob", source)
        assert again.wait(TIMEOUT) == 0, again.stderr
        (started,) = json_events(again, "file_started")
        assert started["offset"] > 0, "resumed from the kept part file"
    landed = sorted(path.name for path in small_disk.iterdir())
    assert landed == ["big (1).bin", "big.bin"], landed
