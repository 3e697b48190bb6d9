"""Which file names a receiver accepts from the wire.

Every name in a ``hello`` is hostile until this module says otherwise. The rules are
lexical (they never look at the disk): a name that passes is a relative POSIX path of
plain components, so joining it to the download folder cannot climb out of it. Symlinks
already inside the download folder are the storage layer's concern
(``rtcxfer.transfer.storage`` opens every component with ``O_NOFOLLOW``).
"""

from __future__ import annotations

import re

from rtcxfer.protocol.transfer import Hello
from rtcxfer.text import invisible_problem, printable
from rtcxfer.transfer.model import IncomingOffer

MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096

# Suffixes of rtcxfer's own partial downloads; a peer may not send files named like them,
# or a file "x" and a file ".x.rtcxfer-part" would fight over the same bytes.
PART_SUFFIX = ".rtcxfer-part"
META_SUFFIX = ".rtcxfer-part.json"

_RESERVED_DEVICE_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{digit}" for digit in range(1, 10)]
    + [f"LPT{digit}" for digit in range(1, 10)]
)
_DRIVE_PREFIX = re.compile(r"[A-Za-z]:")
# C0 and C1 control characters and DEL: never part of a name a person chose.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class UnsafeName(ValueError):
    """A name from the wire that would not land safely inside the download folder."""


def _shown(name: str) -> str:
    # Hidden characters escaped (rtcxfer.text); long names cut so the message stays readable.
    return "'" + printable(name, limit=80) + "'"


def split_name(name: str) -> tuple[str, ...]:
    """The components of a safe relative name; raise :class:`UnsafeName` otherwise."""
    if not name:
        raise UnsafeName("an empty file name")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeName(f"{_shown(name)} is not valid Unicode") from None
    if len(encoded) > MAX_PATH_BYTES:
        raise UnsafeName(f"{_shown(name)} is longer than {MAX_PATH_BYTES} bytes")
    if _CONTROL_CHARACTER.search(name):
        raise UnsafeName(f"{_shown(name)} contains a control character")
    hidden = invisible_problem(name)
    if hidden is not None:
        # "photo\u202egnp.exe" would show as "photoexe.png".
        raise UnsafeName(f"{_shown(name)} {hidden}")
    if "\\" in name:
        raise UnsafeName(f"{_shown(name)} contains a backslash")
    if name.startswith("/"):
        raise UnsafeName(f"{_shown(name)} is an absolute path")
    if _DRIVE_PREFIX.match(name):
        raise UnsafeName(f"{_shown(name)} starts with a drive letter")
    components = tuple(name.split("/"))
    short = len(encoded) <= MAX_COMPONENT_BYTES
    for component in components:
        if component in ("", ".", ".."):
            raise UnsafeName(f"{_shown(name)} has an empty, '.' or '..' component")
        if not short and len(component.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise UnsafeName(
                f"{_shown(name)} has a component longer than {MAX_COMPONENT_BYTES} bytes")
        device = component.split(".", 1)[0].rstrip(" ").upper()
        if device in _RESERVED_DEVICE_NAMES:
            raise UnsafeName(f"{_shown(name)} uses the reserved device name {device}")
    if components[-1].endswith((PART_SUFFIX, META_SUFFIX)):
        raise UnsafeName(f"{_shown(name)} ends like an rtcxfer partial download")
    return components


def is_hidden_name(name: str) -> bool:
    """True when a component of ``name`` starts with a dot (``.ssh/authorized_keys``)."""
    return any(component.startswith(".") for component in name.split("/"))


def validate_offer(hello: Hello) -> IncomingOffer:
    """The offer a ``hello`` makes, or :class:`UnsafeName` naming the first bad entry.

    Beyond each name on its own: no two entries may name the same file, and no entry
    may be a folder of another ("a" and "a/b" cannot both be files).
    """
    files: set[tuple[str, ...]] = set()
    folders: set[tuple[str, ...]] = set()
    for entry in hello.files:
        components = split_name(entry.name)
        if components in files:
            raise UnsafeName(f"{_shown(entry.name)} appears twice")
        if components in folders:
            raise UnsafeName(f"{_shown(entry.name)} is both a file and a folder")
        parents = {components[:depth] for depth in range(1, len(components))}
        if parents & files:
            raise UnsafeName(f"{_shown(entry.name)} puts a file inside another file")
        files.add(components)
        folders |= parents
    return IncomingOffer(files=hello.files, total=hello.total)
