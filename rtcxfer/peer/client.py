"""What every peer command shares: its options and how it logs in."""

from __future__ import annotations

import getpass
import secrets
from dataclasses import dataclass, field

from rtcxfer.errors import NameTaken
from rtcxfer.peer.config import IceOptions
from rtcxfer.peer.session import CONNECT_TIMEOUT
from rtcxfer.peer.signaling import SignalingClient
from rtcxfer.progress import Output
from rtcxfer.protocol.code import CODE_NAME_PREFIX

FALLBACK_NAME = "rtcxfer"


@dataclass(frozen=True)
class ClientOptions:
    server: str
    name: str | None = None  # None: the OS user name (see log_in)
    token: str | None = None
    ice: IceOptions = field(default_factory=IceOptions)
    connect_timeout: float = CONNECT_TIMEOUT  # seconds to reach a peer before NoIcePath
    room: str | None = None  # ext "room" of login (docs/protocol.md); None: the default room


def default_name() -> str:
    try:
        return getpass.getuser() or FALLBACK_NAME
    except (KeyError, OSError):
        return FALLBACK_NAME


async def log_in(options: ClientOptions, output: Output, *,
                 vary_default_name: bool = False) -> SignalingClient:
    """Connect and log in under ``options.name`` or, when none was given, the OS user name.

    With ``vary_default_name`` (``send``: nobody addresses a sender by name), a
    defaulted name that is taken, typically by the same user's own ``listen``,
    is retried once with a random suffix. An explicit name never is, nor a
    listener's: people send to it by that name.
    """
    name = options.name or default_name()
    client = SignalingClient(options.server, name, token=options.token, room=options.room)
    try:
        await client.connect()
    except NameTaken:
        if options.name is not None or not vary_default_name:
            raise
        client = SignalingClient(
            options.server, f"{name}-{secrets.token_hex(2)}", token=options.token,
            room=options.room,
        )
        await client.connect()
    output.report(
        "connected",
        f"connected to {options.server} as {client.name}",
        server=options.server,
        name=client.name,
    )
    return client


USERS_NAME_PREFIX = "rtcxfer-users-"


async def list_users(options: ClientOptions) -> list[str]:
    """Everyone online, ordered as the server lists them.

    The protocol has no anonymous listing, so this logs in for a moment as
    ``rtcxfer-users-<16 hex>``: a name no person picks, and too random to
    collide with another ``rtcxfer users`` running at the same time.
    """
    client = SignalingClient(
        options.server, USERS_NAME_PREFIX + secrets.token_hex(8), token=options.token,
        room=options.room,
    )
    await client.connect()
    try:
        return [user for user in client.users if not is_users_probe(user)]
    finally:
        await client.close()


def is_users_probe(name: str) -> bool:
    """A name nobody addresses, not worth showing anyone.

    ``rtcxfer users`` logs in for a moment as ``rtcxfer-users-…``; code mode's
    one-time logins are ``rtcxfer-code-…`` (docs/protocol.md, "Code mode").
    """
    return name.startswith((USERS_NAME_PREFIX, CODE_NAME_PREFIX))
