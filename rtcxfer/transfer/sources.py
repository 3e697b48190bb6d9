"""Turning the paths given to ``rtcxfer send`` into the list of files to send.

Nothing is skipped silently: a path inside a folder that cannot be sent (unreadable,
not a regular file, a broken or looping symlink, a symlink leading out of the folder)
is recorded as :class:`Skipped` with its reason, and :func:`collect_sources` fails
listing them all unless ``skip_unreadable`` is given.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rtcxfer.protocol.transfer import MAX_FILES, FileEntry
from rtcxfer.text import printable
from rtcxfer.transfer.model import SourceError, SourceFile
from rtcxfer.transfer.paths import UnsafeName, split_name

# How many skipped paths an error message lists before "and N more".
SHOWN_SKIPPED = 20


@dataclass(frozen=True)
class Skipped:
    """A path inside a folder being sent that will not be sent, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{printable(self.path)}: {self.reason}"


def collect_sources(paths: Sequence[Path], *, follow_symlinks: bool = False,
                    skip_unreadable: bool = False,
                    skipped: list[Skipped] | None = None) -> list[SourceFile]:
    """Every regular file under ``paths``, each with the name the receiver will see.

    A file is sent under its own name; a folder under its own name followed by the
    relative path of each file inside it (nested folders and empty files included).
    A symlink inside a folder is followed only while its target stays inside that
    folder (``follow_symlinks``: always), and never into a folder already being walked
    (a loop). Special files (FIFOs, sockets, devices) are never sent.

    Raises :class:`SourceError` for a missing path given, a name the receiver would
    refuse, two paths producing the same name (before anything connects), and, unless
    ``skip_unreadable``, for any path inside a folder that had to be skipped (all of
    them listed). ``skipped`` (if given) receives the skipped paths.
    """
    sources: list[SourceFile] = []
    seen: dict[str, Path] = {}
    left_out: list[Skipped] = []
    walk = _Walk(follow_symlinks, left_out)
    for path in paths:
        for source in walk.collect(path):
            earlier = seen.get(source.entry.name)
            if earlier is not None:
                raise SourceError(
                    f"{printable(earlier)} and {printable(source.path)} would both arrive as "
                    f"{printable(source.entry.name)!r}"
                )
            seen[source.entry.name] = source.path
            sources.append(source)
            if len(sources) > MAX_FILES:
                raise SourceError(f"more than {MAX_FILES} files in one transfer")
    _check_folders_against_files(sources)
    if left_out and not skip_unreadable:
        raise skipped_error(left_out)
    if skipped is not None:
        skipped.extend(left_out)
    return sources


def skipped_error(left_out: Sequence[Skipped]) -> SourceError:
    """The failure that lists every path a walk had to skip (without --skip-unreadable)."""
    shown = "\n  ".join(str(item) for item in left_out[:SHOWN_SKIPPED])
    more = (f"\n  (and {len(left_out) - SHOWN_SKIPPED} more)"
            if len(left_out) > SHOWN_SKIPPED else "")
    error = SourceError(
        f"cannot send {len(left_out)} path{'s' if len(left_out) > 1 else ''} "
        f"(--skip-unreadable sends the rest):\n  {shown}{more}"
    )
    error.multiline = True  # each line escaped already (Skipped.__str__)
    return error


def _check_folders_against_files(sources: Sequence[SourceFile]) -> None:
    """``send x/a y/a/``: one name would be a file and a folder; the receiver refuses it."""
    files = {source.entry.name: source.path for source in sources}
    for source in sources:
        parts = source.entry.name.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in files:
                raise SourceError(
                    f"{printable(files[folder])} and {printable(source.path)} would both "
                    f"arrive as {printable(folder)!r} (a file and a folder)"
                )


