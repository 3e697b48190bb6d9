"""Browser RTCIceCandidateInit dicts <-> aiortc RTCIceCandidate."""

from __future__ import annotations

import pytest
from aiortc import RTCIceCandidate

from rtcxfer.peer.candidates import CandidateError, candidate_from_init, candidate_to_init

CHROMIUM_LINE = (
    "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx "
    "raddr 192.168.1.20 rport 46154 generation 0 ufrag sEMT network-cost 999"
)


def test_browser_candidate_with_prefix_is_parsed() -> None:
    candidate = candidate_from_init(
        {"candidate": CHROMIUM_LINE, "sdpMid": "0", "sdpMLineIndex": 0}
    )
    assert candidate is not None
    assert (candidate.foundation, candidate.component, candidate.protocol) == (
        "842163049", 1, "udp")
    assert (candidate.ip, candidate.port, candidate.type) == ("203.0.113.7", 46154, "srflx")
    assert (candidate.relatedAddress, candidate.relatedPort) == ("192.168.1.20", 46154)
    assert (candidate.sdpMid, candidate.sdpMLineIndex) == ("0", 0)


def test_line_without_prefix_and_with_attribute_prefix() -> None:
    bare = candidate_from_init({"candidate": CHROMIUM_LINE.removeprefix("candidate:"),
                                "sdpMid": "data"})
    attribute = candidate_from_init({"candidate": "a=" + CHROMIUM_LINE, "sdpMLineIndex": 0})
    assert bare is not None and attribute is not None
    assert bare.ip == attribute.ip == "203.0.113.7"
    assert bare.sdpMid == "data"
    assert attribute.sdpMLineIndex == 0


def test_candidate_naming_no_media_line_goes_to_the_first() -> None:
    candidate = candidate_from_init({"candidate": CHROMIUM_LINE})
    assert candidate is not None
    assert candidate.sdpMLineIndex == 0


@pytest.mark.parametrize("init", [None, {"candidate": ""}, {"candidate": None},
                                  {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}])
def test_end_of_candidates(init: object) -> None:
    assert candidate_from_init(init) is None


@pytest.mark.parametrize("init", ["candidate:1 1 udp", 42, {"candidate": 7},
                                  {"candidate": "candidate:x y"},
                                  {"candidate": "candidate:1 one udp 5 1.2.3.4 9 typ host"}])
def test_malformed_candidates_are_refused(init: object) -> None:
    with pytest.raises(CandidateError):
        candidate_from_init(init)


def test_local_candidate_round_trips_in_browser_shape() -> None:
    local = RTCIceCandidate(component=1, foundation="abc", ip="127.0.0.1", port=5000,
                            priority=2130706431, protocol="udp", type="host")
    init = candidate_to_init(local, sdp_mid="0", sdp_mline_index=0)
    assert init["candidate"].startswith("candidate:abc 1 udp 2130706431 127.0.0.1 5000 typ host")
    assert (init["sdpMid"], init["sdpMLineIndex"]) == ("0", 0)
    back = candidate_from_init(init)
    assert back is not None
    assert (back.ip, back.port, back.priority, back.type) == ("127.0.0.1", 5000, 2130706431,
                                                               "host")
