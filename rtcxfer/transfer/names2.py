"""Clash detection over a whole rtcxfer/2 transfer, in a few bytes per name.

rtcxfer/1 compares the names of one ``hello`` as tuples; rtcxfer/2 lists any number of
entries in batches, so :class:`NameGuard` keeps only a 16-byte digest of each file and
folder name seen (after NFC normalisation, and ``casefold`` when the receiver's file
system folds case). Each name must first pass :func:`rtcxfer.transfer.paths.split_name`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import unicodedata
from pathlib import Path

from rtcxfer.transfer.paths import UnsafeName, split_name


def _digest(components: tuple[str, ...]) -> bytes:
    return hashlib.blake2b("/".join(components).encode("utf-8", "surrogatepass"),
                           digest_size=16).digest()


def _shown(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:77] + "...")


class NameGuard:
    """Refuses a name that is unsafe or clashes with one seen before (files and folders)."""

    def __init__(self, *, fold_case: bool, allow_hidden: bool = True) -> None:
        self.fold_case = fold_case
        # A receiver refuses names with a component starting with "." unless told not to
        # (listen --allow-hidden): .ssh/authorized_keys, .bashrc, in any batch.
        self.allow_hidden = allow_hidden
        self.files: set[bytes] = set()
        self.folders: set[bytes] = set()

    def key(self, name: str) -> tuple[str, ...]:
        normal = unicodedata.normalize("NFC", name)
        if self.fold_case:
            normal = normal.casefold()
        return tuple(normal.split("/"))

    def add(self, name: str) -> tuple[str, ...]:
        """The components of ``name``; raise :class:`UnsafeName` if it is refused."""
        components = split_name(name)
        if not self.allow_hidden and any(part.startswith(".") for part in components):
            raise UnsafeName(f"hidden file names are refused ({_shown(name)}); the "
                             "receiver can allow them with --allow-hidden")
        key = self.key(name)
        whole = _digest(key)
        if whole in self.files:
            raise UnsafeName(f"{_shown(name)} appears twice")
        if whole in self.folders:
            raise UnsafeName(f"{_shown(name)} is both a file and a folder")
        if len(key) > 1:
            parent = _digest(key[:-1])
            # A known folder's ancestors are known folders, none of them a file (each
            # file is checked against the folders when it is added): the usual case of
            # many files in one folder costs one digest more, not one per level.
            if parent not in self.folders:
                parents = [_digest(key[:depth]) for depth in range(1, len(key))]
                if any(digest in self.files for digest in parents):
                    raise UnsafeName(f"{_shown(name)} puts a file inside another file "
                                     "(a file and a folder of one name)")
                self.folders.update(parents)
        self.files.add(whole)
        return components


def folds_case(folder: Path) -> bool:
    """True when ``folder``'s file system treats ``a`` and ``A`` as the same name."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".rtcxfer-case-probe-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    try:
        upper = Path(probe).with_name(Path(probe).name.upper())
        return upper.exists()
    finally:
        os.unlink(probe)
