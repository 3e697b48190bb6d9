"""The signaling core: the rules of PROTOCOL.md section 1, frame in, actions out, no I/O.

Like websockets' protocol layer, the core never touches a socket, a clock or a
name space. The I/O layer (:mod:`rtcxfer.server.server`) hands it every text or
binary message a connection sent, with the time, and carries out the actions it
returns, in order:

- :class:`Send` a frame to this connection;
- :class:`Close` this connection with a close code;
- :class:`Claim` a name in a room (the presence backend answers, now or later,
  through :meth:`SignalingCore.claimed`);
- :class:`Deliver` a relayed message to a user of the room (the backend answers
  :meth:`SignalingCore.undeliverable` when that user is online nowhere);
- :class:`Release` the name of a connection that ended (the backend frees it,
  tells the room, and hands each partner to :meth:`SignalingCore.partner_gone`).

The core keeps, per connection, what the rules need: the login name and room,
the message-rate token bucket, the login attempts, and the ``(peer, session)``
pairs relayed to and from it (at most ``max_sessions``, oldest dropped), from
which a partner gets its ``leave`` messages when the other side goes offline,
wherever that happens. Every rule is unit-tested without sockets
(tests/server/test_core.py).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rtcxfer.protocol.signaling import (
    MAX_FRAME_BYTES,
    Error,
    IceServersRequest,
    InvalidLogin,
    InvalidMessage,
    JSONValue,
    Login,
    LoginResult,
    Relay,
    Relayed,
    UserList,
    encode,
    is_unlisted_name,
    parse_client_message,
    quote,
    to_json,
)
from rtcxfer.text import printable

if TYPE_CHECKING:
    from collections.abc import Sequence

logger = logging.getLogger("rtcxfer.server")

DEFAULT_ROOM = ""  # the room of a login without the "room" field
NO_SESSION = ""  # stands for "no session field" in the session records
POLICY_VIOLATION = 1008

LoginReplyExtras = Callable[[str], "dict[str, JSONValue]"]


def shown(text: str) -> str:
    """Text from outside made safe for the log (control, bidi, invisible characters escaped)."""
    return printable(text, limit=300)


class Conn:
    """What the core knows about one connection. The I/O layer subclasses it."""

    __slots__ = ("allowance", "claiming", "last_message", "login_attempts", "name", "room",
                 "sessions")

    def __init__(self, burst: int, now: float) -> None:
        self.name: str | None = None
        self.room: str = DEFAULT_ROOM
        self.claiming = False  # a Claim is out and not answered yet
        # (peer name, session) pairs relayed with this connection, oldest first.
        self.sessions: dict[tuple[str, str], None] = {}
        self.allowance = float(burst)
        self.last_message = now
        self.login_attempts = 0

    @property
    def label(self) -> str:
        """How logs name this connection: its user name once logged in."""
        return shown(quote(self.name)) if self.name is not None else "a client"


# Actions


class Send:
    """Send ``payload`` (the UTF-8 JSON of one message) to ``conn``."""

    __slots__ = ("conn", "payload")

    def __init__(self, conn: Conn, payload: bytes) -> None:
        self.conn = conn
        self.payload = payload


@dataclass(slots=True)
class Close:
    """Close ``conn`` with ``code`` and ``reason``; it is logged out at once."""

    conn: Conn
    code: int
    reason: str


@dataclass(slots=True)
class Claim:
    """Claim ``name`` in ``room`` for ``conn``; answer with :meth:`SignalingCore.claimed`."""

    conn: Conn
    room: str
    name: str


class Deliver:
    """Deliver ``payload`` (a relayed message, ``sender`` stamped) to ``target`` in ``room``.

    If ``target`` is online nowhere in that room, answer with
    :meth:`SignalingCore.undeliverable`; otherwise the receiving side calls
    :meth:`SignalingCore.delivered` on the target's connection.
    """

    __slots__ = ("conn", "kind", "payload", "room", "session", "target")

    def __init__(self, conn: Conn, room: str, target: str, payload: bytes, kind: str,
                 session: str | None) -> None:
        self.conn = conn
        self.room = room
        self.target = target
        self.payload = payload
        self.kind = kind
        self.session = session


@dataclass(slots=True)
class Release:
    """``conn`` logged out: free ``name`` in ``room``; ``partners`` may need a ``leave``."""

    conn: Conn
    room: str
    name: str
    partners: tuple[str, ...]


Action = Send | Close | Claim | Deliver | Release


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """The rules' parameters (a subset of ServerConfig, see docs/server.md)."""

    token: str | None = None
    max_users: int = 10_000
    message_rate: float = 100.0
    message_burst: int = 500
    max_login_attempts: int = 16
    max_sessions: int = 256
    room_required: bool = False
    # Extra fields for a successful login reply, given the user name (e.g. iceServers).
    login_reply_extras: LoginReplyExtras | None = None


