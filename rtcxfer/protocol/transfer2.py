"""rtcxfer/2 control messages (docs/protocol.md, "rtcxfer/2"): typed values and JSON.

Sans-I/O like :mod:`rtcxfer.protocol.transfer`, whose ``decline``, ``file``, ``done``
and ``error`` messages rtcxfer/2 reuses unchanged. :func:`parse_message2` parses what
a v2 peer may receive; a v1 ``hello`` (with or without ``versions``) parses to
:class:`Hello2` with ``version`` 1, so one parser sees which protocol the sender picked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from rtcxfer.protocol.transfer import (
    _SHA256_HEX,
    MAX_TEXT_LENGTH,
    Decline,
    Done,
    Error,
    FileEntry,
    FileStart,
    TransferProtocolError,
    _is_int,
    _parse_decline,
    _require_count,
    _require_text,
    decode_frame,
)

VERSION2 = 2
# Entries listed beyond the settled prefix, at most; files started beyond it, at most.
LIST_AHEAD = 16_384
WINDOW = 1024
# A text entry carries at most this many bytes.
MAX_TEXT_BYTES = 65_536
# hello/list messages stay below this size even when the peer's limit is larger or 0.
MAX_BATCH_BYTES = 262_144
# JSON cannot hold larger integers exactly in every implementation (JavaScript).
MAX_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a v2 list: a file, a stream (``size`` None) or a text."""

    name: str
    size: int | None
    mtime: float | None = None
    text: bool = False

    @property
    def is_stream(self) -> bool:
        return self.size is None

    def as_file_entry(self) -> FileEntry:
        return FileEntry(name=self.name, size=self.size or 0, mtime=self.mtime)


@dataclass(frozen=True)
class Hello2:
    """A ``hello``: version 2, or a compatible v1 hello (``versions`` says whether 2 is on)."""

    version: int
    count: int
    total: int
    files: tuple[Entry, ...]
    versions: tuple[int, ...] = ()

    @property
    def offers_v2(self) -> bool:
        return self.version == VERSION2 or VERSION2 in self.versions


@dataclass(frozen=True)
class Accept2:
    offsets: tuple[int, ...]
    version: int | None  # None: a v1 accept


@dataclass(frozen=True)
class ListBatch:
    first: int
    files: tuple[Entry, ...]


@dataclass(frozen=True)
class Have:
    first: int
    offsets: tuple[int, ...]


@dataclass(frozen=True)
class Eof2:
    index: int
    sha256: str
    size: int | None


@dataclass(frozen=True)
class Acks:
    upto: int
    failed: tuple[tuple[int, str], ...] = ()
    # ext: (index, name it was saved under) for files kept under another name.
    renamed: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Packed:
    """One file of a ``pack``: ``length`` bytes of file ``index`` from ``offset``."""

    index: int
    offset: int
    length: int
    sha256: str


@dataclass(frozen=True)
class Pack:
    """Several whole small files in one binary frame (docs/protocol.md, rtcxfer/2)."""

    files: tuple[Packed, ...]

    @property
    def length(self) -> int:
        return sum(item.length for item in self.files)


# Files in one pack, at most.
MAX_PACK_FILES = 1024

Message2 = (Hello2 | Accept2 | Decline | ListBatch | Have | FileStart | Eof2 | Acks | Pack | Done
            | Error)


def _count(obj: dict[str, Any], field: str, context: str) -> int:
    value = _require_count(obj, field, context)
    if value > MAX_SAFE_INTEGER:
        raise TransferProtocolError(f"{context}: {field!r} is too large")
    return value


def _parse_entry(raw: Any, context: str, *, v2: bool) -> Entry:
    if not isinstance(raw, dict):
        raise TransferProtocolError(f"{context} must be an object")
    name = raw.get("name")
    if not isinstance(name, str):
        raise TransferProtocolError(f"{context}: 'name' must be a string")
    size: int | None
    size = None if v2 and raw.get("size") is None else _count(raw, "size", context)
    mtime = raw.get("mtime")
    if mtime is not None:
        if not isinstance(mtime, int | float) or isinstance(mtime, bool) or not math.isfinite(
                mtime):
            raise TransferProtocolError(f"{context}: 'mtime' must be a finite number")
        mtime = float(mtime)
    text = raw.get("text", False) if v2 else False
    if text not in (True, False):
        raise TransferProtocolError(f"{context}: 'text' must be true or false")
    if text and (size is None or size > MAX_TEXT_BYTES):
        raise TransferProtocolError(f"{context}: a text has a size of at most {MAX_TEXT_BYTES}")
    return Entry(name=name, size=size, mtime=mtime, text=bool(text))


