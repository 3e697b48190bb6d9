"""rtcxfer/1 control messages: typed values, parsed from and built into JSON text frames.

Sans-I/O: nothing here touches a channel or the disk. :func:`parse_message` turns one
text frame into exactly one typed message or raises :class:`TransferProtocolError`
naming what is wrong; :func:`encode_message` is its inverse. Binary frames carry file
bytes and never pass through this module.

Only the shape of each message is checked here (types, ranges, required fields).
Whether a file name is safe to write is the receiver's business
(``rtcxfer.transfer.paths``); whether a message is allowed *now* is the state
machines' (``rtcxfer.transfer.machines``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1
CHANNEL_LABEL = "rtcxfer/1"

# A hello may announce at most this many files: the receiver keeps per-file state
# for every one of them, so the bound keeps a hostile sender from exhausting memory.
MAX_FILES = 100_000
# Longest human-readable text (decline reason, ack reason, error message) kept from
# the peer: longer text is cut, so a hostile peer cannot flood the terminal or a log.
MAX_TEXT_LENGTH = 1000

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class TransferProtocolError(Exception):
    """A text frame that is not a well-formed rtcxfer/1 control message."""


@dataclass(frozen=True)
class FileEntry:
    """One entry of ``hello.files``: a relative POSIX path, its size and mtime."""

    name: str
    size: int
    mtime: float | None


@dataclass(frozen=True)
class Hello:
    files: tuple[FileEntry, ...]
    total: int
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Accept:
    offsets: tuple[int, ...]


@dataclass(frozen=True)
class Decline:
    reason: str


@dataclass(frozen=True)
class FileStart:
    """The ``file`` message: binary frames of file ``index`` follow, from ``offset``."""

    index: int
    offset: int


@dataclass(frozen=True)
class Eof:
    index: int
    sha256: str


@dataclass(frozen=True)
class Ack:
    """``ack``; ``saved_as`` and ``resumed_from`` are optional extensions (docs/protocol.md)."""

    index: int
    ok: bool
    reason: str | None = None
    saved_as: str | None = None  # the name the file landed under, when not its own
    resumed_from: int | None = None  # bytes the receiver already held (resume)


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class Error:
    message: str


Message = Hello | Accept | Decline | FileStart | Eof | Ack | Done | Error


def _is_int(value: Any) -> bool:
    # bool is an int subclass in Python but never a count on the wire.
    return isinstance(value, int) and not isinstance(value, bool)


def _require_count(obj: dict[str, Any], field: str, context: str) -> int:
    value = obj.get(field)
    if not _is_int(value) or value < 0:
        raise TransferProtocolError(f"{context}: {field!r} must be a non-negative integer")
    return value


def _require_text(obj: dict[str, Any], field: str, context: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str):
        raise TransferProtocolError(f"{context}: {field!r} must be a string")
    return shorten(value)


def shorten(text: str) -> str:
    """``text`` cut to :data:`MAX_TEXT_LENGTH` characters, marked with an ellipsis when cut."""
    if len(text) <= MAX_TEXT_LENGTH:
        return text
    return text[: MAX_TEXT_LENGTH - 1] + "…"


def _parse_entry(raw: Any, position: int) -> FileEntry:
    context = f"hello.files[{position}]"
    if not isinstance(raw, dict):
        raise TransferProtocolError(f"{context} must be an object")
    name = raw.get("name")
    if not isinstance(name, str):
        raise TransferProtocolError(f"{context}: 'name' must be a string")
    size = _require_count(raw, "size", context)
    mtime = raw.get("mtime")
    if mtime is not None:
        if not isinstance(mtime, int | float) or isinstance(mtime, bool):
            raise TransferProtocolError(f"{context}: 'mtime' must be a number")
        if not math.isfinite(mtime):
            raise TransferProtocolError(f"{context}: 'mtime' must be finite")
        mtime = float(mtime)
    return FileEntry(name=name, size=size, mtime=mtime)


def _parse_hello(obj: dict[str, Any]) -> Hello:
    version = obj.get("version")
    if version != PROTOCOL_VERSION or not _is_int(version):
        raise TransferProtocolError(
            f"hello: unsupported version {version!r} (this side speaks {PROTOCOL_VERSION})"
        )
    raw_files = obj.get("files")
    if not isinstance(raw_files, list):
        raise TransferProtocolError("hello: 'files' must be an array")
    if len(raw_files) > MAX_FILES:
        raise TransferProtocolError(f"hello: more than {MAX_FILES} files")
    files = tuple(_parse_entry(raw, position) for position, raw in enumerate(raw_files))
    total = _require_count(obj, "total", "hello")
    announced = sum(entry.size for entry in files)
    if total != announced:
        raise TransferProtocolError(
            f"hello: 'total' is {total} but the file sizes add up to {announced}"
        )
    return Hello(files=files, total=total)


def _parse_accept(obj: dict[str, Any]) -> Accept:
    offsets = obj.get("offsets")
    if not isinstance(offsets, list) or not all(_is_int(o) and o >= 0 for o in offsets):
        raise TransferProtocolError("accept: 'offsets' must be an array of non-negative integers")
    return Accept(offsets=tuple(offsets))


def _parse_ack(obj: dict[str, Any]) -> Ack:
    index = _require_count(obj, "index", "ack")
    ok = obj.get("ok")
    if not isinstance(ok, bool):
        raise TransferProtocolError("ack: 'ok' must be true or false")
    reason = None
    if obj.get("reason") is not None:
        reason = _require_text(obj, "reason", "ack")
    # Extensions: informational, so a value of the wrong type is ignored, not an error.
    saved_as = obj.get("saved_as")
    if not isinstance(saved_as, str) or not saved_as or not ok:
        saved_as = None
    resumed_from = obj.get("resumed_from")
    if not _is_int(resumed_from) or resumed_from <= 0 or not ok:
        resumed_from = None
    return Ack(index=index, ok=ok, reason=reason,
               saved_as=shorten(saved_as) if saved_as is not None else None,
               resumed_from=resumed_from)


def _parse_eof(obj: dict[str, Any]) -> Eof:
    index = _require_count(obj, "index", "eof")
    digest = obj.get("sha256")
    if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest.lower()):
        raise TransferProtocolError("eof: 'sha256' must be 64 hexadecimal digits")
    return Eof(index=index, sha256=digest.lower())


def _parse_decline(obj: dict[str, Any]) -> Decline:
    # A decline without a reason is still a decline; the reason is for humans.
    if obj.get("reason") is None:
        return Decline(reason="no reason given")
    return Decline(reason=_require_text(obj, "reason", "decline"))


def decode_frame(frame: str) -> tuple[dict[str, Any], str]:
    """A control frame's JSON object and its ``type`` (rtcxfer/1 and /2 alike)."""
    try:
        obj = json.loads(frame)
    except (json.JSONDecodeError, RecursionError) as error:
        raise TransferProtocolError(f"control frame is not valid JSON: {error}") from None
    if not isinstance(obj, dict):
        raise TransferProtocolError("control frame is not a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise TransferProtocolError("control frame has no string 'type'")
    return obj, kind


def parse_message(frame: str) -> Message:
    """Parse one text frame; raise :class:`TransferProtocolError` if it is not valid."""
    obj, kind = decode_frame(frame)
    match kind:
        case "hello":
            return _parse_hello(obj)
        case "accept":
            return _parse_accept(obj)
        case "decline":
            return _parse_decline(obj)
        case "file":
            return FileStart(
                index=_require_count(obj, "index", "file"),
                offset=_require_count(obj, "offset", "file"),
            )
        case "eof":
            return _parse_eof(obj)
        case "ack":
            return _parse_ack(obj)
        case "done":
            return Done()
        case "error":
            if obj.get("message") is None:
                return Error(message="no message given")
            return Error(message=_require_text(obj, "message", "error"))
    raise TransferProtocolError(f"unknown control message type {kind[:40]!r}")


def _entry_json(entry: FileEntry) -> dict[str, Any]:
    raw: dict[str, Any] = {"name": entry.name, "size": entry.size}
    if entry.mtime is not None:
        raw["mtime"] = entry.mtime
    return raw


def encode_message(message: Message) -> str:
    """The JSON text frame for ``message``."""
    obj: dict[str, Any]
    match message:
        case Hello():
            obj = {
                "type": "hello",
                "version": message.version,
                "files": [_entry_json(entry) for entry in message.files],
                "total": message.total,
            }
        case Accept():
            obj = {"type": "accept", "offsets": list(message.offsets)}
        case Decline():
            obj = {"type": "decline", "reason": message.reason}
        case FileStart():
            obj = {"type": "file", "index": message.index, "offset": message.offset}
        case Eof():
            obj = {"type": "eof", "index": message.index, "sha256": message.sha256}
        case Ack():
            obj = {"type": "ack", "index": message.index, "ok": message.ok}
            if message.reason is not None:
                obj["reason"] = message.reason
            if message.saved_as is not None:
                obj["saved_as"] = message.saved_as
            if message.resumed_from is not None:
                obj["resumed_from"] = message.resumed_from
        case Done():
            obj = {"type": "done"}
        case Error():
            obj = {"type": "error", "message": message.message}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
