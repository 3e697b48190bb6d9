"""The receiver's disk: part files, resume, verification and the move into place.

Everything here blocks; the receiver driver runs it in its disk thread, never on the
event loop.

Layout: file ``docs/a.pdf`` is written to ``docs/.a.pdf.rtcxfer-part`` next to a
sidecar ``docs/.a.pdf.rtcxfer-part.json`` holding the announced ``size`` and ``mtime``.
A later offer of the same name, size and mtime resumes from the bytes in the part file.
(When ``.<name>.rtcxfer-part.json`` would exceed 255 bytes, both use
``.<32 hex digits of sha256(name)>`` instead of ``.<name>``.)

Safety: every folder below the download folder is opened with ``O_NOFOLLOW`` relative
to its parent's descriptor, and every file operation goes through those descriptors,
so a symlink already inside the download folder is never followed out of it. A part
file is ``flock``-ed while open, so two transfers of one name never share it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rtcxfer.protocol.transfer import FileEntry
from rtcxfer.transfer.paths import MAX_COMPONENT_BYTES, PART_SUFFIX, split_name

READ_BLOCK = 1024 * 1024
# Files that cannot keep their name get "name (1).ext" ... up to this many tries.
MAX_NUMBERED_NAMES = 10_000

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LINK_UNSUPPORTED = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


class StorageError(Exception):
    """A file that could not be written or placed. ``keep_part``: worth resuming later."""

    def __init__(self, reason: str, *, keep_part: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.keep_part = keep_part


def part_names(leaf: str) -> tuple[str, str]:
    """The part file and sidecar names for a file called ``leaf``."""
    stem = f".{leaf}"
    if len(f"{stem}{PART_SUFFIX}.json".encode()) > MAX_COMPONENT_BYTES:
        stem = "." + hashlib.sha256(leaf.encode()).hexdigest()[:32]
    return f"{stem}{PART_SUFFIX}", f"{stem}{PART_SUFFIX}.json"


def numbered_name(leaf: str, number: int) -> str:
    """``report.pdf`` -> ``report (1).pdf``; the extension starts at the first inner dot."""
    dot = leaf.find(".", 1)
    if dot == -1:
        return f"{leaf} ({number})"
    return f"{leaf[:dot]} ({number}){leaf[dot:]}"


def _describe(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return "the receiver's disk is full"
    if error.errno == errno.EDQUOT:
        return "the receiver's disk quota is exhausted"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "the receiver has no permission to write there"
    return f"the receiver cannot write the file: {error.strerror or error}"


class DownloadFolder:
    """The folder files land in, as seen through descriptors that never follow symlinks."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def held_offsets(self, entries: Sequence[FileEntry]) -> list[int]:
        """For each entry, how many of its bytes an earlier partial download left."""
        return [self.held_offset(entry) for entry in entries]

    def held_offset(self, entry: FileEntry) -> int:
        components = split_name(entry.name)
        part, meta = part_names(components[-1])
        try:
            folder = _open_folder(self.root, components[:-1], create=False)
        except (OSError, StorageError):
            return 0
        try:
            with open(meta, "rb", opener=_opener(folder)) as sidecar:
                recorded = json.loads(sidecar.read(4096))
            held = os.stat(part, dir_fd=folder, follow_symlinks=False)
        except (OSError, ValueError):
            return 0
        finally:
            os.close(folder)
        if not isinstance(recorded, dict) or not stat.S_ISREG(held.st_mode):
            return 0
        if recorded.get("size") != entry.size or recorded.get("mtime") != entry.mtime:
            return 0
        return held.st_size if held.st_size <= entry.size else 0

    def open_part(self, entry: FileEntry, offset: int) -> PartFile:
        """The part file of ``entry`` holding its first ``offset`` bytes, ready to append."""
        components = split_name(entry.name)
        part, meta = part_names(components[-1])
        with contextlib.ExitStack() as cleanup:
            folder = _open_folder(self.root, components[:-1], create=True)
            cleanup.callback(os.close, folder)
            try:
                fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o666, dir_fd=folder)
            except OSError as error:
                raise StorageError(_describe(error), keep_part=False) from None
            cleanup.callback(os.close, fd)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StorageError(f"{entry.name}: its part file is not a regular file",
                                   keep_part=False)
            try:
                # Held until the part is closed: two transfers of the same name at
                # once would otherwise interleave their bytes in one part file.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StorageError("another transfer is receiving this file right now",
                                   keep_part=True) from None
            digest = hashlib.sha256()
            try:
                _hash_prefix(fd, offset, digest)
                os.ftruncate(fd, offset)
                os.lseek(fd, offset, os.SEEK_SET)
                with open(meta, "w", opener=_opener(folder, os.O_WRONLY | os.O_CREAT
                                                    | os.O_TRUNC)) as sidecar:
                    json.dump({"size": entry.size, "mtime": entry.mtime}, sidecar)
            except OSError as error:
                raise StorageError(_describe(error), keep_part=True) from None
            cleanup.pop_all()
        return PartFile(self.root, components, folder, fd, digest, offset)


