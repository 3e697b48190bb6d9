"""Part files, resume offsets, placing files, and collecting what to send: real disk."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from rtcxfer.protocol.transfer import FileEntry
from rtcxfer.transfer import SourceError, collect_sources, storage
from rtcxfer.transfer.folders2 import FolderCache
from rtcxfer.transfer.storage import DownloadFolder, StorageError, numbered_name, part_names

ENTRY = FileEntry("sub/file.bin", 1000, 1_700_000_000.25)


def plant_part(root: Path, entry: FileEntry, content: bytes, **sidecar: object) -> Path:
    *folders, leaf = entry.name.split("/")
    folder = root.joinpath(*folders)
    folder.mkdir(parents=True, exist_ok=True)
    part, meta = part_names(leaf)
    (folder / part).write_bytes(content)
    recorded = {"size": entry.size, "mtime": entry.mtime} | sidecar
    (folder / meta).write_text(json.dumps(recorded))
    return folder / part


def test_part_names_are_hidden_and_bounded() -> None:
    assert part_names("a.pdf") == (".a.pdf.rtcxfer-part", ".a.pdf.rtcxfer-part.json")
    part, meta = part_names("é" * 127)
    assert len(meta.encode()) <= 255 and part.endswith(".rtcxfer-part")


@pytest.mark.parametrize(("leaf", "numbered"), [
    ("report.pdf", "report (3).pdf"), ("archive.tar.gz", "archive (3).tar.gz"),
    ("Makefile", "Makefile (3)"), (".bashrc", ".bashrc (3)"),
])
def test_numbered_names(leaf: str, numbered: str) -> None:
    assert numbered_name(leaf, 3) == numbered


def test_held_offset_needs_same_size_and_mtime(tmp_path: Path) -> None:
    folder = DownloadFolder(tmp_path)
    assert folder.held_offset(ENTRY) == 0
    plant_part(tmp_path, ENTRY, b"x" * 300)
    assert folder.held_offset(ENTRY) == 300
    assert folder.held_offset(FileEntry(ENTRY.name, 999, ENTRY.mtime)) == 0
    assert folder.held_offset(FileEntry(ENTRY.name, 1000, 5.0)) == 0
    plant_part(tmp_path, ENTRY, b"x" * 1001)
    assert folder.held_offset(ENTRY) == 0


def test_held_offset_ignores_symlinked_parts_and_folders(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    plant_part(outside, ENTRY, b"y" * 10)
    root = tmp_path / "root"
    root.mkdir()
    (root / "sub").symlink_to(outside / "sub")
    assert DownloadFolder(root).held_offset(ENTRY) == 0


def test_resumed_part_is_rehashed_and_completed(tmp_path: Path) -> None:
    content = os.urandom(1000)
    plant_part(tmp_path, ENTRY, content[:400] + b"junk past the offset")
    folder = DownloadFolder(tmp_path)
    part = folder.open_part(ENTRY, 400)
    part.write([content[400:700], content[700:]])
    final = part.finish(hashlib.sha256(content).hexdigest(), ENTRY.mtime, overwrite=False)
    assert final == tmp_path / "sub" / "file.bin"
    assert final.read_bytes() == content
    assert final.stat().st_mtime == ENTRY.mtime
    assert sorted(path.name for path in (tmp_path / "sub").iterdir()) == ["file.bin"]


def test_wrong_hash_removes_the_part(tmp_path: Path) -> None:
    part = DownloadFolder(tmp_path).open_part(ENTRY, 0)
    part.write([b"z" * 1000])
    with pytest.raises(StorageError, match="sha256 mismatch") as failure:
        part.finish("0" * 64, None, overwrite=False)
    assert not failure.value.keep_part
    assert list((tmp_path / "sub").iterdir()) == []


def test_closed_part_is_kept_for_resume(tmp_path: Path) -> None:
    folder = DownloadFolder(tmp_path)
    part = folder.open_part(ENTRY, 0)
    part.write([b"k" * 250])
    part.close()
    assert folder.held_offset(ENTRY) == 250


def test_overwrite_onto_a_folder_fails_and_keeps_the_part(tmp_path: Path) -> None:
    (tmp_path / "sub" / "file.bin").mkdir(parents=True)
    (tmp_path / "sub" / "file.bin" / "inside").write_text("keep me")
    folder = DownloadFolder(tmp_path)
    part = folder.open_part(FileEntry(ENTRY.name, 0, None), 0)
    with pytest.raises(StorageError, match="is a folder") as failure:
        part.finish(hashlib.sha256(b"").hexdigest(), None, overwrite=True)
    assert failure.value.keep_part
    assert (tmp_path / "sub" / "file.bin" / "inside").read_text() == "keep me"


def test_without_overwrite_an_existing_folder_gets_a_numbered_file(tmp_path: Path) -> None:
    (tmp_path / "sub" / "file.bin").mkdir(parents=True)
    part = DownloadFolder(tmp_path).open_part(FileEntry(ENTRY.name, 0, None), 0)
    final = part.finish(hashlib.sha256(b"").hexdigest(), None, overwrite=False)
    assert final == tmp_path / "sub" / "file (1).bin"


def test_a_file_where_a_folder_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sub").write_text("a file, not a folder")
    with pytest.raises(StorageError, match="symlink or not a folder"):
        DownloadFolder(tmp_path).open_part(ENTRY, 0)


# collect_sources --------------------------------------------------------------------


def test_collects_files_and_folders_with_their_names(tmp_path: Path) -> None:
    (tmp_path / "album" / "disc 1").mkdir(parents=True)
    (tmp_path / "album" / "disc 1" / "track.flac").write_bytes(b"123")
    (tmp_path / "album" / "cover.jpg").write_bytes(b"")
    (tmp_path / "note.txt").write_bytes(b"hi")
    os.mkfifo(tmp_path / "album" / "pipe")
    (tmp_path / "album" / "loop").symlink_to(tmp_path / "album")
    (tmp_path / "album" / "linked.txt").symlink_to(tmp_path / "note.txt")
    (tmp_path / "album" / "dangling").symlink_to(tmp_path / "missing")

    with pytest.raises(SourceError, match="cannot send 4 paths"):
        collect_sources([tmp_path / "album", tmp_path / "note.txt"])
    skipped: list = []
    sources = collect_sources([tmp_path / "album", tmp_path / "note.txt"],
                              skip_unreadable=True, skipped=skipped)

    assert [(source.entry.name, source.entry.size) for source in sources] == [
        ("album/cover.jpg", 0), ("album/disc 1/track.flac", 3), ("note.txt", 2),
    ]
    assert sorted(item.path.name for item in skipped) == [
        "dangling", "linked.txt", "loop", "pipe"]
    followed = collect_sources([tmp_path / "album"], skip_unreadable=True,
                               follow_symlinks=True)
    assert "album/linked.txt" in [source.entry.name for source in followed]
    assert sources[1].path == tmp_path / "album" / "disc 1" / "track.flac"
    assert sources[1].entry.mtime == (tmp_path / "album" / "disc 1" / "track.flac").stat(
        ).st_mtime


def test_current_folder_is_sent_under_its_real_name(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "a").write_bytes(b"a")
    monkeypatch.chdir(tmp_path / "here")
    assert [source.entry.name for source in collect_sources([Path(".")])] == ["here/a"]


@pytest.mark.parametrize(("setup", "complaint"), [
    ("missing", "no such file or folder"),
    ("clash", "would both arrive as"),
    ("fifo", "not a regular file"),
    ("reserved", "reserved device name"),
])
def test_unsendable_paths_raise_source_error(tmp_path: Path, setup: str,
                                             complaint: str) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    paths = [tmp_path / "nothing-here"]
    if setup == "clash":
        (one / "same.txt").write_text("1")
        (two / "same.txt").write_text("2")
        paths = [one / "same.txt", two / "same.txt"]
    elif setup == "fifo":
        os.mkfifo(one / "pipe")
        paths = [one / "pipe"]
    elif setup == "reserved":
        (one / "CON").write_text("x")
        paths = [one]
    with pytest.raises(SourceError, match=complaint):
        collect_sources(paths)


def test_two_transfers_of_one_name_do_not_share_a_part_file(tmp_path: Path) -> None:
    folder = DownloadFolder(tmp_path)
    first = folder.open_part(ENTRY, 0)
    with pytest.raises(StorageError, match="another transfer is receiving this file"):
        folder.open_part(ENTRY, 0)
    first.write([b"a" * 10])
    first.close()
    second = folder.open_part(ENTRY, 10)
    assert second.held == 10
    second.close()


# placing without clobbering: renameat2(RENAME_NOREPLACE), else link + unlink -------


@pytest.mark.parametrize("renameat2", [True, False], ids=["renameat2", "link-unlink"])
def test_placing_never_replaces_an_existing_file(tmp_path: Path, renameat2: bool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    if not renameat2:
        monkeypatch.setattr(storage, "_RENAMEAT2", None)
    elif storage._RENAMEAT2 is None:
        pytest.skip("this system has no renameat2")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "file.bin").write_text("already here")
    part = DownloadFolder(tmp_path).open_part(FileEntry(ENTRY.name, 3, None), 0)
    part.write([b"new"])
    final = part.finish(hashlib.sha256(b"new").hexdigest(), None, overwrite=False)
    assert final == tmp_path / "sub" / "file (1).bin"
    assert final.read_bytes() == b"new"
    assert (tmp_path / "sub" / "file.bin").read_text() == "already here"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["file (1).bin",
                                                                    "file.bin"]


def test_rename_noreplace_answers_for_each_case(tmp_path: Path) -> None:
    if storage._RENAMEAT2 is None:
        pytest.skip("this system has no renameat2")
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    folder = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert storage.rename_noreplace(folder, "a", "b") is False
        assert (tmp_path / "a").read_text() == "a" and (tmp_path / "b").read_text() == "b"
        assert storage.rename_noreplace(folder, "a", "c") is True
        assert not (tmp_path / "a").exists() and (tmp_path / "c").read_text() == "a"
        with pytest.raises(FileNotFoundError):
            storage.rename_noreplace(folder, "missing", "d")
    finally:
        os.close(folder)


def test_a_small_part_takes_another_key_while_one_is_locked(tmp_path: Path) -> None:
    cache = FolderCache(tmp_path)
    try:
        first = cache.new_small_part(("sub", "file.bin"))
        assert not first.sidecar  # made with O_EXCL: nothing beside it to remove later
        second = cache.new_small_part(("sub", "file.bin"))  # first holds its lock
        assert second.part != first.part and second.sidecar
        first.close()
        second.close()
        third = cache.new_small_part(("sub", "file.bin"))  # an unlocked leftover: reused
        assert third.part == first.part and third.sidecar
        third.write([b"abc"])
        final = third.finish(hashlib.sha256(b"abc").hexdigest(), None, overwrite=False)
        assert final.read_bytes() == b"abc"
    finally:
        cache.close()


@pytest.mark.parametrize("listed_names", [4096, 1], ids=["listed", "folder-too-large"])
def test_lookup_finds_what_is_held_with_or_without_a_listing(
        tmp_path: Path, listed_names: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from rtcxfer.transfer import folders2
    monkeypatch.setattr(folders2, "MAX_LISTED_NAMES", listed_names)
    (tmp_path / "sub").mkdir()
    done = tmp_path / "sub" / "done.bin"
    done.write_bytes(b"12345")
    os.utime(done, (1_000_000_000, 1_000_000_000))
    folder = DownloadFolder(tmp_path)
    held = folder.open_part(FileEntry("sub/cut.bin", 10, 1_000_000_000.0), 0)
    held.write([b"abc"])
    held.close()
    cache = FolderCache(tmp_path)
    try:
        assert cache.lookup(("sub", "done.bin"), 5, 1_000_000_000.0) == ("complete", 5)
        assert cache.lookup(("sub", "done.bin"), 5, 1_000_000_001.0) == ("", 0)
        assert cache.lookup(("sub", "cut.bin"), 10, 1_000_000_000.0) == ("part", 3)
        assert cache.lookup(("sub", "new.bin"), 10, 1_000_000_000.0) == ("", 0)
        assert cache.lookup(("gone", "x", "new.bin"), 1, None) == ("", 0)
        assert len(cache.listings) == 2  # sub and gone/x: each looked at once
    finally:
        cache.close()
