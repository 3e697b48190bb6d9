"""Signaling client: log in, track who is online, relay WebRTC negotiation.

Speaks PROTOCOL.md section 1 as JSON and stays lenient with the server:
unknown message types and unknown fields are ignored. Relayed negotiation
messages are dispatched by ``(peer, session)`` to the handler a
:class:`~rtcxfer.peer.session.PeerSession` registered; an offer that nobody
expects goes to :attr:`SignalingClient.on_new_offer` (the listener).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from rtcxfer.errors import LoginRefused, NameTaken, ServerUnreachable
from rtcxfer.peer.serverurl import TLS_HINT

logger = logging.getLogger(__name__)

DEFAULT_SERVER = "ws://127.0.0.1:9090"
LOGIN_TIMEOUT = 10.0
# The server sends userlist right after a successful login; a server that
# does not is still usable, with an empty list until updata messages arrive.
USERLIST_GRACE = 2.0
# After a failed wss:// handshake: how long to try the same address without TLS.
PLAIN_PROBE_TIMEOUT = 5.0
NEGOTIATION_TYPES = frozenset({"offer", "answer", "candidate", "leave"})
NO_SESSION = ""


@dataclass(frozen=True)
class Signal:
    """One relayed negotiation message."""

    type: str  # "offer", "answer", "candidate" or "leave"
    peer: str
    session: str  # NO_SESSION when the peer sent none
    payload: Any  # the offer/answer description dict, the candidate init (or None)


SignalHandler = Callable[[Signal], None]


class SignalingClient:
    """One logged-in WebSocket to an rtcxfer (or any PROTOCOL.md) signaling server."""

    def __init__(self, url: str, name: str, *, token: str | None = None,
                 room: str | None = None) -> None:
        self.url = url
        self.name = name
        self.token = token
        self.room = room  # ext (docs/protocol.md): None logs in to the default room
        self.users: list[str] = []
        self.on_new_offer: SignalHandler | None = None
        self.on_presence: Callable[[str, bool], None] | None = None
        self.on_server_error: Callable[[str], None] | None = None
        # Relayed messages no route and no on_new_offer took (code mode, docs/protocol.md).
        self.on_unrouted: SignalHandler | None = None
        # ext: the login reply's iceServers (docs/protocol.md); None if it had none.
        self.ice_servers: Any = None
        self._ice_servers_reply: asyncio.Future[Any] | None = None
        self._routes: dict[tuple[str, str], SignalHandler] = {}
        self._websocket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()

    # -- connection -------------------------------------------------------

    async def connect(self) -> None:
        """Open the WebSocket and log in; raise ServerUnreachable, NameTaken, LoginRefused."""
        try:
            self._websocket = await asyncio.wait_for(
                connect(self.url, open_timeout=LOGIN_TIMEOUT, max_size=2**20,
                        **_proxy_settings(self.url)),
                LOGIN_TIMEOUT,
            )
        except InvalidURI as error:
            raise ServerUnreachable(f"{self.url} is not a ws:// or wss:// URL") from error
        except ssl.SSLCertVerificationError as error:
            raise ServerUnreachable(
                f"the TLS certificate of {self.url} is not trusted "
                f"({error.verify_message or error.reason}); {TLS_HINT}"
            ) from error
        except (OSError, InvalidHandshake, TimeoutError) as error:
            if self.url.startswith("wss://") and not isinstance(
                error, ConnectionRefusedError | TimeoutError
            ) and await _speaks_plain_websocket(_plain(self.url)):
                raise ServerUnreachable(
                    f"cannot reach the signaling server at {self.url}: this server does not "
                    f"speak TLS (it answers on {_plain(self.url)})"
                ) from error
            raise ServerUnreachable(
                f"cannot reach the signaling server at {self.url} ({_describe(error)})"
            ) from error
        try:
            await asyncio.wait_for(self._login(), LOGIN_TIMEOUT)
        except TimeoutError as error:
            await self._websocket.close()
            raise ServerUnreachable(
                f"the signaling server at {self.url} did not answer the login"
            ) from error
        except ConnectionClosed as error:
            reason = error.rcvd.reason if error.rcvd is not None and error.rcvd.reason else ""
            raise ServerUnreachable(
                f"the signaling server at {self.url} closed the connection during login"
                + (f": {reason}" if reason else "")
            ) from error
        except BaseException:
            await self._websocket.close()
            raise
        self._reader = asyncio.create_task(self._read_forever(), name="signaling-reader")

    async def _login(self) -> None:
        assert self._websocket is not None
        login: dict[str, Any] = {"type": "login", "name": self.name}
        if self.token is not None:
            login["token"] = self.token
        if self.room is not None:
            login["room"] = self.room
        await self._websocket.send(json.dumps(login))
        while True:
            message = _decode(await self._websocket.recv())
            if message is None:
                continue
            if message.get("type") == "error":
                raise LoginRefused(f"the server refused the login: {message.get('message')}")
            if message.get("type") != "login":
                continue
            if message.get("success") is True:
                self.ice_servers = message.get("iceServers")
                break
            reason = message.get("message")
            if not isinstance(reason, str) or not reason or _means_taken(reason):
                # A server written to the original design gives no reason:
                # a taken name is the one refusal it knows.
                raise NameTaken(f"the name {self.name!r} is taken on {self.url}")
            raise LoginRefused(f"the server refused the name {self.name!r}: {reason}")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(USERLIST_GRACE):
                while True:
                    message = _decode(await self._websocket.recv())
                    if message is not None and message.get("type") == "userlist":
                        self._handle(message)
                        return
                    if message is not None:
                        self._handle(message)

    async def close(self) -> None:
        if self._websocket is not None:
            await self._websocket.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._closed.set()

    async def wait_closed(self) -> None:
        """Return when the server connection is gone (closed by either side)."""
        await self._closed.wait()

    @property
    def is_open(self) -> bool:
        return self._websocket is not None and not self._closed.is_set()

    # -- routing ----------------------------------------------------------

    def route(self, peer: str, session: str, handler: SignalHandler) -> None:
        self._routes[(peer, session)] = handler

    def unroute(self, peer: str, session: str, handler: SignalHandler) -> None:
        """Stop routing to ``handler``, unless a newer connection took the route over."""
        if self._routes.get((peer, session)) == handler:
            del self._routes[(peer, session)]

    # -- sending ----------------------------------------------------------

    async def send_offer(self, peer: str, session: str, description: dict[str, str]) -> None:
        await self._relay("offer", peer, session, offer=description)

    async def send_answer(self, peer: str, session: str, description: dict[str, str]) -> None:
        await self._relay("answer", peer, session, answer=description)

    async def send_candidate(self, peer: str, session: str, init: dict[str, Any] | None) -> None:
        await self._relay("candidate", peer, session, candidate=init)

    async def send_leave(self, peer: str, session: str) -> None:
        await self._relay("leave", peer, session)

    async def _relay(self, kind: str, peer: str, session: str, **fields: Any) -> None:
        message: dict[str, Any] = {"type": kind, "name": self.name, "othername": peer, **fields}
        if session != NO_SESSION:
            message["session"] = session
        if self._websocket is None or self._closed.is_set():
            raise ServerUnreachable(f"lost the connection to the signaling server at {self.url}")
        try:
            await self._websocket.send(json.dumps(message))
        except ConnectionClosed as error:
            raise ServerUnreachable(
                f"lost the connection to the signaling server at {self.url}"
            ) from error

    async def refresh_ice_servers(self) -> bool:
        """ext ``iceservers``: ask for fresh ICE servers; False if none came in time."""
        if self._websocket is None or self._closed.is_set():
            return False
        self._ice_servers_reply = asyncio.get_running_loop().create_future()
        try:
            await self._websocket.send(json.dumps({"type": "iceservers"}))
            await asyncio.wait_for(asyncio.shield(self._ice_servers_reply), LOGIN_TIMEOUT)
            return True
        except (ConnectionClosed, TimeoutError):
            return False
        finally:
            self._ice_servers_reply = None

    # -- receiving --------------------------------------------------------

    async def _read_forever(self) -> None:
        assert self._websocket is not None
        try:
            async for frame in self._websocket:
                message = _decode(frame)
                if message is not None:
                    self._handle(message)
        except ConnectionClosed:
            pass
        finally:
            self._closed.set()

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "userlist":
            users = message.get("users")
            if isinstance(users, list):
                self.users = list(dict.fromkeys(u for u in users if isinstance(u, str)))
        elif kind == "updata":
            self._handle_presence(message)
        elif kind in NEGOTIATION_TYPES:
            self._dispatch(kind, message)
        elif kind == "iceservers":
            self.ice_servers = message.get("iceServers")
            if self._ice_servers_reply is not None and not self._ice_servers_reply.done():
                self._ice_servers_reply.set_result(self.ice_servers)
        elif kind == "error":
            text = message.get("message")
            text = text if isinstance(text, str) else "unspecified error"
            logger.info("signaling server error: %s", text)
            if self.on_server_error is not None:
                self.on_server_error(text)
        else:
            logger.debug("ignoring signaling message of type %r", kind)

    def _handle_presence(self, message: dict[str, Any]) -> None:
        name, action = message.get("name"), message.get("action")
        if not isinstance(name, str) or action not in ("login", "offline"):
            return
        online = action == "login"
        if online and name not in self.users:
            self.users.append(name)
        elif not online and name in self.users:
            self.users.remove(name)
        if self.on_presence is not None:
            self.on_presence(name, online)

    def _dispatch(self, kind: str, message: dict[str, Any]) -> None:
        peer = message.get("name")
        session = message.get("session", NO_SESSION)
        if not isinstance(peer, str) or not isinstance(session, str):
            logger.debug("ignoring %s without a usable name/session", kind)
            return
        signal = Signal(kind, peer, session, message.get(kind))
        if kind == "offer" and self.on_new_offer is not None:
            # An offer always starts a connection. One for a (peer, session) that has
            # one already means the peer started over (without `session` a pair has one
            # connection at a time): the old connection ends as if the peer had left.
            replaced = self._routes.pop((peer, session), None)
            if replaced is not None:
                replaced(Signal("leave", peer, session, None))
            self.on_new_offer(signal)
            return
        routed = self._routes.get((peer, session))
        if session != NO_SESSION or (routed is not None and kind != "leave"):
            handlers = [routed] if routed is not None else []
        else:
            to_peer = [h for (p, _), h in list(self._routes.items()) if p == peer]
            # A leave without session ends them all. `session` is an extension: a peer
            # that does not echo it still answers the one connection we have with it.
            handlers = to_peer if kind == "leave" or len(to_peer) == 1 else []
        for handler in handlers:
            handler(signal)
        if not handlers and self.on_unrouted is not None:
            self.on_unrouted(signal)
        elif not handlers:
            logger.debug("no session for %s from %s (session %r)", kind, peer, session)


def _decode(frame: str | bytes) -> dict[str, Any] | None:
    if isinstance(frame, bytes):
        return None
    try:
        message = json.loads(frame)
    except ValueError:
        logger.debug("ignoring a non-JSON frame from the signaling server")
        return None
    return message if isinstance(message, dict) else None


def _proxy_settings(url: str) -> dict[str, Any]:
    """No proxy for a server on this machine, whatever HTTPS_PROXY says.

    websockets honours the proxy environment variables, and without NO_PROXY a
    proxy would be asked to reach 127.0.0.1, its own loopback, not ours.
    """
    host = urlsplit(url).hostname or ""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    return {"proxy": None} if local else {}


async def _speaks_plain_websocket(url: str) -> bool:
    """Whether ``url`` (a ws:// URL) accepts a WebSocket: told apart from a TLS failure."""
    try:
        async with asyncio.timeout(PLAIN_PROBE_TIMEOUT):
            websocket = await connect(url, open_timeout=PLAIN_PROBE_TIMEOUT,
                                      **_proxy_settings(url))
            await websocket.close()
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError):
        return False
    return True


def _plain(url: str) -> str:
    return "ws://" + url.removeprefix("wss://") if url.startswith("wss://") else url


def _means_taken(reason: str) -> bool:
    reason = reason.lower()
    return any(word in reason for word in ("taken", "in use", "already"))


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return str(error) or type(error).__name__
