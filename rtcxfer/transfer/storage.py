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
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rtcxfer.protocol.transfer import FileEntry
from rtcxfer.transfer.paths import MAX_COMPONENT_BYTES, PART_SUFFIX, UnsafeName, split_name

READ_BLOCK = 1024 * 1024
# Files that cannot keep their name get "name (1).ext" ... up to this many tries.
MAX_NUMBERED_NAMES = 10_000

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LINK_UNSUPPORTED = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}
# renameat2() answers these where the kernel or the filesystem lacks RENAME_NOREPLACE.
_NOREPLACE_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}
_RENAME_NOREPLACE = 1


def _load_renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    """Linux renameat2(2) from the C library (glibc 2.28+), or None."""
    if not hasattr(os, "sched_getaffinity"):  # not Linux
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_RENAMEAT2 = _load_renameat2()


def rename_noreplace(folder: int, source: str, target: str) -> bool | None:
    """Rename ``source`` to ``target`` inside ``folder`` unless ``target`` exists, in
    one system call: True when renamed, False when ``target`` exists, None when this
    system cannot (no renameat2 or no RENAME_NOREPLACE here). Raises :class:`OSError`."""
    if _RENAMEAT2 is None:
        return None
    if _RENAMEAT2(folder, os.fsencode(source), folder, os.fsencode(target),
                  _RENAME_NOREPLACE) == 0:
        return True
    error = ctypes.get_errno()
    if error == errno.EEXIST:
        return False
    if error in _NOREPLACE_UNSUPPORTED:
        return None
    raise OSError(error, os.strerror(error), target)


