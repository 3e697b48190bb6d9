"""The ``RTCConfiguration`` rtcxfer hands to aiortc: only the servers the user named.

aiortc falls back to ``stun:stun.l.google.com:19302`` when ``iceServers`` is
``None`` (``RTCIceGatherer.getDefaultIceServers``); rtcxfer always passes a list,
empty unless ``--stun`` / ``--turn`` were given, so it never contacts a third
party on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCIceServer

from rtcxfer.errors import RtcxferError


class IceServerError(RtcxferError):
    """A --stun / --turn URL that cannot be used."""


@dataclass(frozen=True)
class IceOptions:
    stun: Sequence[str] = field(default_factory=tuple)
    turn: Sequence[str] = field(default_factory=tuple)
    turn_user: str | None = None
    turn_password: str | None = None


ICE_SCHEMES = frozenset({"stun", "stuns", "turn", "turns"})


def _normalise(url: str, schemes: tuple[str, ...], option: str) -> str:
    """Accept ``scheme:host[:port][?transport=...]`` or a bare ``host[:port]``."""
    url = url.strip()
    scheme, _, rest = url.partition(":")
    if scheme.lower() in ICE_SCHEMES:
        if scheme.lower() in schemes and rest and not rest.startswith("/"):
            return url
    elif url and "/" not in url:
        return f"{schemes[0]}:{url}"
    raise IceServerError(f"{option} {url!r}: expected {schemes[0]}:HOST[:PORT]")


def rtc_configuration(options: IceOptions) -> RTCConfiguration:
    servers = [
        RTCIceServer(urls=_normalise(url, ("stun", "stuns"), "--stun")) for url in options.stun
    ]
    if options.turn and (options.turn_user is None or options.turn_password is None):
        raise IceServerError("--turn needs --turn-user and --turn-password")
    servers += [
        RTCIceServer(
            urls=_normalise(url, ("turn", "turns"), "--turn"),
            username=options.turn_user,
            credential=options.turn_password,
        )
        for url in options.turn
    ]
    return RTCConfiguration(iceServers=servers)
