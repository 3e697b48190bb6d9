"""The ``RTCConfiguration`` rtcxfer hands to aiortc, and which ICE servers it holds.

Sources, in this order: the user's own ``--stun`` / ``--turn``, then the
``iceServers`` the signaling server sent with the login reply (unless
``--no-server-ice``). aiortc falls back to ``stun:stun.l.google.com:19302``
when ``iceServers`` is ``None``; rtcxfer always passes a list, so it never
contacts a third party on its own.

aiortc (1.16) uses one STUN URL and one TURN URL per connection: the first of
each. A server typically offers TURN over UDP and over TCP (for networks that
block outbound UDP); :func:`plan_ice` picks UDP when the TURN server answers a
STUN binding request over UDP within :data:`UDP_PROBE_SECONDS`, else the first
TCP (or TLS) URL. ``--relay-only`` sets ``iceTransportPolicy`` to ``relay``,
which aiortc implements natively: no host or server-reflexive candidate is
gathered and the peer only ever learns the TURN server's relayed address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.rtcicetransport import parse_stun_turn_uri

from rtcxfer.errors import RtcxferError
from rtcxfer.server.ice import check_url

logger = logging.getLogger(__name__)

UDP_PROBE_SECONDS = 1.0
UDP_PROBE_TRIES = 3
# TURN credentials from the server are refreshed when they expire within this long.
REFRESH_MARGIN_SECONDS = 300.0


class IceServerError(RtcxferError):
    """A --stun / --turn URL that cannot be used."""


@dataclass(frozen=True)
class IceOptions:
    stun: Sequence[str] = field(default_factory=tuple)
    turn: Sequence[str] = field(default_factory=tuple)
    turn_user: str | None = None
    turn_password: str | None = None
    use_server_ice: bool = True  # --no-server-ice: False
    relay_only: bool = False  # --relay-only


ICE_SCHEMES = frozenset({"stun", "stuns", "turn", "turns"})


def _normalise(url: str, schemes: tuple[str, ...], option: str) -> str:
    """Accept ``scheme:host[:port][?transport=...]`` or a bare ``host[:port]``."""
    url = url.strip()
    scheme, _, rest = url.partition(":")
    if scheme.lower() in ICE_SCHEMES:
        if scheme.lower() in schemes and rest and not rest.startswith("/"):
            return _checked(url, option)
    elif url and "/" not in url:
        return _checked(f"{schemes[0]}:{url}", option)
    raise IceServerError(f"{option} {url!r}: expected {schemes[0]}:HOST[:PORT]")


def _checked(url: str, option: str) -> str:
    try:
        _usable(url)
    except ValueError:
        raise IceServerError(f"{option} {url!r}: expected a {url.split(':')[0]}:HOST[:PORT] "
                             "URL") from None
    return url


def _usable(url: str) -> None:
    """Raise ValueError unless both a browser and aiortc accept ``url``.

    The strict grammar of :func:`rtcxfer.server.ice.check_url` (host names of
    letters, digits, dots and dashes) also keeps what a server sends printable:
    the URLs appear in messages on the terminal.
    """
    check_url(url, ("stun", "stuns", "turn", "turns"))
    parse_stun_turn_uri(url)


@dataclass(frozen=True)
class IceUrl:
    """One usable STUN/TURN URL with the credentials that go with it."""

    url: str
    username: str | None = None
    credential: str | None = None
    from_server: bool = False

    @property
    def is_turn(self) -> bool:
        return self.url.lower().startswith("turn")

    @property
    def over_udp(self) -> bool:
        parsed = parse_stun_turn_uri(self.url)
        return parsed["scheme"] == "turn" and parsed.get("transport") == "udp"


def server_ice_urls(value: Any) -> list[IceUrl]:
    """The usable URLs of a server's ``iceServers`` (anything malformed is skipped)."""
    if not isinstance(value, list):
        return []
    urls: list[IceUrl] = []
    for server in value[:16]:
        if not isinstance(server, dict):
            continue
        raw = server.get("urls")
        listed = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
        username, credential = server.get("username"), server.get("credential")
        for url in listed[:16]:
            if not isinstance(url, str):
                continue
            try:
                _usable(url)
            except ValueError:
                # repr(): the URL came from outside and goes to a log.
                logger.info("ignoring ICE server URL %r from the server", url[:200])
                continue
            if url.startswith("turn") and not (isinstance(username, str)
                                               and isinstance(credential, str)):
                continue
            urls.append(IceUrl(url, username if url.startswith("turn") else None,
                               credential if url.startswith("turn") else None,
                               from_server=True))
    return urls


def own_ice_urls(options: IceOptions) -> list[IceUrl]:
    urls = [IceUrl(_normalise(url, ("stun", "stuns"), "--stun")) for url in options.stun]
    if options.turn and (options.turn_user is None or options.turn_password is None):
        raise IceServerError("--turn needs --turn-user and --turn-password")
    urls += [IceUrl(_normalise(url, ("turn", "turns"), "--turn"), options.turn_user,
                    options.turn_password) for url in options.turn]
    return urls


