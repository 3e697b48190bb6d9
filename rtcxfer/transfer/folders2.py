"""Folder descriptors for the rtcxfer/2 receiver: opened once, reused for many files.

rtcxfer/1 opens every folder of a file's path for each file (``storage._open_folder``);
a folder of 100,000 small files nested 20 deep would cost millions of ``open`` calls.
:class:`FolderCache` keeps the descriptors of recently used folders (every one opened
with ``O_NOFOLLOW`` relative to its parent, so the same symlink rule holds) and makes
small files without a resume sidecar: a file that arrives whole in one frame needs none.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
from collections import OrderedDict
from pathlib import Path

from rtcxfer.transfer.storage import MAX_PART_KEYS, PartFile, StorageError, part_names

MAX_OPEN_FOLDERS = 64
# lookup() keeps the names of this many folders, each if it holds at most so many.
MAX_LISTINGS = 16
MAX_LISTED_NAMES = 4096
# Sentinels, told apart by identity (no file name holds a NUL).
_MISSING: frozenset[str] = frozenset({"\0missing"})
_LARGE: frozenset[str] = frozenset({"\0large"})
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_PART_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class FolderCache:
    """Descriptors of folders below ``root`` (keys: component tuples; ``()`` is root)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.open: OrderedDict[tuple[str, ...], int] = OrderedDict()
        self.listings: OrderedDict[tuple[str, ...], frozenset[str]] = OrderedDict()

    def get(self, components: tuple[str, ...], *, create: bool) -> int | None:
        """A descriptor of the folder (owned by the cache), or None if it does not exist
        and ``create`` is False. Raises :class:`StorageError` for a symlink or a file."""
        fd = self.open.get(components)
        if fd is not None:
            self.open.move_to_end(components)
            return fd
        if not components:
            try:
                fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as error:
                raise StorageError(f"the download folder {self.root} is unusable: "
                                   f"{error.strerror}", keep_part=False) from None
        else:
            parent = self.get(components[:-1], create=create)
            if parent is None:
                return None
            name = components[-1]
            try:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o777, dir_fd=parent)
                fd = os.open(name, _FOLDER_FLAGS, dir_fd=parent)
            except OSError as error:
                if error.errno == errno.ENOENT and not create:
                    return None
                shown = "/".join(components)
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise StorageError(f"{shown!r} on the receiver is a symlink or not a "
                                       "folder", keep_part=False) from None
                raise StorageError(f"cannot create the folder {shown!r}: {error.strerror}",
                                   keep_part=False) from None
        self.open[components] = fd
        while len(self.open) > MAX_OPEN_FOLDERS:
            _, oldest = self.open.popitem(last=False)
            os.close(oldest)
        return fd

    def close(self) -> None:
        for fd in self.open.values():
            os.close(fd)
        self.open.clear()

    def lookup(self, components: tuple[str, ...], size: int, mtime: float | None,
               ) -> tuple[str, int]:
        """What is held of a file: ("part", bytes) with a resume sidecar, ("complete",
        size) when the file itself is in place with this size and mtime, else ("", 0)."""
        listing = self._listing(components[:-1])
        if listing is _MISSING:
            return "", 0
        part, meta = part_names(components[-1])
        if listing is not _LARGE and meta not in listing and components[-1] not in listing:
            return "", 0  # the usual case of a new file: no system call
        folder = self.get(components[:-1], create=False)
        if folder is None:
            return "", 0
        try:
            with open(meta, "rb", opener=lambda name, flags: os.open(
                    name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)) as sidecar:
                recorded = json.loads(sidecar.read(4096))
            held = os.stat(part, dir_fd=folder, follow_symlinks=False)
            if (isinstance(recorded, dict) and stat.S_ISREG(held.st_mode)
                    and recorded.get("size") == size and recorded.get("mtime") == mtime
                    and held.st_size <= size):
                return "part", held.st_size
        except (OSError, ValueError):
            pass
        if mtime is None:
            return "", 0
        try:
            status = os.stat(components[-1], dir_fd=folder, follow_symlinks=False)
        except OSError:
            return "", 0
        if (stat.S_ISREG(status.st_mode) and status.st_size == size
                and abs(status.st_mtime_ns - round(mtime * 1e9)) <= 2000):
            return "complete", size
        return "", 0

    def _listing(self, folder: tuple[str, ...]) -> frozenset[str]:
        """The names in ``folder`` when first looked at (``_MISSING`` if it was not
        there or unusable, ``_LARGE`` if it held too many to keep): one ``getdents``
        per folder instead of two failing lookups per new file. A name that appears
        later can only come from this transfer (whose names never clash) or from
        someone else at the same time; either way the file is simply sent whole."""
        listing = self.listings.get(folder)
        if listing is not None:
            self.listings.move_to_end(folder)
            return listing
        try:
            fd = self.get(folder, create=False)
            names = os.listdir(fd) if fd is not None else None
        except (StorageError, OSError):
            names = None
        if names is None:
            listing = _MISSING
        elif len(names) > MAX_LISTED_NAMES:
            listing = _LARGE
        else:
            listing = frozenset(names)
        self.listings[folder] = listing
        while len(self.listings) > MAX_LISTINGS:
            self.listings.popitem(last=False)
        return listing

    def new_small_part(self, components: tuple[str, ...]) -> PartFile:
        """An empty part file for a file that will arrive whole (no resume sidecar)."""
        folder = self.get(components[:-1], create=True)
        assert folder is not None
        # The usual case: no part file of this name yet. O_EXCL makes a new regular file
        # (so no fstat, no truncate), and no sidecar sits beside it to clean up later.
        part, _ = part_names(components[-1])
        try:
            fd = os.open(part, _NEW_PART_FLAGS, 0o666, dir_fd=folder)
        except FileExistsError:
            pass
        except OSError as error:
            raise StorageError(f"cannot create the file: {error.strerror}",
                               keep_part=False) from None
        else:
            try:
                # Held until the file is placed: a concurrent transfer of this name
                # skips a locked part file (below) instead of truncating it.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                own_folder = os.dup(folder)
            except BlockingIOError:  # that transfer opened it first: take another key
                os.close(fd)
            except BaseException:
                os.close(fd)
                raise
            else:
                return PartFile(self.root, components, own_folder, fd, hashlib.sha256(),
                                0, sidecar=False)
        # Another transfer receiving the same name holds its part file locked: take the
        # next key (.name~1.rtcxfer-part, ...), so concurrent copies all land, numbered.
        for key in range(MAX_PART_KEYS):
            part, _ = part_names(components[-1], key)
            try:
                fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o666, dir_fd=folder)
            except OSError as error:
                raise StorageError(f"cannot create the file: {error.strerror}",
                                   keep_part=False) from None
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise StorageError("its part file is not a regular file", keep_part=False)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                os.ftruncate(fd, 0)
                own_folder = os.dup(folder)
            except BaseException:
                os.close(fd)
                raise
            return PartFile(self.root, components, own_folder, fd, hashlib.sha256(), 0,
                            key=key)
        raise StorageError("too many transfers are receiving this file right now",
                           keep_part=True)

    def hash_in_place(self, components: tuple[str, ...]) -> hashlib._Hash:
        folder = self.get(components[:-1], create=False)
        if folder is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", "/".join(components))
        fd = os.open(components[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
        digest = hashlib.sha256()
        with os.fdopen(fd, "rb") as file:
            while block := file.read(1024 * 1024):
                digest.update(block)
        return digest
