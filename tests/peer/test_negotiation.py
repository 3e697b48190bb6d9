"""The negotiation state machine and the path, driven by hand: no network, no aiortc."""

from __future__ import annotations

import pytest

from rtcxfer.peer.negotiation import (
    AddRemoteCandidate,
    ApplyRemoteDescription,
    CandidateFacts,
    Connected,
    End,
    EndReason,
    MakeDescription,
    Negotiation,
    Role,
    State,
    classify_path,
)

SDP = ("v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n"
       "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\n")
OFFER = {"type": "offer", "sdp": SDP}
ANSWER = {"type": "answer", "sdp": SDP}
CANDIDATE = {"candidate": "candidate:1 1 udp 1 10.0.0.1 5000 typ host", "sdpMLineIndex": 0}


def offerer() -> Negotiation:
    return Negotiation(Role.OFFERER, started=0.0, connect_timeout=30.0)


def answerer() -> Negotiation:
    return Negotiation(Role.ANSWERER, started=0.0, connect_timeout=30.0)


def test_offerer_happy_path_queues_early_candidates() -> None:
    machine = offerer()
    assert machine.start() == [MakeDescription("offer")]
    assert machine.state is State.HAVE_LOCAL
    assert machine.local_description_sent(1.0) == []
    assert machine.candidate_received(CANDIDATE, 1.1) == []  # before the answer: queued
    assert machine.candidate_received(None, 1.2) == []
    assert machine.description_received("answer", ANSWER) == [
        ApplyRemoteDescription("answer", SDP)]
    assert machine.remote_description_applied(2.0) == [
        AddRemoteCandidate(CANDIDATE), AddRemoteCandidate(None)]
    assert machine.state is State.CHECKING
    assert machine.candidate_received(CANDIDATE, 2.5) == [AddRemoteCandidate(CANDIDATE)]
    assert machine.ice_state("checking") == []
    assert machine.ice_state("connected") == [Connected()]
    assert machine.ice_state("connected") == []
    assert machine.deadline() is None
    assert machine.tick(1000.0) == []
    assert machine.ice_state("failed") == [End(EndReason.CONNECTION_LOST)]
    assert machine.state is State.ENDED


def test_answerer_answers_after_applying_the_offer() -> None:
    machine = answerer()
    assert machine.start() == []
    assert machine.description_received("answer", ANSWER) == []  # not for an answerer
    assert machine.description_received("offer", OFFER) == [ApplyRemoteDescription("offer", SDP)]
    assert machine.state is State.HAVE_REMOTE
    assert machine.candidate_received(CANDIDATE, 0.5) == [AddRemoteCandidate(CANDIDATE)]
    assert machine.remote_description_applied(1.0) == [MakeDescription("answer")]
    assert machine.description_received("offer", OFFER) == []  # a second offer: ignored
    assert machine.local_description_sent(1.5) == []
    assert machine.state is State.CHECKING


def test_an_answer_to_no_offer_is_ignored() -> None:
    machine = offerer()
    assert machine.description_received("answer", ANSWER) == []
    assert machine.state is State.NEW


@pytest.mark.parametrize("payload, detail", [
    ("nope", "a malformed offer"),
    ({"type": "answer", "sdp": SDP}, "a malformed offer"),
    ({"type": "offer", "sdp": "v=0\r\n"}, "an unusable offer"),
    ({"type": "offer", "sdp": "v=0\r\nm=application 9 x\r\n"}, "an unusable offer"),
])
def test_malformed_descriptions_end_the_negotiation(payload: object, detail: str) -> None:
    machine = answerer()
    (end,) = machine.description_received("offer", payload)
    assert isinstance(end, End) and end.reason is EndReason.MALFORMED
    assert end.detail.startswith(detail)
    assert machine.candidate_received(CANDIDATE, 1.0) == []


def test_ice_fails_once_no_pair_answers_in_time() -> None:
    machine = offerer()
    machine.start()
    machine.local_description_sent(0.5)
    assert machine.deadline() == 30.0  # only the overall timeout until checks can start
    machine.description_received("answer", ANSWER)
    machine.remote_description_applied(2.0)
    assert machine.deadline() == 12.0
    machine.candidate_received(CANDIDATE, 5.0)  # a late candidate: new pairs, more time
    assert machine.deadline() == 15.0
    assert machine.tick(14.9) == []
    (end,) = machine.tick(15.0)
    assert end.reason is EndReason.NO_ICE_PATH and "10 s" in end.detail


