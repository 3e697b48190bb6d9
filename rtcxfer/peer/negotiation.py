"""The negotiation of one peer connection as an explicit, pure state machine.

No I/O and no clock of its own: :class:`PeerSession` (and, written to the same
rules, the page's ``session.js``) feeds it what happened (a relayed message, an
ICE or connection state, the time) and carries out the actions it returns, in
order. Every way a negotiation can end is one :class:`EndReason`, decided here.

States, in the order a successful negotiation passes them::

    NEW ──offer sent (offerer)──▶ HAVE_LOCAL ──answer applied──▶ CHECKING ──▶ CONNECTED
    NEW ──offer applied (answerer)──▶ HAVE_REMOTE ──answer sent──▶ CHECKING ──▶ CONNECTED
    any ──leave / failure / close──▶ ENDED

Rules:

* one remote description is applied; a second offer or answer is ignored;
* remote candidates that arrive before the remote description are queued and
  returned, in arrival order, as soon as it is applied;
* ICE has failed when aiortc says so, or when no candidate pair has answered a
  check within :data:`ICE_CHECK_SECONDS` of the last thing that could create
  a pair (both descriptions, a remote candidate). aioice itself retransmits a
  check for over 60 s, which is far past the moment a person should be told;
* the whole negotiation gets ``connect_timeout`` seconds from the start;
* the signaling server is needed until both descriptions crossed; after that
  ICE and DTLS complete without it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from rtcxfer.peer.sdp import SdpError, data_channel_mline, sha256_fingerprint

ICE_CHECK_SECONDS = 10.0


class Role(Enum):
    OFFERER = "offerer"
    ANSWERER = "answerer"


class State(Enum):
    NEW = "new"
    HAVE_LOCAL = "have-local"  # offerer: our offer went out, waiting for the answer
    HAVE_REMOTE = "have-remote"  # answerer: the offer is applied, our answer is coming
    CHECKING = "checking"  # both descriptions crossed: ICE checks run
    CONNECTED = "connected"
    ENDED = "ended"


class EndReason(Enum):
    NO_ICE_PATH = "no-ice-path"  # never connected: ICE failed or the time ran out
    CONNECTION_LOST = "connection-lost"  # connected, then the connection failed
    CONNECTION_CLOSED = "connection-closed"  # aiortc closed the connection
    PEER_LEFT = "peer-left"
    MALFORMED = "malformed"  # the peer sent a description rtcxfer cannot use
    NEGOTIATION_FAILED = "negotiation-failed"  # aiortc refused something
    SERVER_LOST = "server-lost"  # the signaling server went away mid-negotiation
    CLOSED = "closed"  # closed by us
    EXTERNAL = "external"  # ended from outside (the peer went offline, ...)


# -- actions -----------------------------------------------------------------


@dataclass(frozen=True)
class MakeDescription:
    """Create and apply our offer/answer, send it, then trickle our candidates."""

    kind: str  # "offer" | "answer"


@dataclass(frozen=True)
class ApplyRemoteDescription:
    kind: str
    sdp: str


@dataclass(frozen=True)
class AddRemoteCandidate:
    init: Any  # the relayed RTCIceCandidateInit, or None for end-of-candidates


@dataclass(frozen=True)
class Connected:
    """ICE and DTLS are up: report the path."""


@dataclass(frozen=True)
class End:
    reason: EndReason
    detail: str = ""


Action = MakeDescription | ApplyRemoteDescription | AddRemoteCandidate | Connected | End


# -- the machine ---------------------------------------------------------------


@dataclass
class Negotiation:
    role: Role
    started: float  # the time the negotiation started (any monotonic clock)
    connect_timeout: float
    ice_check_seconds: float = ICE_CHECK_SECONDS
    state: State = State.NEW
    ended: End | None = None
    _queued: list[Any] = field(default_factory=list)
    _remote_applied: bool = False
    _activity: float | None = None  # last time something could create a pair

    # inputs ------------------------------------------------------------

    def start(self) -> list[Action]:
        """Offerer: begin by offering."""
        if self.state is not State.NEW or self.role is not Role.OFFERER:
            return []
        self.state = State.HAVE_LOCAL
        return [MakeDescription("offer")]

    def description_received(self, kind: str, payload: Any) -> list[Action]:
        """A relayed ``offer`` or ``answer``."""
        expected = "offer" if self.role is Role.ANSWERER else "answer"
        if self.state is State.ENDED or kind != expected:
            return []
        if self._remote_applied or self.state not in (State.NEW, State.HAVE_LOCAL):
            return []  # a second description: ignored
        if self.role is Role.OFFERER and self.state is not State.HAVE_LOCAL:
            return []  # an answer to an offer we never made
        if (not isinstance(payload, dict) or payload.get("type") != kind
                or not isinstance(payload.get("sdp"), str)):
            return self._end(EndReason.MALFORMED, f"a malformed {kind}")
        sdp = payload["sdp"]
        try:
            # aiortc reads an SDP without these as an empty session and would answer it.
            data_channel_mline(sdp)
            sha256_fingerprint(sdp)
        except SdpError as error:
            return self._end(EndReason.MALFORMED, f"an unusable {kind}: {error}")
        self._remote_applied = True
        if self.role is Role.ANSWERER:
            self.state = State.HAVE_REMOTE
        return [ApplyRemoteDescription(kind, sdp)]

    def remote_description_applied(self, now: float) -> list[Action]:
        """aiortc accepted the remote description: queued candidates, then our answer."""
        if self.state is State.ENDED:
            return []
        actions: list[Action] = [AddRemoteCandidate(init) for init in self._queued]
        self._queued = []
        if self.role is Role.ANSWERER:
            actions.append(MakeDescription("answer"))
        else:
            self._checking(now)
        return actions

    def local_description_sent(self, now: float) -> list[Action]:
        """Our offer/answer and candidates went out."""
        if self.state is State.HAVE_REMOTE:
            self._checking(now)
        return []

    def candidate_received(self, init: Any, now: float) -> list[Action]:
        if self.state is State.ENDED:
            return []
        if not self._remote_applied:
            self._queued.append(init)
            return []
        if self._activity is not None:
            self._activity = now
        return [AddRemoteCandidate(init)]

    def ice_state(self, state: str) -> list[Action]:
        """``iceConnectionState`` or ``connectionState`` of the peer connection."""
        if self.state is State.ENDED:
            return []
        if state in ("connected", "completed"):
            if self.state is State.CONNECTED:
                return []
            self.state = State.CONNECTED
            return [Connected()]
        if state == "failed":
            if self.state is State.CONNECTED:
                return self._end(EndReason.CONNECTION_LOST)
            return self._end(EndReason.NO_ICE_PATH, "ICE failed")
        if state == "closed":
            return self._end(EndReason.CONNECTION_CLOSED)
        return []

    def checks_succeeded(self) -> None:
        """ICE found a working pair (DTLS may still be on its way): no ICE deadline."""
        self._activity = None

    def leave_received(self) -> list[Action]:
        if self.state is State.CHECKING and self._activity is not None:
            # Both descriptions crossed and no pair answered yet: a peer that leaves
            # now almost always found no path either (its own ICE deadline).
            return self._end(EndReason.NO_ICE_PATH, "the peer gave up while ICE was checking")
        return self._end(EndReason.PEER_LEFT)

    def signaling_lost(self) -> list[Action]:
        if self.state in (State.NEW, State.HAVE_LOCAL, State.HAVE_REMOTE):
            return self._end(EndReason.SERVER_LOST)
        return []

    def failed(self, detail: str) -> list[Action]:
        """aiortc refused a step of the negotiation."""
        return self._end(EndReason.NEGOTIATION_FAILED, detail)

    def end(self, reason: EndReason, detail: str = "") -> list[Action]:
        return self._end(reason, detail)

    # time --------------------------------------------------------------

    def deadline(self) -> float | None:
        """When :meth:`tick` has something to decide, or None once connected or ended."""
        if self.state in (State.CONNECTED, State.ENDED):
            return None
        overall = self.started + self.connect_timeout
        if self._activity is None:
            return overall
        return min(overall, self._activity + self.ice_check_seconds)

    def tick(self, now: float) -> list[Action]:
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        if self._activity is not None and now >= self._activity + self.ice_check_seconds:
            return self._end(
                EndReason.NO_ICE_PATH,
                f"no candidate pair answered within {self.ice_check_seconds:g} s")
        return self._end(EndReason.NO_ICE_PATH,
                         f"not connected within {self.connect_timeout:g} s")

    # internals -----------------------------------------------------------

    def _checking(self, now: float) -> None:
        self.state = State.CHECKING
        self._activity = now

    def _end(self, reason: EndReason, detail: str = "") -> list[Action]:
        if self.state is State.ENDED:
            return []
        self.state = State.ENDED
        self.ended = End(reason, detail)
        return [self.ended]


# -- the path --------------------------------------------------------------


@dataclass(frozen=True)
class CandidateFacts:
    """What the path needs to know of one ICE candidate."""

    type: str  # host | srflx | prflx | relay
    address: str
    port: int
    related_address: str | None = None


@dataclass(frozen=True)
class Path:
    kind: str  # direct | relayed
    local_type: str
    remote_type: str
    protocol: str  # udp | tcp: how our packets leave this host
    relay: str | None  # the TURN URL, or None

    def describe(self) -> str:
        if self.kind == "relayed":
            return f"relayed via TURN {_turn_host_port(self.relay)} ({_turn_transport(self)})"
        if self.local_type == "host" and self.remote_type == "host":
            return "direct (LAN)"
        return "direct through NAT"

    def as_event(self) -> dict[str, Any]:
        return {"kind": self.kind, "local_type": self.local_type,
                "remote_type": self.remote_type, "protocol": self.protocol,
                "relay": self.relay}


def classify_path(local: CandidateFacts, remote: CandidateFacts, *,
                  local_candidates: Iterable[CandidateFacts] = (),
                  local_networks: Sequence[str] = (),
                  turn_url: str | None = None) -> Path:
    """The path of the selected pair ``local`` ↔ ``remote``.

    aioice pairs checks from its host sockets, so a direct pair's local candidate is
    always ``host``; it counts as ``srflx`` when the peer is outside every network of
    ours (``local_networks``, CIDR strings) and STUN showed that our packets leave
    through a NAT (a ``srflx`` candidate whose base is that host address). A ``prflx``
    remote inside one of our networks (a browser hiding its address behind mDNS)
    is a LAN peer.
    """
    if local.type == "relay" or remote.type == "relay":
        if local.type == "relay":
            relay = turn_url or f"turn:{_bracket(local.address)}:{local.port}"
            protocol = turn_protocol(relay)
        else:
            # Only the peer relays: its TURN server's URL is not ours to know; its
            # relayed address stands in for it.
            relay = f"turn:{_bracket(remote.address)}:{remote.port}"
            protocol = "udp"
        return Path("relayed", local.type, remote.type, protocol, relay)
    remote_type = remote.type
    on_our_network = _in_networks(remote.address, local_networks)
    if remote_type == "prflx" and on_our_network:
        remote_type = "host"
    local_type = local.type
    if local_type == "host" and not on_our_network and any(
            c.type == "srflx" and c.related_address == local.address
            and c.address != local.address for c in local_candidates):
        local_type = "srflx"
    return Path("direct", local_type, remote_type, "udp", None)


def turn_protocol(url: str) -> str:
    """udp or tcp: the transport a TURN URL reaches its server with."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "turns" or url.lower().endswith("transport=tcp"):
        return "tcp"
    return "udp"


def _turn_transport(path: Path) -> str:
    assert path.relay is not None
    if path.relay.lower().startswith("turns:"):
        return "tls"
    return path.protocol


def _turn_host_port(url: str | None) -> str:
    if url is None:
        return "?"
    rest = url.split(":", 1)[1] if ":" in url else url
    rest = rest.split("?", 1)[0]
    if rest.startswith("["):
        return rest if "]:" in rest else rest + ":3478"
    if ":" not in rest:
        default = 5349 if url.lower().startswith("turns:") else 3478
        return f"{rest}:{default}"
    return rest


def _bracket(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _in_networks(address: str, networks: Sequence[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for network in networks:
        try:
            if ip in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False