def _opener(folder: int, flags: int | None = None) -> Callable[[str, int], int]:
    """An ``opener`` for :func:`open` that opens names inside ``folder`` only."""

    def open_in_folder(name: str, default_flags: int) -> int:
        chosen = default_flags if flags is None else flags
        return os.open(name, chosen | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=folder)

    return open_in_folder


def _open_folder(root: Path, components: Sequence[str], *, create: bool) -> int:
    """A descriptor of ``root/components...``, refusing symlinks and non-folders."""
    try:
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise StorageError(f"the download folder {root} is unusable: {error.strerror}",
                           keep_part=False) from None
    for depth, component in enumerate(components):
        try:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(component, 0o777, dir_fd=folder)
            child = os.open(component, _FOLDER_FLAGS, dir_fd=folder)
        except OSError as error:
            os.close(folder)
            shown = "/".join(components[: depth + 1])
            if error.errno in (errno.ELOOP, errno.ENOTDIR):
                raise StorageError(f"{shown!r} on the receiver is a symlink or not a folder",
                                   keep_part=False) from None
            if not create and error.errno == errno.ENOENT:
                raise
            raise StorageError(_describe(error), keep_part=False) from None
        os.close(folder)
        folder = child
    return folder


def _hash_prefix(fd: int, length: int, digest: hashlib._Hash) -> None:
    os.lseek(fd, 0, os.SEEK_SET)
    remaining = length
    while remaining:
        block = os.read(fd, min(READ_BLOCK, remaining))
        if not block:
            raise StorageError("the part file is shorter than when the transfer began",
                               keep_part=False)
        digest.update(block)
        remaining -= len(block)


class PartFile:
    """An open part file: append, then verify and place, or discard, or keep for later."""

    def __init__(self, root: Path, components: tuple[str, ...], folder: int, fd: int,
                 digest: hashlib._Hash, held: int) -> None:
        self.root = root
        self.components = components
        self.part, self.meta = part_names(components[-1])
        self.folder = folder
        self.fd: int | None = fd
        self.digest = digest
        self.held = held

    def write(self, chunks: Sequence[bytes]) -> None:
        """Append ``chunks``; on failure the part keeps what reached the disk."""
        if self.fd is None:
            raise StorageError("the part file is already closed", keep_part=True)
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    written = os.write(self.fd, view)
                    self.digest.update(view[:written])
                    self.held += written
                    view = view[written:]
        except OSError as error:
            raise StorageError(_describe(error), keep_part=True) from None

    def finish(self, sha256: str, mtime: float | None, *, overwrite: bool) -> Path:
        """Check the whole file against ``sha256``, flush it and move it into place."""
        actual = self.digest.hexdigest()
        if actual != sha256:
            self.discard()
            raise StorageError(
                f"sha256 mismatch (announced {sha256[:16]}..., received {actual[:16]}...)",
                keep_part=False,
            )
        assert self.fd is not None
        try:
            if mtime is not None:
                os.utime(self.fd, times=(time.time(), mtime))
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None
            leaf = self._place(overwrite=overwrite)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.meta, dir_fd=self.folder)
            os.fsync(self.folder)
        except OSError as error:
            self.close()
            raise StorageError(_describe(error), keep_part=True) from None
        self.close()
        return self.root.joinpath(*self.components[:-1], leaf)

    def _place(self, *, overwrite: bool) -> str:
        leaf = self.components[-1]
        if overwrite:
            try:
                os.replace(self.part, leaf, src_dir_fd=self.folder, dst_dir_fd=self.folder)
            except IsADirectoryError:
                raise StorageError(f"{leaf!r} is a folder on the receiver",
                                   keep_part=True) from None
            return leaf
        for number in range(MAX_NUMBERED_NAMES):
            candidate = leaf if number == 0 else numbered_name(leaf, number)
            if self._place_without_clobbering(candidate):
                return candidate
        raise StorageError(f"{leaf!r} and {MAX_NUMBERED_NAMES} numbered variants all exist",
                           keep_part=True)

    def _place_without_clobbering(self, candidate: str) -> bool:
        # link() fails if the name exists, so no concurrent writer can be overwritten;
        # filesystems without hard links get an O_EXCL placeholder renamed over instead.
        try:
            os.link(self.part, candidate, src_dir_fd=self.folder, dst_dir_fd=self.folder,
                    follow_symlinks=False)
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in _LINK_UNSUPPORTED:
                raise
            try:
                placeholder = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                                      | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=self.folder)
            except FileExistsError:
                return False
            os.close(placeholder)
            os.rename(self.part, candidate, src_dir_fd=self.folder, dst_dir_fd=self.folder)
            return True
        os.unlink(self.part, dir_fd=self.folder)
        return True

    def discard(self) -> None:
        """Delete the part file and its sidecar: what they hold is worthless."""
        for name in (self.part, self.meta):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self.folder)
        self.close()

    def close(self) -> None:
        """Release the descriptors; the part file (if any) stays for a later resume."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.folder >= 0:
            os.close(self.folder)
            self.folder = -1
