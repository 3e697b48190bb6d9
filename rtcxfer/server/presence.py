"""Presence and routing: who is online in which room, and how a message reaches them.

The signaling core (:mod:`rtcxfer.server.core`) decides *what* to send; a
presence backend knows *where* users are. Its interface is small:

- :meth:`Presence.claim` a name in a room (atomic: a name is someone's or not);
- :meth:`Presence.release` it (tells the room, and the partners of the leaver);
- :meth:`Presence.members` lists a room;
- :meth:`Presence.deliver` a relayed message to one user of a room;
- :meth:`Presence.broadcast` a presence update to a room.

:class:`MemoryPresence` is the embedded default: one process, every user local,
every call synchronous. :class:`rtcxfer.server.redis_presence.RedisPresence`
shares one name space between any number of instances. A backend talks back to
the server through a :class:`PresenceSink`: write a frame to a local client,
hand a relayed message to it, tell it a partner is gone, or evict it.
"""

from __future__ import annotations

import abc
import struct
from collections.abc import Awaitable, Iterable, Sequence
from typing import Protocol

from rtcxfer.protocol.signaling import Updata, encode, is_unlisted_name, quote
from rtcxfer.server.core import Conn

# The answer to a claim: the room's users (the new one last) or None, and why not.
ClaimAnswer = tuple[Sequence[str] | None, str | None]


def text_frame(payload: bytes) -> bytes:
    """A complete unmasked server-to-client text frame carrying ``payload`` (RFC 6455
    section 5.2: FIN and opcode 1, then the length in 7, 7+16 or 7+64 bits): the same
    bytes as websockets' ``Frame(Opcode.TEXT, payload).serialize(mask=False)``, built
    in a fifth of the time (every relayed message and ``updata`` takes one)."""
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return _HEADER_16.pack(0x81, 126, length) + payload
    return _HEADER_64.pack(0x81, 127, length) + payload


_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")


def presence_frame(action: str, name: str) -> bytes:
    """The ``updata`` frame for ``name`` logging in or going offline; empty (nothing is
    written) for an unlisted name (docs/protocol.md)."""
    if is_unlisted_name(name):
        return b""
    return text_frame(encode(Updata("login" if action == "login" else "offline", name)))


class PresenceSink(Protocol):
    """What a backend may ask of the server about local clients."""

    def write(self, client: Conn, frame: bytes, *, urgent: bool = True) -> None:
        """Queue a complete WebSocket frame for a local client."""

    def write_many(self, clients: Iterable[Conn], frame: bytes) -> None:
        """Queue one presence frame (not urgent) for each of ``clients``, in one call:
        the fan-out of a login is the server's hottest loop."""

    def deliver_local(self, client: Conn, payload: bytes, sender: str, kind: str,
                      session: str | None) -> None:
        """Hand a relayed message (JSON ``payload``, sender stamped) to a local client."""

    def partner_gone(self, client: Conn, name: str) -> None:
        """``name`` went offline in the client's room: send the client its ``leave``s."""

    def evict(self, client: Conn, reason: str) -> None:
        """Close a local client whose name the backend could not keep."""


class Presence(abc.ABC):
    """A presence/routing backend (see the module docstring)."""

    def __init__(self, sink: PresenceSink) -> None:
        self.sink = sink

    @property
    def unavailable(self) -> str | None:
        """Why the name space cannot be used now (``/healthz`` says it), or None."""
        return None

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect, register, start background work."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release everything this instance holds; stop background work."""

    @abc.abstractmethod
    def claim(self, client: Conn, room: str, name: str
              ) -> ClaimAnswer | Awaitable[ClaimAnswer]:
        """Make ``name`` in ``room`` the client's, atomically, and tell the room.

        The answer (now, or from an awaitable) is the room's users in login
        order, the new one last, or ``None`` with the reason.
        """

    @abc.abstractmethod
    def release(self, client: Conn, room: str, name: str, partners: Sequence[str]) -> None:
        """Free ``name``: its ``partners`` get :meth:`PresenceSink.partner_gone`, then the
        room gets ``updata``/``offline``."""

    @abc.abstractmethod
    def members(self, room: str) -> list[str]:
        """The users of ``room`` as this instance knows them, in login order."""

    @abc.abstractmethod
    def deliver(self, room: str, target: str, sender: str, kind: str, session: str | None,
                payload: bytes) -> bool | Awaitable[bool]:
        """Route a relayed message to ``target``; False if it is online nowhere in ``room``.

        The answer may come later (an awaitable), when this instance must ask which
        one holds ``target``; relays from one sender still arrive in the order sent."""

    @abc.abstractmethod
    def broadcast(self, room: str, frame: bytes, *, exclude: str | None = None) -> None:
        """Send a presence frame to every user of ``room`` (but ``exclude``)."""

    def may_have_unlisted(self, room: str) -> bool:
        """False only when ``room`` surely holds no unlisted name (docs/protocol.md):
        then a ``userlist`` needs no filtering."""
        return True


class MemoryPresence(Presence):
    """Everything in this process: a dict of rooms, each a dict of names in login order."""

    def __init__(self, sink: PresenceSink) -> None:
        super().__init__(sink)
        self.rooms: dict[str, dict[str, Conn]] = {}
        self.unlisted: dict[str, int] = {}  # room -> unlisted names online in it

    def may_have_unlisted(self, room: str) -> bool:
        return room in self.unlisted

    def claim(self, client: Conn, room: str, name: str) -> ClaimAnswer:
        members = self.rooms.get(room)
        if members is None:
            members = self.rooms[room] = {}
        elif name in members:
            return None, f"name {quote(name)} is already taken"
        if members:
            self.broadcast(room, presence_frame("login", name))
        members[name] = client
        if is_unlisted_name(name):
            self.unlisted[room] = self.unlisted.get(room, 0) + 1
        return tuple(members), None

    def release(self, client: Conn, room: str, name: str, partners: Sequence[str]) -> None:
        members = self.rooms.get(room)
        if members is None or members.get(name) is not client:
            return
        del members[name]
        if is_unlisted_name(name):
            left = self.unlisted.get(room, 1) - 1
            if left > 0:
                self.unlisted[room] = left
            else:
                self.unlisted.pop(room, None)
        for partner in partners:
            peer = members.get(partner)
            if peer is not None:
                self.sink.partner_gone(peer, name)
        if members:
            self.broadcast(room, presence_frame("offline", name))
        else:
            del self.rooms[room]

    def members(self, room: str) -> list[str]:
        return list(self.rooms.get(room, ()))

    def deliver(self, room: str, target: str, sender: str, kind: str, session: str | None,
                payload: bytes) -> bool:
        members = self.rooms.get(room)
        client = members.get(target) if members is not None else None
        if client is None:
            return False
        self.sink.deliver_local(client, payload, sender, kind, session)
        return True

    def broadcast(self, room: str, frame: bytes, *, exclude: str | None = None) -> None:
        members = self.rooms.get(room)
        if members is None or not frame:
            return
        if exclude is None:
            self.sink.write_many(members.values(), frame)
            return
        self.sink.write_many([client for name, client in members.items() if name != exclude],
                             frame)
