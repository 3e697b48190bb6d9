"""A receiver whose disk is too small: a clear decline before any byte, then a transfer
once there is room. (A disk that fills up mid-file: tests/transfer/test_hardening.py.)

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

    # Once there is room, the same send goes through.
    subprocess.run(["mount", "-o", f"remount,size={4 * DISK}", str(small_disk)], check=True)
    again = send("alice", "bob", source)
    assert again.wait(TIMEOUT) == 0, again.stderr
    wait_for_event(listener, "summary", peer="alice", timeout=TIMEOUT)
    assert sha256_of(small_disk / "big.bin") == sha256_of(source)
    assert sorted(path.name for path in small_disk.iterdir()) == ["big.bin"]
