"""Turning the paths given to ``rtcxfer send`` into the list of files to send."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from rtcxfer.protocol.transfer import MAX_FILES, FileEntry
from rtcxfer.transfer.model import SourceError, SourceFile
from rtcxfer.transfer.paths import UnsafeName, split_name


def collect_sources(paths: Sequence[Path]) -> list[SourceFile]:
    """Every regular file under ``paths``, each with the name the receiver will see.

    A file is sent under its own name; a folder under its own name followed by the
    relative path of each file inside it (nested folders and empty files included).
    Symlinks are followed, except into a folder already being walked (a loop); other
    special files (sockets, devices, FIFOs) are skipped. Raises :class:`SourceError`
    for a missing or unreadable path, a name the receiver would refuse, or two paths
    producing the same name.
    """
    sources: list[SourceFile] = []
    seen: dict[str, Path] = {}
    for path in paths:
        for source in _collect_one(path):
            earlier = seen.get(source.entry.name)
            if earlier is not None:
                raise SourceError(
                    f"{earlier} and {source.path} would both arrive as {source.entry.name!r}"
                )
            seen[source.entry.name] = source.path
            sources.append(source)
            if len(sources) > MAX_FILES:
                raise SourceError(f"more than {MAX_FILES} files in one transfer")
    return sources


def _collect_one(path: Path) -> Iterator[SourceFile]:
    try:
        status = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise SourceError(f"{path} is a broken symlink") from None
        raise SourceError(f"{path}: no such file or folder") from None
    except OSError as error:
        raise SourceError(f"cannot read {path}: {error.strerror}") from None
    name = path.name if path.name not in ("", ".", "..") else path.resolve().name
    if not name:
        raise SourceError(f"{path} has no name to send it under")
    if stat.S_ISDIR(status.st_mode):
        yield from _walk(path, name, {(status.st_dev, status.st_ino)})
    elif stat.S_ISREG(status.st_mode):
        yield _source(path, name, status)
    else:
        raise SourceError(f"{path} is not a regular file or a folder")


def _walk(folder: Path, name: str, ancestors: set[tuple[int, int]]) -> Iterator[SourceFile]:
    try:
        with os.scandir(folder) as scan:
            children = sorted(scan, key=lambda child: child.name)
    except OSError as error:
        raise SourceError(f"cannot read the folder {folder}: {error.strerror}") from None
    for child in children:
        child_path = Path(child.path)
        child_name = f"{name}/{child.name}"
        try:
            status = child_path.stat()
        except OSError:
            # A broken symlink, or one that loops on itself: nothing to send.
            continue
        if stat.S_ISDIR(status.st_mode):
            identity = (status.st_dev, status.st_ino)
            if identity in ancestors:
                continue
            yield from _walk(child_path, child_name, ancestors | {identity})
        elif stat.S_ISREG(status.st_mode):
            yield _source(child_path, child_name, status)


def _source(path: Path, name: str, status: os.stat_result) -> SourceFile:
    if not os.access(path, os.R_OK):
        raise SourceError(f"cannot read {path}: permission denied")
    try:
        split_name(name)
    except UnsafeName as error:
        raise SourceError(f"cannot send {path}: its name {error}") from None
    return SourceFile(
        path=path, entry=FileEntry(name=name, size=status.st_size, mtime=status.st_mtime)
    )


def iter_sources(paths: Sequence[Path]) -> Iterator[SourceFile]:
    """The files of :func:`collect_sources`, one at a time, without its checks across
    paths (duplicate names, the rtcxfer/1 file limit): for rtcxfer/2, which lists any
    number of files and checks clashes itself (``rtcxfer.transfer.names2``)."""
    for path in paths:
        yield from _collect_one(path)