class StorageError(Exception):
    """A file that could not be written or placed. ``keep_part``: worth resuming later."""

    def __init__(self, reason: str, *, keep_part: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.keep_part = keep_part


# Concurrent transfers of one name get part files with keys 1, 2, ... (see claim()).
MAX_PART_KEYS = 64


def part_names(leaf: str, key: int = 0) -> tuple[str, str]:
    """The part file and sidecar names for a file called ``leaf`` (``key``: see claim())."""
    tag = f"~{key}" if key else ""
    stem = f".{leaf}{tag}"
    if len(f"{stem}{PART_SUFFIX}.json".encode()) > MAX_COMPONENT_BYTES:
        stem = "." + hashlib.sha256(leaf.encode()).hexdigest()[:32] + tag
    return f"{stem}{PART_SUFFIX}", f"{stem}{PART_SUFFIX}.json"


def _cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` that fits in ``max_bytes`` bytes of UTF-8."""
    return text.encode()[:max(0, max_bytes)].decode(errors="ignore")


def numbered_name(leaf: str, number: int) -> str:
    """``report.pdf`` -> ``report (1).pdf``; the extension starts at the first inner dot.

    The result never exceeds 255 bytes: the stem (then, if need be, the extension) is
    shortened to make room for the number.
    """
    tag = f" ({number})"
    dot = leaf.find(".", 1)
    stem, extension = (leaf, "") if dot == -1 else (leaf[:dot], leaf[dot:])
    room = MAX_COMPONENT_BYTES - len(tag.encode()) - len(extension.encode())
    if room >= 1:
        return _cut_utf8(stem, room) + tag + extension
    # An "extension" too long to keep whole: keep the start of the name instead.
    return _cut_utf8(leaf, MAX_COMPONENT_BYTES - len(tag.encode())) + tag


def _format_bytes(size: float) -> str:
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TiB"


def space_problem(root: Path, needed: int) -> str | None:
    """``not enough space: need X, have Y`` when ``needed`` bytes do not fit under ``root``."""
    try:
        usage = os.statvfs(root)
    except OSError:
        return None  # the folder's own problems are reported when it is opened
    available = usage.f_bavail * usage.f_frsize
    if needed > available:
        return (f"not enough space: need {_format_bytes(needed)}, "
                f"have {_format_bytes(available)}")
    return None


# Part files claimed by transfers of this process: (root, folder components, leaf, key).
_claims: set[tuple[str, tuple[str, ...], int]] = set()
_claims_lock = threading.Lock()


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
        self._root_key = os.path.realpath(root)
        # name -> part key claimed by this transfer (claim()); absent: key 0.
        self._keys: dict[str, int] = {}
        # Names claim() found no free part file for (MAX_PART_KEYS transfers at once).
        self.unclaimed: list[str] = []

    def claim(self, entries: Sequence[FileEntry]) -> list[int]:
        """Reserve a part file for each entry; return the bytes each already holds.

        Two transfers of one name at once (in this process, or in another one holding
        the part's lock) get different part files, so neither waits for nor fails on
        the other, and the later one lands as ``name (1).ext``. Call :meth:`release`
        when the transfer ends.
        """
        offsets = []
        for entry in entries:
            components = split_name(entry.name)
            key = self._claim_key(components)
            if key is None:
                self.unclaimed.append(entry.name)
                offsets.append(0)
                continue
            self._keys[entry.name] = key
            offsets.append(self.held_offset(entry, key))
        return offsets

    def _claim_key(self, components: tuple[str, ...]) -> int | None:
        with _claims_lock:
            for key in range(MAX_PART_KEYS):
                claim = (self._root_key, components, key)
                if claim in _claims or self._locked_elsewhere(components, key):
                    continue
                _claims.add(claim)
                return key
        return None  # every key busy

    def _locked_elsewhere(self, components: tuple[str, ...], key: int) -> bool:
        part, _meta = part_names(components[-1], key)
        try:
            folder = _open_folder(self.root, components[:-1], create=False)
        except (OSError, StorageError):
            return False
        try:
            fd = os.open(part, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
        except OSError:
            return False
        finally:
            os.close(folder)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def claim_fresh(self, entry: FileEntry) -> bool:
        """Reserve a part file for ``entry`` that no other transfer holds, for a file
        received from its first byte (rtcxfer/2 asks when the usual part file is busy);
        False if every key is. :meth:`release` gives it back."""
        key = self._claim_key(split_name(entry.name))
        if key is None:
            return False
        self._keys[entry.name] = key
        return True

    def release(self) -> None:
        """Give back the part files reserved by :meth:`claim`."""
        with _claims_lock:
            for name, key in self._keys.items():
                with contextlib.suppress(UnsafeName):
                    _claims.discard((self._root_key, split_name(name), key))
        self._keys.clear()
        self.unclaimed.clear()

    def held_offsets(self, entries: Sequence[FileEntry]) -> list[int]:
        """For each entry, how many of its bytes an earlier partial download left."""
        return [self.held_offset(entry) for entry in entries]

    def held_offset(self, entry: FileEntry, key: int = 0) -> int:
        components = split_name(entry.name)
        part, meta = part_names(components[-1], key)
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
        key = self._keys.get(entry.name, 0)
        part, meta = part_names(components[-1], key)
        with contextlib.ExitStack() as cleanup:
            folder = _open_folder(self.root, components[:-1], create=True)
            cleanup.callback(os.close, folder)
            fd = _open_locked_part(part, folder, entry.name)
            cleanup.callback(os.close, fd)
            digest = hashlib.sha256()
            try:
                _hash_prefix(fd, offset, digest)
                os.ftruncate(fd, offset)
                os.lseek(fd, offset, os.SEEK_SET)
                _write_sidecar(meta, folder, entry)
            except OSError as error:
                if offset == 0:
                    # Nothing worth keeping: no empty part file left behind either.
                    with contextlib.suppress(OSError):
                        os.unlink(part, dir_fd=folder)
                raise StorageError(_describe(error), keep_part=offset > 0) from None
            cleanup.pop_all()
        return PartFile(self.root, components, folder, fd, digest, offset, key=key)


def _open_locked_part(part: str, folder: int, name: str) -> int:
    """Open (or create) ``part`` in ``folder`` and take its lock; the fd."""
    for _attempt in range(3):
        try:
            fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o666, dir_fd=folder)
        except OSError as error:
            raise StorageError(_describe(error), keep_part=False) from None
        try:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode):
                raise StorageError(f"{name}: its part file is not a regular file",
                                   keep_part=False)
            try:
                # Held until the part is placed or closed: two transfers of the same
                # name at once would otherwise interleave their bytes in one part file.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StorageError("another transfer is receiving this file right now",
                                   keep_part=True) from None
            # The holder we waited for may have moved the part into place meanwhile:
            # the name must still lead to the inode we locked.
            try:
                current = os.stat(part, dir_fd=folder, follow_symlinks=False)
            except FileNotFoundError:
                current = None
            if current is not None and (current.st_dev, current.st_ino) == (
                    status.st_dev, status.st_ino):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise StorageError("another transfer is receiving this file right now", keep_part=True)


def _write_sidecar(meta: str, folder: int, entry: FileEntry) -> None:
    """Write the sidecar whole, or not at all (no empty sidecar on a full disk)."""
    data = json.dumps({"size": entry.size, "mtime": entry.mtime}).encode()
    try:
        fd = os.open(meta, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o666, dir_fd=folder)
    except OSError:
        raise
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(meta, dir_fd=folder)
        raise
    os.close(fd)


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
                 digest: hashlib._Hash, held: int, *, key: int = 0,
                 sidecar: bool = True) -> None:
        self.root = root
        self.components = components
        self.part, self.meta = part_names(components[-1], key)
        # False for a part file made without a resume sidecar (a small file arriving
        # whole): nothing to unlink beside it.
        self.sidecar = sidecar
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
            # The part stays open, and so locked, until it is linked into place and
            # unlinked: a second transfer of this name cannot open it and truncate it
            # in between (it would truncate a verified file).
            leaf = self._place(overwrite=overwrite)
            self.remove_sidecar()
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

    def remove_sidecar(self) -> None:
        if self.sidecar:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.meta, dir_fd=self.folder)

    def _place_without_clobbering(self, candidate: str) -> bool:
        # renameat2(RENAME_NOREPLACE), else link() then unlink(): both fail if the name
        # exists, so no concurrent writer can be overwritten; filesystems without hard
        # links get an O_EXCL placeholder renamed over instead.
        renamed = rename_noreplace(self.folder, self.part, candidate)
        if renamed is not None:
            return renamed
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
        for name in (self.part, self.meta) if self.sidecar else (self.part,):
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


# -- stale part files (listen --keep-parts) ------------------------------------------


@dataclass(frozen=True)
class StalePart:
    """A part file (or a sidecar without its part) removed because it was too old."""

    name: str  # relative to the download folder, "/" separators
    size: int
    age_seconds: float


def remove_stale_parts(root: Path, max_age_seconds: float,
                       *, now: float | None = None) -> list[StalePart]:
    """Delete rtcxfer part files under ``root`` untouched for more than ``max_age_seconds``.

    Only names rtcxfer creates (``.<name>.rtcxfer-part`` and its ``.json`` sidecar,
    a sidecar also alone) are touched, anywhere below ``root``. The walk goes through
    directory descriptors (``os.fwalk`` without following symlinks): a symlink, to a
    folder or to a file, is never followed and never deleted, so nothing outside
    ``root`` is reached. A part file another transfer holds (its ``flock``) is
    skipped, and so is its sidecar. Returns what was removed.
    """
    now = time.time() if now is None else now
    removed: list[StalePart] = []
    try:
        walk = os.fwalk(root, follow_symlinks=False)
        for folder_path, _folders, names, folder in walk:
            relative = os.path.relpath(folder_path, root)
            prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
            for name in sorted(names):
                if not name.startswith("."):
                    continue
                if name.endswith(PART_SUFFIX):
                    size = _remove_stale_part(folder, name, now, max_age_seconds)
                elif name.endswith(PART_SUFFIX + ".json") and name[:-5] not in names:
                    size = _remove_stale_file(folder, name, now, max_age_seconds)
                else:
                    continue
                if size is not None:
                    removed.append(StalePart(prefix + name, *size))
    except OSError:
        pass  # an unreadable folder: whatever was found so far is the answer
    return removed


def _stat_regular(folder: int, name: str) -> os.stat_result | None:
    try:
        info = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except OSError:
        return None
    return info if stat.S_ISREG(info.st_mode) else None


def _remove_stale_file(folder: int, name: str, now: float,
                       max_age: float) -> tuple[int, float] | None:
    info = _stat_regular(folder, name)
    if info is None or now - info.st_mtime <= max_age:
        return None
    try:
        os.unlink(name, dir_fd=folder)
    except OSError:
        return None
    return info.st_size, now - info.st_mtime


def _remove_stale_part(folder: int, name: str, now: float,
                       max_age: float) -> tuple[int, float] | None:
    info = _stat_regular(folder, name)
    if info is None or now - info.st_mtime <= max_age:
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=folder)
    except OSError:
        return None
    try:
        held = os.fstat(fd)
        if (held.st_ino, held.st_dev) != (info.st_ino, info.st_dev):
            return None  # replaced since we looked
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return None  # a transfer holds it right now
        # Deleted while we hold the lock: no transfer can take it meanwhile.
        os.unlink(name, dir_fd=folder)
        with contextlib.suppress(FileNotFoundError):
            sidecar = _stat_regular(folder, name + ".json")
            if sidecar is not None:
                os.unlink(name + ".json", dir_fd=folder)
    except OSError:
        return None
    finally:
        os.close(fd)
    return info.st_size, now - info.st_mtime
