"""The few facts rtcxfer reads out of a session description."""

from __future__ import annotations

import re

# RFC 8841 section 6: without a=max-message-size the peer accepts 64 KiB messages.
DEFAULT_MAX_MESSAGE_SIZE = 65536

_MAX_MESSAGE_SIZE = re.compile(r"^a=max-message-size:\s*(\d+)\s*$", re.MULTILINE)
_FINGERPRINT = re.compile(r"^a=fingerprint:(\S+)\s+([0-9A-Fa-f:]+)\s*$", re.MULTILINE)
_MID = re.compile(r"^a=mid:(\S+)\s*$", re.MULTILINE)


class SdpError(ValueError):
    """A session description that lacks something rtcxfer needs."""


def max_message_size(sdp: str) -> int:
    """The remote ``a=max-message-size`` (0 means no limit)."""
    match = _MAX_MESSAGE_SIZE.search(sdp)
    return int(match.group(1)) if match else DEFAULT_MAX_MESSAGE_SIZE


def sha256_fingerprint(sdp: str) -> str:
    """The first SHA-256 DTLS fingerprint, upper case with ``:`` separators."""
    for algorithm, value in _FINGERPRINT.findall(sdp):
        if algorithm.lower() == "sha-256":
            digits = value.replace(":", "").upper()
            if len(digits) != 64:
                raise SdpError("the SHA-256 fingerprint does not have 32 bytes")
            return ":".join(digits[i:i + 2] for i in range(0, 64, 2))
    raise SdpError("the session description has no SHA-256 DTLS fingerprint")


def data_channel_mline(sdp: str) -> tuple[int, str | None]:
    """Index and ``a=mid`` of the ``m=application`` line, to label trickled candidates."""
    index = -1
    found: int | None = None
    mid: str | None = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            index += 1
            if found is not None:
                break
            if line.startswith("m=application"):
                found = index
        elif found is not None and mid is None:
            match = _MID.match(line)
            if match:
                mid = match.group(1)
    if found is None:
        raise SdpError("the session description has no data channel (m=application) line")
    return found, mid
