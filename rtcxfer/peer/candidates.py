"""Conversion between browser ``RTCIceCandidateInit`` dicts and aiortc ``RTCIceCandidate``.

Browsers put a ``candidate:`` prefix on the candidate line and rely on
``sdpMid`` / ``sdpMLineIndex`` to place it; aiortc's ``candidate_from_sdp`` takes
the bare line and leaves both fields unset. ``None`` stands for
end-of-candidates on both sides (PROTOCOL.md: ``null`` or an empty string).
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCIceCandidate
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp

CANDIDATE_PREFIX = "candidate:"


class CandidateError(ValueError):
    """A remote candidate message that cannot be turned into an ICE candidate."""


def candidate_from_init(init: Any) -> RTCIceCandidate | None:
    """Parse a relayed ``candidate`` field; ``None`` means end-of-candidates."""
    if init is None:
        return None
    if not isinstance(init, dict):
        raise CandidateError(f"candidate must be an object or null, not {type(init).__name__}")
    line = init.get("candidate")
    if line is None or line == "":
        return None
    if not isinstance(line, str):
        raise CandidateError("candidate.candidate must be a string")
    line = line.strip()
    if line.startswith(f"a={CANDIDATE_PREFIX}"):
        line = line[2:]
    if line.startswith(CANDIDATE_PREFIX):
        line = line[len(CANDIDATE_PREFIX):]
    try:
        candidate = candidate_from_sdp(line)
    except (AssertionError, ValueError, IndexError) as error:
        raise CandidateError(f"malformed candidate line {line!r}") from error
    sdp_mid = init.get("sdpMid")
    sdp_mline_index = init.get("sdpMLineIndex")
    if isinstance(sdp_mid, str):
        candidate.sdpMid = sdp_mid
    if isinstance(sdp_mline_index, int) and not isinstance(sdp_mline_index, bool):
        candidate.sdpMLineIndex = sdp_mline_index
    if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
        # rtcxfer negotiates a single m-line (the data channel), so a candidate
        # that names neither can only belong to it.
        candidate.sdpMLineIndex = 0
    return candidate


def candidate_to_init(
    candidate: RTCIceCandidate, *, sdp_mid: str | None, sdp_mline_index: int
) -> dict[str, Any]:
    """Build the browser-shaped dict for one local candidate."""
    return {
        "candidate": CANDIDATE_PREFIX + candidate_to_sdp(candidate),
        "sdpMid": sdp_mid,
        "sdpMLineIndex": sdp_mline_index,
    }