def _parse_entries(obj: dict[str, Any], context: str, *, v2: bool) -> tuple[Entry, ...]:
    raw_files = obj.get("files")
    if not isinstance(raw_files, list):
        raise TransferProtocolError(f"{context}: 'files' must be an array")
    return tuple(_parse_entry(raw, f"{context}.files[{position}]", v2=v2)
                 for position, raw in enumerate(raw_files))


def _parse_offsets(obj: dict[str, Any], context: str) -> tuple[int, ...]:
    offsets = obj.get("offsets")
    if not isinstance(offsets, list) or not all(
            _is_int(o) and 0 <= o <= MAX_SAFE_INTEGER for o in offsets):
        raise TransferProtocolError(f"{context}: 'offsets' must be an array of byte counts")
    return tuple(offsets)


def _parse_hello(obj: dict[str, Any]) -> Hello2:
    version = obj.get("version")
    if not _is_int(version) or version not in (1, VERSION2):
        raise TransferProtocolError(f"hello: unsupported version {version!r}")
    if version == 1:
        files = _parse_entries(obj, "hello", v2=False)
        total = _count(obj, "total", "hello")
        if total != sum(entry.size or 0 for entry in files):
            raise TransferProtocolError("hello: 'total' is not the sum of the file sizes")
        raw_versions = obj.get("versions")
        versions: tuple[int, ...] = ()
        if isinstance(raw_versions, list):
            versions = tuple(v for v in raw_versions if _is_int(v))
        return Hello2(version=1, count=len(files), total=total, files=files,
                      versions=versions)
    files = _parse_entries(obj, "hello", v2=True)
    count = _count(obj, "count", "hello")
    total = _count(obj, "total", "hello")
    if len(files) > count:
        raise TransferProtocolError(f"hello: {len(files)} files but 'count' is {count}")
    return Hello2(version=VERSION2, count=count, total=total, files=files)


def _parse_acks(obj: dict[str, Any]) -> Acks:
    upto = _count(obj, "upto", "acks")
    raw_failed = obj.get("failed", [])
    if not isinstance(raw_failed, list):
        raise TransferProtocolError("acks: 'failed' must be an array")
    failed = []
    for position, raw in enumerate(raw_failed):
        if not isinstance(raw, dict):
            raise TransferProtocolError(f"acks.failed[{position}] must be an object")
        index = _count(raw, "index", "acks.failed")
        reason = ("no reason given" if raw.get("reason") is None
                  else _require_text(raw, "reason", "acks.failed"))
        failed.append((index, reason))
    return Acks(upto=upto, failed=tuple(failed), renamed=_renamed(obj.get("renamed")))


def _renamed(raw: Any) -> tuple[tuple[int, str], ...]:
    """The optional ``renamed`` of ``acks``: informative only, so a malformed value is
    ignored (never a protocol error); names are cut at MAX_TEXT_LENGTH characters."""
    if not isinstance(raw, list):
        return ()
    renamed = []
    for item in raw[:100_000]:
        if (isinstance(item, dict) and type(item.get("index")) is int and item["index"] >= 0
                and isinstance(item.get("name"), str) and item["name"]):
            renamed.append((item["index"], item["name"][:MAX_TEXT_LENGTH]))
    return tuple(renamed)


def _parse_sha256(obj: dict[str, Any], context: str) -> str:
    digest = obj.get("sha256")
    if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest.lower()):
        raise TransferProtocolError(f"{context}: 'sha256' must be 64 hexadecimal digits")
    return digest.lower()