class SignalingCore:
    """PROTOCOL.md section 1 (and the extensions of docs/protocol.md) as a state machine."""

    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        self.online = 0  # connections logged in through this core

    def new_conn(self, now: float) -> Conn:
        return Conn(self.config.message_burst, now)

    # Input

    def receive(self, conn: Conn, data: str | bytes, now: float) -> list[Action]:
        """Act on one message ``conn`` sent at ``now`` (seconds, any monotonic clock)."""
        config = self.config
        # Token bucket: message_rate per second sustained, message_burst at once.
        allowance = min(float(config.message_burst),
                        conn.allowance + (now - conn.last_message) * config.message_rate)
        conn.last_message = now
        if allowance < 1.0:
            conn.allowance = allowance
            logger.info("closing %s: message rate limit exceeded", conn.label)
            return [Close(conn, POLICY_VIOLATION, "message rate limit exceeded")]
        conn.allowance = allowance - 1.0
        try:
            message = parse_client_message(data)
        except InvalidLogin as error:
            return self._login_attempt(conn) or self._refuse_login(conn, str(error))
        except InvalidMessage as error:
            return self._refuse(conn, str(error))
        if isinstance(message, Relay):
            return self._relay(conn, message)
        if isinstance(message, IceServersRequest):
            return self._ice_servers(conn)
        return self._login(conn, message)

    def claimed(self, conn: Conn, room: str, name: str, users: Sequence[str] | None,
                reason: str | None = None, *, unlisted: bool = True) -> list[Action]:
        """The backend's answer to :class:`Claim`: ``users`` of the room (the new user
        included, last) when ``name`` is now ``conn``'s, else ``None`` and why.
        ``unlisted`` False: the backend knows the room holds no unlisted name, so the
        list needs no filtering (it is O(users) per login, on every login)."""
        conn.claiming = False
        if users is None:
            return self._refuse_login(conn, reason or f"name {quote(name)} is already taken")
        conn.name = name
        conn.room = room
        self.online += 1
        reply = to_json(LoginResult(True))
        extras = self.config.login_reply_extras
        if extras is not None:
            # The single place where extension fields join a successful login reply.
            for key, value in extras(name).items():
                reply.setdefault(key, value)
        if logger.isEnabledFor(logging.INFO):
            logger.info("login %s%s (%d online here)", shown(quote(name)),
                        f" in room {shown(quote(room))}" if room else "", self.online)
        # Unlisted names (a `users` probe, code mode) are nobody's business but their own.
        listed = tuple(users) if not unlisted else tuple(
            user for user in users if user == name or not is_unlisted_name(user))
        return [Send(conn, _dump(reply)), Send(conn, encode(UserList(listed)))]

    def undeliverable(self, conn: Conn, target: str) -> list[Action]:
        """The backend found no ``target`` in ``conn``'s room: the relay gets an ``error``."""
        return self._refuse(conn, f"user {quote(target)} is not online")

    def delivered(self, conn: Conn, sender: str, kind: str, session: str | None) -> None:
        """A relay from ``sender`` reached ``conn``: keep the session records of its side."""
        if sender == conn.name:
            return
        if kind == "leave":
            self._forget(conn, sender, session)
        else:
            self._remember(conn, sender, session or NO_SESSION)

    def partner_gone(self, conn: Conn, name: str) -> list[Action]:
        """``name`` went offline in ``conn``'s room: one ``leave`` per session they had."""
        sessions = conn.sessions
        if not sessions:
            return []
        keys = [key for key in sessions if key[0] == name]
        actions: list[Action] = []
        for key in keys:
            del sessions[key]
            actions.append(Send(conn, encode(Relayed("leave", name, None, key[1] or None))))
        return actions

    def closed(self, conn: Conn) -> list[Action]:
        """``conn``'s connection ended (or is being closed): free its name."""
        conn.claiming = False
        name = conn.name
        if name is None:
            return []
        conn.name = None
        self.online -= 1
        partners = tuple(dict.fromkeys(peer for peer, _ in conn.sessions))
        conn.sessions.clear()
        if logger.isEnabledFor(logging.INFO):
            logger.info("offline %s (%d online here)", shown(quote(name)), self.online)
        return [Release(conn, conn.room, name, partners)]

    # Rules

    def _ice_servers(self, conn: Conn) -> list[Action]:
        """ext ``iceservers``: fresh ICE servers (TURN credentials) for a logged-in client."""
        extras = self.config.login_reply_extras
        if conn.name is None:
            return self._refuse(conn, "not logged in")
        if extras is None:
            return self._refuse(conn, "this server hands out no ICE servers")
        servers = extras(conn.name).get("iceServers", [])
        return [Send(conn, _dump({"type": "iceservers", "iceServers": servers}))]

    def _refuse(self, conn: Conn, reason: str) -> list[Action]:
        logger.info("refused from %s: %s", conn.label, shown(reason))
        return [Send(conn, encode(Error(reason)))]

    def _refuse_login(self, conn: Conn, reason: str) -> list[Action]:
        logger.info("refused login from %s: %s", conn.label, shown(reason))
        return [Send(conn, encode(LoginResult(False, reason)))]

    def _login_attempt(self, conn: Conn) -> list[Action]:
        """Count a login attempt: a Close for a client that guesses names or tokens too often."""
        conn.login_attempts += 1
        if conn.login_attempts > self.config.max_login_attempts:
            logger.info("closing %s: too many login attempts", conn.label)
            return [Close(conn, POLICY_VIOLATION, "too many login attempts")]
        return []

    def _login(self, conn: Conn, login: Login) -> list[Action]:
        closing = self._login_attempt(conn)
        if closing:
            return closing
        if conn.name is not None:
            return self._refuse_login(conn, f"already logged in as {quote(conn.name)}")
        if conn.claiming:
            return self._refuse_login(conn, "a login is already in progress")
        config = self.config
        token = config.token
        if token is not None:
            if login.token is None:
                return self._refuse_login(conn, "this server requires an access token")
            if not hmac.compare_digest(login.token.encode(), token.encode()):
                return self._refuse_login(conn, "wrong access token")
        if login.room is None and config.room_required:
            return self._refuse_login(conn, 'this server requires a room ("room" field)')
        if self.online >= config.max_users:
            return self._refuse_login(conn, f"server is full ({config.max_users} users)")
        conn.claiming = True
        return [Claim(conn, login.room if login.room is not None else DEFAULT_ROOM,
                      login.name)]

    def _relay(self, conn: Conn, relay: Relay) -> list[Action]:
        sender = conn.name
        if sender is None:
            return self._refuse(conn, "not logged in")
        try:
            payload = encode(Relayed(relay.type, sender, relay.payload, relay.session))
        except InvalidMessage as error:
            return self._refuse(conn, str(error))
        if len(payload) > MAX_FRAME_BYTES:
            # Stamping the sender's name may push a frame just under the limit over it.
            return self._refuse(conn,
                                f"message too large to relay (limit {MAX_FRAME_BYTES} bytes)")
        target = relay.othername
        if target != sender:
            if relay.type == "leave":
                self._forget(conn, target, relay.session)
            else:
                self._remember(conn, target, relay.session or NO_SESSION)
        return [Deliver(conn, conn.room, target, payload, relay.type, relay.session)]

    def _remember(self, conn: Conn, peer: str, session: str) -> None:
        key = (peer, session)
        sessions = conn.sessions
        if key in sessions:
            return
        sessions[key] = None
        if len(sessions) > self.config.max_sessions:
            # Bounded memory beats a complete record: the oldest pair gets no leave.
            del sessions[next(iter(sessions))]

    def _forget(self, conn: Conn, peer: str, session: str | None) -> None:
        sessions = conn.sessions
        if session is not None:
            sessions.pop((peer, session), None)
            return
        for key in [key for key in sessions if key[0] == peer]:
            del sessions[key]


def _dump(data: dict[str, JSONValue]) -> bytes:
    import json

    try:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        return json.dumps(data, separators=(",", ":")).encode()
