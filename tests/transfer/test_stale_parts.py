"""listen --keep-parts: old part files are removed, inside the download folder only."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from rtcxfer.transfer.storage import remove_stale_parts

DAY = 86400.0


def age(path: Path, days: float) -> None:
    then = time.time() - days * DAY
    os.utime(path, (then, then), follow_symlinks=False)


def make(path: Path, data: bytes = b"x", days: float = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    age(path, days)
    return path


def test_old_parts_and_their_sidecars_go_recent_ones_stay(tmp_path: Path) -> None:
    root = tmp_path / "in"
    old = make(root / ".report.pdf.rtcxfer-part", b"a" * 100)
    old_meta = make(root / ".report.pdf.rtcxfer-part.json", b"{}")
    deep = make(root / "a" / "b" / ".c.txt~1.rtcxfer-part", b"abc", days=30)
    lone_meta = make(root / "a" / ".gone.rtcxfer-part.json", b"{}", days=30)
    fresh = make(root / ".new.bin.rtcxfer-part", days=1)
    fresh_meta = make(root / ".new.bin.rtcxfer-part.json", days=1)
    # Not ours: an ordinary old file, a file with the suffix but no leading dot.
    ordinary = make(root / "old.txt", days=100)
    unhidden = make(root / "x.rtcxfer-part", days=100)

    removed = remove_stale_parts(root, 7 * DAY)

    assert sorted((part.name, part.size) for part in removed) == [
        (".report.pdf.rtcxfer-part", 100), ("a/.gone.rtcxfer-part.json", 2),
        ("a/b/.c.txt~1.rtcxfer-part", 3)]
    assert all(part.age_seconds > 7 * DAY for part in removed)
    for gone in (old, old_meta, deep, lone_meta):
        assert not gone.exists()
    for kept in (fresh, fresh_meta, ordinary, unhidden):
        assert kept.exists()


def test_symlinks_are_never_followed_nor_removed(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    outside = tmp_path / "outside"
    victim = make(outside / ".secret.rtcxfer-part", b"keep me", days=100)
    (root / "link").symlink_to(outside, target_is_directory=True)
    link_part = root / ".linked.rtcxfer-part"
    link_part.symlink_to(victim)
    age(link_part, 100)

    assert remove_stale_parts(root, 0) == []
    assert victim.read_bytes() == b"keep me"
    assert link_part.is_symlink()


def test_a_part_file_held_by_a_transfer_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "in"
    part = make(root / ".busy.bin.rtcxfer-part", days=30)
    meta = make(root / ".busy.bin.rtcxfer-part.json", days=30)
    fd = os.open(part, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Another open file description: what a second process would see.
        assert remove_stale_parts(root, 7 * DAY) == []
        assert part.exists() and meta.exists()
    finally:
        os.close(fd)
    assert [p.name for p in remove_stale_parts(root, 7 * DAY)] == [".busy.bin.rtcxfer-part"]
    assert not part.exists() and not meta.exists()
