"""The ICE servers a signaling server hands out: ``iceServers`` (docs/protocol.md).

Pure: no I/O. ``rtcxfer serve --stun URL --turn URL --turn-secret SECRET`` builds
an :class:`IceServerPolicy`; each successful ``login`` reply (and each
``iceservers`` reply) carries :meth:`IceServerPolicy.ice_servers` for that user.

TURN credentials follow the "TURN REST API" scheme that coturn implements with
``use-auth-secret`` / ``static-auth-secret``
(draft-uberti-behave-turn-rest-00): the user name is ``<expiry>:<name>`` where
``<expiry>`` is a Unix time in seconds, and the password is
``base64(HMAC-SHA1(secret, username))``. The TURN server recomputes the
password from the user name with the same secret and refuses it once
``<expiry>`` has passed, so the secret itself never leaves the server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TURN_TTL = 3600
# scheme:host[:port][?transport=udp|tcp]; host may be [IPv6]. What browsers accept.
_URL = re.compile(
    r"^(?P<scheme>stuns?|turns?):(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)"
    r"(?::(?P<port>[0-9]{1,5}))?(?:\?transport=(?P<transport>udp|tcp))?"
)


class IceUrlError(ValueError):
    """A --stun / --turn URL that a browser or aiortc would not accept."""


def check_url(url: str, schemes: tuple[str, ...]) -> str:
    """Return ``url`` if it is a well-formed ``scheme:host[:port][?transport=...]``."""
    match = _URL.fullmatch(url)
    if match is None or match.group("scheme") not in schemes:
        raise IceUrlError(
            f"{url!r} is not a {' or '.join(s + ':HOST[:PORT]' for s in schemes)} URL")
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise IceUrlError(f"{url!r}: port out of range")
    if match.group("transport") and match.group("scheme").startswith("stun"):
        raise IceUrlError(f"{url!r}: a STUN URL takes no ?transport=")
    return url


def turn_rest_credentials(secret: str, name: str, expiry: int) -> tuple[str, str]:
    """``(username, credential)`` valid until the Unix time ``expiry``."""
    username = f"{expiry}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def credential_expiry(username: str) -> int | None:
    """The Unix time a TURN REST API user name expires, or None if it does not say."""
    head, sep, _ = username.partition(":")
    return int(head) if sep and head.isdigit() else None


@dataclass(frozen=True)
class IceServerPolicy:
    """What ``rtcxfer serve`` was told about STUN and TURN."""

    stun: Sequence[str] = field(default_factory=tuple)
    turn: Sequence[str] = field(default_factory=tuple)
    turn_secret: str | None = None
    turn_ttl: int = DEFAULT_TURN_TTL

    def __post_init__(self) -> None:
        for url in self.stun:
            check_url(url, ("stun", "stuns"))
        for url in self.turn:
            check_url(url, ("turn", "turns"))
        if self.turn and not self.turn_secret:
            raise IceUrlError("--turn needs --turn-secret (or RTCXFER_TURN_SECRET)")
        if self.turn_ttl < 60:
            raise IceUrlError("--turn-ttl must be at least 60 seconds")

    @property
    def enabled(self) -> bool:
        return bool(self.stun or self.turn)

    def ice_servers(self, name: str, now: float) -> list[dict[str, Any]]:
        """The ``iceServers`` list for user ``name`` logging in at Unix time ``now``."""
        servers: list[dict[str, Any]] = []
        if self.stun:
            servers.append({"urls": list(self.stun)})
        if self.turn:
            assert self.turn_secret is not None
            username, credential = turn_rest_credentials(
                self.turn_secret, name, int(now) + self.turn_ttl)
            servers.append({"urls": list(self.turn), "username": username,
                            "credential": credential})
        return servers

    def login_reply_extras(self, clock: Callable[[], float]) -> Callable[[str], dict[str, Any]]:
        """The ext fields of a successful login reply for a user name (``ServerConfig``)."""

        def extras(name: str) -> dict[str, Any]:
            return {"iceServers": self.ice_servers(name, clock())}

        return extras