class _Walk:
    def __init__(self, follow_symlinks: bool, skipped: list[Skipped]) -> None:
        self.follow_symlinks = follow_symlinks
        self.skipped = skipped

    def collect(self, path: Path) -> Iterator[SourceFile]:
        try:
            status = path.stat()
        except FileNotFoundError:
            if path.is_symlink():
                raise SourceError(f"{printable(path)} is a broken symlink") from None
            raise SourceError(f"{printable(path)}: no such file or folder") from None
        except OSError as error:
            raise SourceError(f"cannot read {printable(path)}: {error.strerror}") from None
        name = path.name if path.name not in ("", ".", "..") else path.resolve().name
        if not name:
            raise SourceError(f"{printable(path)} has no name to send it under")
        if stat.S_ISDIR(status.st_mode):
            root = Path(os.path.realpath(path))
            yield from self._walk(path, name, root, {(status.st_dev, status.st_ino)})
        elif stat.S_ISREG(status.st_mode):
            if _pseudo_file(path, status):
                raise SourceError(f"cannot send {printable(path)}: {PSEUDO_FILE}")
            yield _source(path, name, status)
        else:
            raise SourceError(f"{printable(path)} is not a regular file or a folder "
                              f"({_kind(status.st_mode)})")

    def _skip(self, path: Path, reason: str) -> None:
        self.skipped.append(Skipped(path, reason))

    def _walk(self, folder: Path, name: str, root: Path,
              ancestors: set[tuple[int, int]]) -> Iterator[SourceFile]:
        try:
            with os.scandir(folder) as scan:
                children = sorted(scan, key=lambda child: child.name)
        except OSError as error:
            self._skip(folder, f"cannot read the folder: {error.strerror or error}")
            return
        for child in children:
            child_path = Path(child.path)
            child_name = f"{name}/{child.name}"
            try:
                is_link = child.is_symlink()
            except OSError:
                is_link = False
            try:
                status = child.stat()  # follows a symlink, as Path.stat does
            except OSError as error:
                if is_link and error.errno in (errno.ENOENT, errno.ELOOP):
                    reason = ("a symlink that loops" if error.errno == errno.ELOOP
                              else "a broken symlink")
                else:
                    reason = f"cannot read it: {error.strerror or error}"
                self._skip(child_path, reason)
                continue
            if is_link and not self.follow_symlinks and not _inside(child_path, root):
                self._skip(child_path, "a symlink leading out of the folder sent "
                                       "(--follow-symlinks sends its target)")
                continue
            if stat.S_ISDIR(status.st_mode):
                identity = (status.st_dev, status.st_ino)
                if identity in ancestors:
                    self._skip(child_path, "a symlink back to a folder being sent (a loop)")
                    continue
                yield from self._walk(child_path, child_name, root, ancestors | {identity})
            elif stat.S_ISREG(status.st_mode):
                if not os.access(child_path, os.R_OK):
                    self._skip(child_path, "cannot read it: permission denied")
                    continue
                try:
                    split_name(child_name)
                except UnsafeName as error:
                    self._skip(child_path, f"the receiver would refuse its name: {error}")
                    continue
                if _pseudo_file(child_path, status):
                    self._skip(child_path, PSEUDO_FILE)
                    continue
                # Readable and a name the receiver takes: both checked just above.
                yield SourceFile(path=child_path, entry=FileEntry(
                    name=child_name, size=status.st_size, mtime=status.st_mtime))
            else:
                self._skip(child_path, f"not a regular file ({_kind(status.st_mode)})")


PSEUDO_FILE = "its size reads as 0 but it has content (a /proc or /sys file)"


def _pseudo_file(path: Path, status: os.stat_result) -> bool:
    """A "regular" file whose size lies (procfs, sysfs): it would arrive empty."""
    if status.st_size:
        return False
    try:
        with path.open("rb") as file:
            return bool(file.read(1))
    except OSError:
        return False


def _inside(link: Path, root: Path) -> bool:
    """Whether the symlink ``link`` resolves to ``root`` or somewhere below it."""
    target = Path(os.path.realpath(link))
    return target == root or root in target.parents


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _source(path: Path, name: str, status: os.stat_result) -> SourceFile:
    if not os.access(path, os.R_OK):
        raise SourceError(f"cannot read {printable(path)}: permission denied")
    try:
        split_name(name)
    except UnsafeName as error:
        raise SourceError(f"cannot send {printable(path)}: its name {error}") from None
    return SourceFile(
        path=path, entry=FileEntry(name=name, size=status.st_size, mtime=status.st_mtime)
    )


def iter_sources(paths: Sequence[Path], *, follow_symlinks: bool = False,
                 skipped: list[Skipped] | None = None) -> Iterator[SourceFile]:
    """The files of :func:`collect_sources`, one at a time, without its checks across
    paths (duplicate names, file/folder clashes, the rtcxfer/1 file limit): for
    rtcxfer/2, which lists any number of files and checks clashes itself
    (``rtcxfer.transfer.names2``). The same walk: symlinks, special files and
    unreadable paths are recorded in ``skipped``; nothing is dropped silently."""
    walk = _Walk(follow_symlinks, skipped if skipped is not None else [])
    for path in paths:
        yield from walk.collect(path)