def test_no_ice_deadline_once_checks_succeeded() -> None:
    machine = offerer()
    machine.start()
    machine.description_received("answer", ANSWER)
    machine.remote_description_applied(1.0)
    machine.checks_succeeded()  # DTLS still running
    assert machine.deadline() == 30.0
    (end,) = machine.tick(30.0)
    assert end.reason is EndReason.NO_ICE_PATH and "30 s" in end.detail


def test_aiortc_failure_before_connecting_is_no_ice_path() -> None:
    machine = offerer()
    machine.start()
    assert machine.ice_state("failed") == [End(EndReason.NO_ICE_PATH, "ICE failed")]
    assert machine.ice_state("connected") == []  # ended stays ended


def test_leave_while_checking_means_no_path_otherwise_peer_left() -> None:
    machine = offerer()
    machine.start()
    assert machine.leave_received() == [End(EndReason.PEER_LEFT)]
    checking = offerer()
    checking.start()
    checking.description_received("answer", ANSWER)
    checking.remote_description_applied(1.0)
    (end,) = checking.leave_received()
    assert end.reason is EndReason.NO_ICE_PATH


def test_losing_the_server_matters_only_before_both_descriptions() -> None:
    machine = offerer()
    machine.start()
    assert machine.signaling_lost() == [End(EndReason.SERVER_LOST)]
    checking = offerer()
    checking.start()
    checking.description_received("answer", ANSWER)
    checking.remote_description_applied(1.0)
    assert checking.signaling_lost() == []
    assert checking.ice_state("closed") == [End(EndReason.CONNECTION_CLOSED)]


def test_the_first_end_wins() -> None:
    machine = answerer()
    assert machine.failed("boom") == [End(EndReason.NEGOTIATION_FAILED, "boom")]
    assert machine.end(EndReason.CLOSED) == []
    assert machine.ended == End(EndReason.NEGOTIATION_FAILED, "boom")


# -- the path ---------------------------------------------------------------

HOST = CandidateFacts("host", "192.168.1.2", 5000)
SRFLX = CandidateFacts("srflx", "203.0.113.7", 6000, "192.168.1.2")
LAN = ["192.168.1.0/24"]


def test_lan_path() -> None:
    path = classify_path(HOST, CandidateFacts("host", "192.168.1.3", 5001),
                         local_candidates=[HOST, SRFLX], local_networks=LAN)
    assert path.as_event() == {"kind": "direct", "local_type": "host", "remote_type": "host",
                               "protocol": "udp", "relay": None}
    assert path.describe() == "direct (LAN)"


def test_browser_on_the_lan_behind_mdns_is_lan() -> None:
    path = classify_path(HOST, CandidateFacts("prflx", "192.168.1.9", 5001),
                         local_candidates=[HOST, SRFLX], local_networks=LAN)
    assert path.describe() == "direct (LAN)"


def test_direct_through_nat() -> None:
    path = classify_path(HOST, CandidateFacts("srflx", "198.51.100.4", 7000),
                         local_candidates=[HOST, SRFLX], local_networks=LAN)
    assert (path.kind, path.local_type, path.remote_type) == ("direct", "srflx", "srflx")
    assert path.describe() == "direct through NAT"


@pytest.mark.parametrize("url, protocol, words", [
    ("turn:turn.example:3478", "udp", "relayed via TURN turn.example:3478 (udp)"),
    ("turn:turn.example?transport=tcp", "tcp", "relayed via TURN turn.example:3478 (tcp)"),
    ("turns:turn.example", "tcp", "relayed via TURN turn.example:5349 (tls)"),
])
def test_relayed_paths(url: str, protocol: str, words: str) -> None:
    relay = CandidateFacts("relay", "203.0.113.50", 49200, "192.168.1.2")
    path = classify_path(relay, CandidateFacts("host", "10.1.1.1", 1), turn_url=url)
    assert path.as_event() == {"kind": "relayed", "local_type": "relay", "remote_type": "host",
                               "protocol": protocol, "relay": url}
    assert path.describe() == words


def test_relayed_by_the_peer_only() -> None:
    path = classify_path(HOST, CandidateFacts("relay", "203.0.113.50", 49200))
    assert (path.kind, path.relay, path.protocol) == ("relayed", "turn:203.0.113.50:49200",
                                                      "udp")
