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
from support import CliProcess, json_events, sha256_of, wait_for_event, write_random_file

Start = Callable[..., CliProcess]
TIMEOUT = 120.0
DISK = 2 * 1024 * 1024
FILE = 4 * 1024 * 1024
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


def test_disk_full_fails_clearly_keeps_the_part_and_resumes(
        tmp_path: Path, small_disk: Path, listen: Start, send: Start) -> None:
    source = write_random_file(tmp_path / "out" / "big.bin", FILE)
    listener = listen("bob", small_disk, "--yes")

    first = send("alice", "bob", source)
    assert first.wait(TIMEOUT) == 8, first.stderr
    assert "disk is full" in first.stderr
    assert "big.bin" in first.stderr
    assert "Traceback" not in first.stderr + listener.stderr
    (done,) = json_events(listener, "file_done")
    assert done["ok"] is False and "disk is full" in done["reason"]
    assert not (small_disk / "big.bin").exists()
    kept = (small_disk / PART).stat().st_size
    assert 0 < kept < FILE
    assert listener.popen.poll() is None, "the listener keeps serving"

    # The person frees space; sending again resumes from what the part file holds.
    subprocess.run(["mount", "-o", f"remount,size={4 * DISK}", str(small_disk)], check=True)
    second = send("alice", "bob", source)
    assert second.wait(TIMEOUT) == 0, second.stderr
    (started,) = json_events(second, "file_started")
    assert started["offset"] == kept
    wait_for_event(listener, "summary", peer="alice", timeout=TIMEOUT)
    assert sha256_of(small_disk / "big.bin") == sha256_of(source)
    assert not (small_disk / PART).exists()