@dataclass(frozen=True)
class IcePlan:
    """The STUN and TURN URL one connection uses, and the policy."""

    stun: IceUrl | None = None
    turn: IceUrl | None = None
    relay_only: bool = False

    def configuration(self) -> RTCConfiguration:
        servers = []
        if self.stun is not None:
            servers.append(RTCIceServer(urls=self.stun.url))
        if self.turn is not None:
            servers.append(RTCIceServer(urls=self.turn.url, username=self.turn.username,
                                        credential=self.turn.credential))
        policy = RTCIceTransportPolicy.RELAY if self.relay_only else RTCIceTransportPolicy.ALL
        return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)

    def tried(self) -> str:
        """The ICE servers in words, for a failure message."""
        names = [u.url for u in (self.stun, self.turn) if u is not None]
        return ", ".join(names) if names else "no STUN or TURN server"

    def advice(self) -> str:
        if self.turn is None:
            return ("a TURN server relays between networks that cannot reach each other: "
                    "use a signaling server started with --turn (docs/deploy.md) or pass "
                    "--turn URL")
        return (f"check that {self.turn.url} is reachable from both networks and that "
                "its credentials are valid; where UDP is blocked, offer "
                "turn:HOST:3478?transport=tcp or turns:HOST:5349")


def rtc_configuration(options: IceOptions) -> RTCConfiguration:
    """The configuration from the user's own options only (no server, no probe)."""
    own = own_ice_urls(options)
    return IcePlan(next((u for u in own if not u.is_turn), None),
                   next((u for u in own if u.is_turn), None),
                   options.relay_only).configuration()


async def plan_ice(options: IceOptions, server_urls: Sequence[IceUrl] = ()) -> IcePlan:
    """Choose the STUN and TURN URL for a connection; the user's own come first."""
    urls = own_ice_urls(options)
    if options.use_server_ice:
        urls += list(server_urls)
    stun = next((u for u in urls if not u.is_turn), None)
    turns = [u for u in urls if u.is_turn]
    turn = turns[0] if turns else None
    if turn is not None and turn.over_udp and any(not u.over_udp for u in turns):
        parsed = parse_stun_turn_uri(turn.url)
        if not await udp_reachable(parsed["host"], parsed["port"]):
            turn = next(u for u in turns if not u.over_udp)
            logger.info("no UDP answer from %s: using %s", parsed["host"], turn.url)
            if stun is not None and parse_stun_turn_uri(stun.url)["host"] == parsed["host"]:
                # That host does not answer over UDP: its STUN would only hold up
                # gathering for aioice's whole 5 s timeout.
                stun = None
    if stun is None and turn is not None and turn.over_udp and not options.relay_only:
        # A TURN server answers STUN on its UDP port: without a STUN URL aiortc would
        # gather no server-reflexive candidate, and NATed peers would always relay.
        parsed = parse_stun_turn_uri(turn.url)
        host = f"[{parsed['host']}]" if ":" in parsed["host"] else parsed["host"]
        stun = IceUrl(f"stun:{host}:{parsed['port']}", from_server=turn.from_server)
    if options.relay_only and turn is None:
        raise IceServerError("--relay-only needs a TURN server, and neither the signaling "
                             "server nor --turn offers one")
    return IcePlan(stun, turn, options.relay_only)


def credentials_expiry(urls: Sequence[IceUrl]) -> float | None:
    """The earliest expiry (Unix time) of TURN REST API credentials from the server."""
    expiries = []
    for url in urls:
        head, sep, _ = (url.username or "").partition(":")
        if url.from_server and sep and head.isdigit():
            expiries.append(float(head))
    return min(expiries) if expiries else None


# -- UDP reachability of a TURN server ------------------------------------------

_BINDING_REQUEST = 0x0001
_MAGIC_COOKIE = 0x2112A442


async def udp_reachable(host: str, port: int, *, seconds: float = UDP_PROBE_SECONDS,
                        tries: int = UDP_PROBE_TRIES) -> bool:
    """Whether ``host:port`` answers a STUN binding request over UDP (RFC 8489)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError:
        return False
    family, _, _, _, address = infos[0]
    answered: asyncio.Future[None] = loop.create_future()
    transaction = secrets.token_bytes(12)
    request = struct.pack("!HHI", _BINDING_REQUEST, 0, _MAGIC_COOKIE) + transaction

    class Probe(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            if len(data) >= 20 and data[8:20] == transaction and not answered.done():
                answered.set_result(None)

    try:
        transport, _ = await loop.create_datagram_endpoint(Probe, family=family)
    except OSError:
        return False
    try:
        for _ in range(tries):
            with contextlib.suppress(OSError):
                transport.sendto(request, address)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(answered), seconds / tries)
                return True
        return False
    finally:
        transport.close()


# -- our own networks (for the path) --------------------------------------------


def local_networks() -> list[str]:
    """Directly connected IPv4 networks (CIDR) from ``/proc/net/route``; IPv6 link-local."""
    networks = ["127.0.0.0/8", "::1/128", "fe80::/10"]
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) < 8 or fields[2] != "00000000" or fields[1] == "00000000":
                continue
            destination = socket.inet_ntoa(struct.pack("<I", int(fields[1], 16)))
            mask = socket.inet_ntoa(struct.pack("<I", int(fields[7], 16)))
            with contextlib.suppress(ValueError):
                networks.append(str(ipaddress.ip_network(f"{destination}/{mask}",
                                                         strict=False)))
    return networks