def _parse_pack(obj: dict[str, Any]) -> Pack:
    raw_files = obj.get("files")
    if not isinstance(raw_files, list) or not 0 < len(raw_files) <= MAX_PACK_FILES:
        raise TransferProtocolError(f"pack: 'files' must be an array of 1 to {MAX_PACK_FILES}")
    files = []
    for position, raw in enumerate(raw_files):
        context = f"pack.files[{position}]"
        if not isinstance(raw, dict):
            raise TransferProtocolError(f"{context} must be an object")
        files.append(Packed(index=_count(raw, "index", context),
                            offset=_count(raw, "offset", context),
                            length=_count(raw, "length", context),
                            sha256=_parse_sha256(raw, context)))
    return Pack(files=tuple(files))


def parse_message2(frame: str) -> Message2:
    """Parse one text frame of an rtcxfer/2 session (or the first frame of any session)."""
    obj, kind = decode_frame(frame)
    match kind:
        case "hello":
            return _parse_hello(obj)
        case "accept":
            version = obj.get("version")
            if version is not None and not _is_int(version):
                raise TransferProtocolError("accept: 'version' must be an integer")
            return Accept2(offsets=_parse_offsets(obj, "accept"), version=version)
        case "decline":
            return _parse_decline(obj)
        case "list":
            return ListBatch(first=_count(obj, "first", "list"),
                             files=_parse_entries(obj, "list", v2=True))
        case "have":
            return Have(first=_count(obj, "first", "have"),
                        offsets=_parse_offsets(obj, "have"))
        case "file":
            return FileStart(index=_count(obj, "index", "file"),
                             offset=_count(obj, "offset", "file"))
        case "eof":
            digest = obj.get("sha256")
            if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest.lower()):
                raise TransferProtocolError("eof: 'sha256' must be 64 hexadecimal digits")
            size = None if obj.get("size") is None else _count(obj, "size", "eof")
            return Eof2(index=_count(obj, "index", "eof"), sha256=digest.lower(), size=size)
        case "acks":
            return _parse_acks(obj)
        case "pack":
            return _parse_pack(obj)
        case "done":
            return Done()
        case "error":
            if obj.get("message") is None:
                return Error(message="no message given")
            return Error(message=_require_text(obj, "message", "error"))
    raise TransferProtocolError(f"unknown control message type {kind[:40]!r}")


def entry_json(entry: Entry) -> dict[str, Any]:
    raw: dict[str, Any] = {"name": entry.name, "size": entry.size}
    if entry.mtime is not None:
        raw["mtime"] = entry.mtime
    if entry.text:
        raw["text"] = True
    return raw


def encode_message2(message: Message2) -> str:
    """The JSON text frame for ``message``."""
    obj: dict[str, Any]
    match message:
        case Hello2():
            obj = {"type": "hello", "version": message.version}
            if message.version == VERSION2:
                obj["count"] = message.count
            obj["files"] = [entry_json(entry) for entry in message.files]
            obj["total"] = message.total
            if message.versions:
                obj["versions"] = list(message.versions)
        case Accept2():
            obj = {"type": "accept", "offsets": list(message.offsets)}
            if message.version is not None:
                obj["version"] = message.version
        case Decline():
            obj = {"type": "decline", "reason": message.reason}
        case ListBatch():
            obj = {"type": "list", "first": message.first,
                   "files": [entry_json(entry) for entry in message.files]}
        case Have():
            obj = {"type": "have", "first": message.first, "offsets": list(message.offsets)}
        case FileStart():
            obj = {"type": "file", "index": message.index, "offset": message.offset}
        case Eof2():
            obj = {"type": "eof", "index": message.index, "sha256": message.sha256}
            if message.size is not None:
                obj["size"] = message.size
        case Acks():
            obj = {"type": "acks", "upto": message.upto,
                   "failed": [{"index": i, "reason": r} for i, r in message.failed]}
            if message.renamed:
                obj["renamed"] = [{"index": i, "name": n} for i, n in message.renamed]
        case Pack():
            obj = {"type": "pack", "files": [
                {"index": f.index, "offset": f.offset, "length": f.length, "sha256": f.sha256}
                for f in message.files]}
        case Done():
            obj = {"type": "done"}
        case Error():
            obj = {"type": "error", "message": message.message}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def entry_bytes(entry: Entry) -> int:
    """How many bytes ``entry`` adds to an encoded ``files`` array (comma included)."""
    return len(json.dumps(entry_json(entry), ensure_ascii=False,
                          separators=(",", ":")).encode()) + 1
