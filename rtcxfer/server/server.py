"""The asyncio signaling server: PROTOCOL.md section 1 on top of :mod:`rtcxfer.protocol.signaling`.

websockets does the handshake, framing, keepalive and closing. Every decision
is then taken synchronously, as a frame is parsed (:meth:`SignalingServer.receive`),
with no queue and no task switch per message. Outgoing frames are encoded once
and queued per recipient (:meth:`SignalingServer.write`); each recipient's
queue leaves in one transport write (:meth:`SignalingServer.flush`), so a
broadcast to N users costs N list appends, not N coroutines, and a recipient
that does not read never blocks a sender: once its send buffer passes a limit
it is disconnected instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hmac
import http
import importlib.resources
import logging
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.frames import DATA_OPCODES, CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event, State
from websockets.server import ServerProtocol

from rtcxfer import __version__
from rtcxfer.protocol.signaling import (
    MAX_FRAME_BYTES,
    Error,
    InvalidLogin,
    InvalidMessage,
    Login,
    LoginResult,
    Message,
    Relay,
    Relayed,
    Updata,
    UserList,
    encode,
    parse_client_message,
    quote,
)
from rtcxfer.server.handshake import SignalingProtocol
from rtcxfer.server.http import (
    HEALTH_PATH,
    OriginPolicy,
    StaticFiles,
    is_websocket_upgrade,
    json_response,
    make_response,
    single_header,
    text_response,
)
from rtcxfer.text import printable

logger = logging.getLogger("rtcxfer.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9090
# Frames above MAX_FRAME_BYTES but below this get an "error" and the connection
# lives on; larger ones are not even read: websockets closes with 1009.
HARD_FRAME_LIMIT = 1024 * 1024
# Pending TCP connections the kernel queues (capped by net.core.somaxconn): a login
# storm of thousands of clients must not overflow it into SYN retransmits.
LISTEN_BACKLOG = 4096
# Presence updates wait this long (seconds) to share one write with the next ones;
# anything urgent for the same client sends them at once, in order.
PRESENCE_DELAY = 0.05
NO_SESSION = ""
# How often (seconds) the housekeeping pass runs: login deadlines, idle connections, GC.
SWEEP_INTERVAL = 1.0
# Run a full garbage collection after this many connections ended (or any, after
# GC_MAX_INTERVAL seconds): a connection leaves reference cycles behind, and the
# spaced-out thresholds of runner.GC_THRESHOLDS would keep them for a long time.
GC_AFTER_CONNECTIONS = 1000
GC_MAX_INTERVAL = 60.0
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything ``rtcxfer serve`` can be told; the defaults are the documented ones."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_users: int = 10_000
    # Connections not logged in (yet) at most, on top of max_users: the room kept
    # for clients logging in, which never eats into the room of logged-in users.
    extra_connections: int = 1024
    # A WebSocket that has not logged in after this many seconds is closed (1008).
    login_timeout: float = 10.0
    # Connections from one IP address that may stay open without logging in for
    # longer than pending_grace seconds; beyond that the oldest ones are closed.
    max_idle_per_ip: int = 16
    pending_grace: float = 2.0
    # Seconds for the TCP/TLS + HTTP opening handshake of a connection.
    open_timeout: float = 10.0
    token: str | None = None
    ssl_context: ssl.SSLContext | None = None
    allowed_origins: frozenset[str] = field(default_factory=frozenset)
    static_root: Path | None = None  # None: the page shipped in rtcxfer/web/static
    message_rate: float = 100.0  # messages per second per connection, sustained
    # A listener answering many offers at once sends ~6 messages per session (answer,
    # candidates, end-of-candidates): 500 covers its 64-session cap; floods run to thousands.
    message_burst: int = 500  # messages a connection may send at once
    max_login_attempts: int = 16
    max_sessions: int = 256  # (peer, session) pairs tracked per connection
    send_queue_limit: int = 1024 * 1024  # bytes waiting for a client that does not read
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 5.0  # for the closing handshake, before the socket is aborted


class Client:
    """One WebSocket connection and what the server knows about it."""

    __slots__ = (
        "allowance",
        "closing",
        "connection",
        "fragments",
        "last_message",
        "login_attempts",
        "name",
        "outbox",
        "sessions",
        "transport",
    )

    def __init__(self, connection: ServerConnection, burst: int, now: float) -> None:
        self.connection = connection
        self.transport = connection.transport
        self.name: str | None = None
        self.outbox: list[bytes] = []  # frames waiting for SignalingServer.flush
        self.fragments: list[Frame] = []  # a fragmented message being received
        # (peer, session) pairs relayed between this client and a peer, oldest first;
        # session NO_SESSION stands for "no session field".
        self.sessions: dict[tuple[Client, str], None] = {}
        self.allowance = float(burst)
        self.last_message = now
        self.login_attempts = 0
        self.closing = False

    @property
    def host(self) -> str:
        """The client's IP address (what per-address limits count)."""
        address = self.connection.remote_address
        return str(address[0]) if address else "unknown"

    @property
    def address(self) -> str:
        address = self.connection.remote_address
        return f"{address[0]}:{address[1]}" if address else "unknown address"

    @property
    def label(self) -> str:
        """How logs name this client: its user name once logged in, else its address."""
        return shown(quote(self.name)) if self.name is not None else self.address


def shown(text: str) -> str:
    """Text from outside made safe for the log (control, bidi, invisible characters escaped)."""
    return printable(text, limit=300)


def text_frame(payload: bytes) -> bytes:
    """A complete unmasked server-to-client text frame carrying ``payload``."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


class SignalingConnection(ServerConnection):
    """A websockets connection that hands every data frame to the server as it is parsed.

    websockets normally queues messages for a handler coroutine to ``recv()``;
    the server decides synchronously, so it skips that queue and a task switch
    per message. Control frames, keepalive and closing stay websockets' job.
    """

    def __init__(self, protocol: ServerProtocol, server: Server, *,
                 signaling: SignalingServer, **kwargs: Any) -> None:
        super().__init__(protocol, server, **kwargs)
        self.signaling = signaling
        self.client: Client | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # websockets' parser generator refers to its protocol, and a failed handshake
        # keeps its exception (and that traceback's frames): reference cycles that
        # would wait for a full collection. Cut them now; the connection is over.
        protocol = self.protocol
        protocol.handshake_exc = None
        parser, protocol.parser = protocol.parser, iter(())
        with contextlib.suppress(Exception):
            parser.close()
        self.signaling.connection_ended()

    def process_event(self, event: Event) -> None:
        if (self.request is not None and isinstance(event, Frame)
                and event.opcode in DATA_OPCODES):
            self.signaling.receive_frame(self, event)
        else:
            super().process_event(event)


class SignalingServer:
    """The signaling server. Use as ``async with SignalingServer(config) as server:``."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.users: dict[str, Client] = {}  # login order, which userlist keeps
        self.origins = OriginPolicy(config.allowed_origins, tls=config.ssl_context is not None)
        self.max_connections = config.max_users + config.extra_connections
        self._resources = contextlib.ExitStack()
        self._static: StaticFiles | None = None
        self._server: Server | None = None
        self._background: set[asyncio.Task[None]] = set()
        # Clients with frames in their outbox, by when these must leave.
        self._urgent: list[Client] = []
        self._lazy: list[Client] = []
        # Open WebSockets not logged in yet, oldest first, with when they opened.
        self._pending: dict[Client, float] = {}
        self._ended_connections = 0
        self._last_collection = 0.0
        self._sweeper: asyncio.TimerHandle | None = None

    # Lifecycle

    async def start(self) -> None:
        static_root = self.config.static_root
        if static_root is None:
            package_folder = importlib.resources.files("rtcxfer.web").joinpath("static")
            static_root = self._resources.enter_context(importlib.resources.as_file(package_folder))
        self._static = StaticFiles(static_root)
        self._server = await serve(
            self.handle,
            self.config.host,
            self.config.port,
            ssl=self.config.ssl_context,
            process_request=self.process_request,
            server_header=f"rtcxfer/{__version__}",
            compression=None,
            max_size=HARD_FRAME_LIMIT,
            create_connection=cast(type[ServerConnection], self._create_connection),
            ping_interval=self.config.ping_interval,
            ping_timeout=self.config.ping_timeout,
            close_timeout=self.config.close_timeout,
            backlog=LISTEN_BACKLOG,
            open_timeout=self.config.open_timeout,
        )
        loop = asyncio.get_running_loop()
        self._last_collection = loop.time()
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)

    def _create_connection(self, protocol: ServerProtocol, server: Server,
                           **kwargs: Any) -> SignalingConnection:
        # Same settings as websockets' own protocol, plus answers to requests with a body.
        protocol = SignalingProtocol(max_size=HARD_FRAME_LIMIT, logger=protocol.logger)
        return SignalingConnection(protocol, server, signaling=self, **kwargs)

    async def close(self) -> None:
        """Close every connection with 1001 (going away) and stop listening."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._server is not None:
            self._server.close(code=CloseCode.GOING_AWAY, reason="server shutting down")
            await self._server.wait_closed()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        self._resources.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every listening socket."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        return [sock.getsockname()[:2] for sock in self._server.sockets]

    @property
    def open_connections(self) -> int:
        """WebSocket connections open now, logged in or not."""
        return len(self._server.all_connections) if self._server is not None else 0

    @property
    def url(self) -> str:
        """``ws://host:port`` (``wss://`` with TLS) of the first listening socket.

        A wildcard address becomes loopback, so the URL always works locally.
        """
        host, port = self.addresses[0]
        host = _WILDCARD_HOSTS.get(host, host)
        if ":" in host:
            host = f"[{host}]"
        scheme = "wss" if self.config.ssl_context is not None else "ws"
        return f"{scheme}://{host}:{port}"

    @property
    def page_url(self) -> str:
        """The browser page's URL: :attr:`url` with the matching http(s) scheme."""
        return self.url.replace("ws", "http", 1) + "/"

    # HTTP requests and handshakes

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        try:
            origin = single_header(request.headers, "Origin")
            host = single_header(request.headers, "Host")
        except ValueError as error:
            return text_response(http.HTTPStatus.BAD_REQUEST, str(error))
        if is_websocket_upgrade(request):
            if not self.origins.allows(origin, host):
                logger.info("refused WebSocket from origin %s", shown(quote(origin or "")))
                return text_response(http.HTTPStatus.FORBIDDEN, "origin not allowed")
            if not self._room_for_one_more():
                return text_response(http.HTTPStatus.SERVICE_UNAVAILABLE, "server is full")
            return None
        if request.method not in ("GET", "HEAD"):
            return make_response(
                http.HTTPStatus.METHOD_NOT_ALLOWED,
                b"method not allowed\n",
                "text/plain; charset=utf-8",
                [("Allow", "GET, HEAD")],
            )
        if request.path.split("?", 1)[0] == HEALTH_PATH:
            response = json_response(http.HTTPStatus.OK, self.health())
        else:
            assert self._static is not None, "requests arrive only after start()"
            response = await self._static.respond(request)
        if request.method == "HEAD":
            # Same headers, Content-Length included, and no body.
            response = dataclasses.replace(response, body=b"")
        return response

    def health(self) -> dict[str, object]:
        """The body of ``/healthz``; with a token, nothing a stranger should learn."""
        if self.config.token is not None:
            return {"status": "ok"}
        return {"status": "ok", "users": len(self.users)}

    # Connections, and room for them

    def _client_of(self, connection: SignalingConnection) -> Client:
        if connection.client is None:
            now = asyncio.get_running_loop().time()
            client = connection.client = Client(connection, self.config.message_burst, now)
            self._pending[client] = now
        return connection.client

    def _room_for_one_more(self) -> bool:
        """Whether a new WebSocket may open; makes room by closing an idle one if needed.

        Clients not logged in may hold ``extra_connections`` slots, never the
        ``max_users`` slots of logged-in users. When those are all taken, the
        oldest connection that has been open without logging in for longer than
        ``pending_grace`` seconds is closed for the newcomer: a client that logs
        in right after connecting (as every client does) always gets a chance.
        """
        if (len(self._pending) < self.config.extra_connections
                and self.open_connections < self.max_connections):
            return True
        oldest = next(iter(self._pending.items()), None)
        if oldest is None:
            return False
        client, since = oldest
        if asyncio.get_running_loop().time() - since < self.config.pending_grace:
            return False
        logger.info("closing %s: connections waiting to log in are at their limit",
                    client.label)
        self._stop_waiting(client, "too many connections waiting to log in")
        return True

    def _stop_waiting(self, client: Client, reason: str) -> None:
        self._pending.pop(client, None)
        self.close_client(client, CloseCode.POLICY_VIOLATION, reason)

    def connection_ended(self) -> None:
        self._ended_connections += 1

    def _sweep(self) -> None:
        """Housekeeping, every :data:`SWEEP_INTERVAL`: login deadline, idle connections, GC."""
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)
        now = loop.time()
        config = self.config
        deadline = now - config.login_timeout
        idle_since = now - config.pending_grace
        idle_per_address: dict[str, list[Client]] = {}
        for client, since in list(self._pending.items()):
            if since > idle_since:
                break  # the rest are younger still
            if client.name is not None or client.closing:
                self._pending.pop(client, None)
            elif since <= deadline:
                logger.info("closing %s: no login within %g s", client.label,
                            config.login_timeout)
                self._stop_waiting(client, "login timeout")
            else:
                idle_per_address.setdefault(client.host, []).append(client)
        for clients in idle_per_address.values():
            for client in clients[:max(0, len(clients) - config.max_idle_per_ip)]:
                logger.info("closing %s: too many connections from one address "
                            "without a login", client.label)
                self._stop_waiting(client, "too many connections without a login")
        ended = self._ended_connections
        if ended >= GC_AFTER_CONNECTIONS or (
                ended and now - self._last_collection >= GC_MAX_INTERVAL):
            self._ended_connections = 0
            self._last_collection = now
            collected = gc.collect()
            logger.debug("garbage collection after %d connections: %d objects", ended,
                         collected)

    async def handle(self, connection: ServerConnection) -> None:
        """websockets' handler: frames arrive through :meth:`receive_frame`; wait for the end."""
        client = self._client_of(cast(SignalingConnection, connection))
        try:
            await connection.wait_closed()
        finally:
            self.disconnect(client)

    def receive_frame(self, connection: SignalingConnection, frame: Frame) -> None:
        """Assemble a message from data frames (websockets checked sizes and sequence)."""
        client = self._client_of(connection)
        if client.closing:
            return
        if frame.opcode is Opcode.CONT or not frame.fin:
            client.fragments.append(frame)
            if not frame.fin:
                return
            opcode = client.fragments[0].opcode
            data = b"".join(fragment.data for fragment in client.fragments)
            client.fragments = []
        else:
            opcode, data = frame.opcode, frame.data
        if opcode is Opcode.TEXT:
            try:
                message: str | bytes = bytes(data).decode()
            except UnicodeDecodeError:
                logger.info("closing %s: invalid UTF-8 in a text frame", client.label)
                self.close_client(client, CloseCode.INVALID_DATA, "invalid UTF-8")
                return
        else:
            message = bytes(data)
        try:
            self.receive(client, message)
        except Exception:
            # A bug must cost one connection, never the server.
            logger.exception("internal error handling a message from %s", client.label)
            self.close_client(client, CloseCode.INTERNAL_ERROR, "internal error")

    def receive(self, client: Client, data: str | bytes) -> None:
        """Act on one message from ``client``: every rule of PROTOCOL.md 1.3 starts here."""
        if not self._within_rate(client):
            logger.info("closing %s: message rate limit exceeded", client.label)
            self.close_client(client, CloseCode.POLICY_VIOLATION, "message rate limit exceeded")
            return
        try:
            message = parse_client_message(data)
        except InvalidLogin as error:
            if self._may_try_login(client):
                self._refuse_login(client, str(error))
            return
        except InvalidMessage as error:
            self.refuse(client, str(error))
            return
        if isinstance(message, Relay):
            self._relay(client, message)
        else:
            self._login(client, message)

    def disconnect(self, client: Client) -> None:
        """Free the name of a closed connection; tell its peers and everyone else."""
        self._pending.pop(client, None)
        name = client.name
        if name is None or self.users.get(name) is not client:
            return
        del self.users[name]
        client.name = None
        logger.info("offline %s (%d online)", shown(quote(name)), len(self.users))
        for peer, session in client.sessions:
            if peer is client or peer.name is None or self.users.get(peer.name) is not peer:
                continue
            peer.sessions.pop((client, session), None)
            self.send(peer, Relayed("leave", name, None, session or None))
        client.sessions.clear()
        self.broadcast(self.users.values(), Updata("offline", name))

    def close_client(self, client: Client, code: CloseCode, reason: str) -> None:
        """Close ``client``'s connection and log it out now, whatever its socket does.

        Frames it still sends are ignored. Safe in the middle of a broadcast:
        the logout runs right after the current callback.
        """
        if client.closing:
            return
        # What was already queued (the error that explains the close) goes first.
        self.flush((client,))
        client.closing = True
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._close(client.connection, code, reason))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        loop.call_soon(self.disconnect, client)

    async def _close(self, connection: ServerConnection, code: CloseCode, reason: str) -> None:
        # A client that does not read leaves close() waiting to write: abort it then.
        try:
            async with asyncio.timeout(self.config.close_timeout):
                await connection.close(code, reason)
        except TimeoutError:
            connection.transport.abort()

    # Output

    def write(self, client: Client, frame: bytes, *, urgent: bool = True) -> None:
        """Queue a complete WebSocket frame for ``client``.

        Urgent frames leave at the end of the current event loop iteration,
        the others (presence broadcasts) within :data:`PRESENCE_DELAY`, or with
        the next urgent frame to the same client. Each client's frames leave
        in order, in one write per flush: a login storm then costs a few
        system calls per client, not one per login.
        """
        if client.closing:
            return
        outbox = client.outbox
        if urgent:
            self._urgent.append(client)
            if len(self._urgent) == 1:
                asyncio.get_running_loop().call_soon(self._flush_urgent)
        elif not outbox:
            self._lazy.append(client)
            if len(self._lazy) == 1:
                asyncio.get_running_loop().call_later(PRESENCE_DELAY, self._flush_lazy)
        outbox.append(frame)

    def _flush_urgent(self) -> None:
        clients, self._urgent = self._urgent, []
        self.flush(clients)

    def _flush_lazy(self) -> None:
        clients, self._lazy = self._lazy, []
        self.flush(clients)

    def flush(self, clients: Iterable[Client]) -> None:
        """Write the queued frames of ``clients``; close those whose send queue passes the limit.

        Writing to the transport directly is safe: websockets flushes every
        frame it makes itself before yielding, so frames never interleave,
        and the state check keeps data from following a close frame.
        """
        limit = self.config.send_queue_limit
        for client in clients:
            frames = client.outbox
            if not frames:
                continue
            client.outbox = []
            if client.closing or client.connection.protocol.state is not State.OPEN:
                continue
            transport = client.transport
            transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
            if transport.get_write_buffer_size() > limit:
                logger.info("closing %s: not reading its messages", client.label)
                self.close_client(client, CloseCode.POLICY_VIOLATION, "send queue overflow")

    def send(self, client: Client, message: Message) -> None:
        self.write(client, text_frame(encode(message)))

    def broadcast(self, clients: Iterable[Client], message: Message) -> None:
        """Send a presence update (``updata``) to ``clients``, encoded once."""
        frame = text_frame(encode(message))
        write = self.write
        for client in clients:
            write(client, frame, urgent=False)

    def refuse(self, client: Client, reason: str) -> None:
        logger.info("refused from %s: %s", client.label, shown(reason))
        self.send(client, Error(reason))

    # Rules

    def _within_rate(self, client: Client) -> bool:
        """Token bucket: ``message_rate`` per second sustained, ``message_burst`` at once."""
        now = asyncio.get_running_loop().time()
        config = self.config
        client.allowance = min(
            float(config.message_burst),
            client.allowance + (now - client.last_message) * config.message_rate,
        )
        client.last_message = now
        if client.allowance < 1.0:
            return False
        client.allowance -= 1.0
        return True

    def _refuse_login(self, client: Client, reason: str) -> None:
        logger.info("refused login from %s: %s", client.label, shown(reason))
        self.send(client, LoginResult(False, reason))

    def _may_try_login(self, client: Client) -> bool:
        """Count a login attempt; close a client that guesses names or tokens too often."""
        client.login_attempts += 1
        if client.login_attempts > self.config.max_login_attempts:
            logger.info("closing %s: too many login attempts", client.label)
            self.close_client(client, CloseCode.POLICY_VIOLATION, "too many login attempts")
            return False
        return True

    def _login(self, client: Client, login: Login) -> None:
        if not self._may_try_login(client):
            return
        if client.name is not None:
            self._refuse_login(client, f"already logged in as {quote(client.name)}")
            return
        token = self.config.token
        if token is not None:
            if login.token is None:
                self._refuse_login(client, "this server requires an access token")
                return
            if not hmac.compare_digest(login.token.encode(), token.encode()):
                self._refuse_login(client, "wrong access token")
                return
        name = login.name
        if name in self.users:
            self._refuse_login(client, f"name {quote(name)} is already taken")
            return
        if len(self.users) >= self.config.max_users:
            self._refuse_login(client, f"server is full ({self.config.max_users} users)")
            return
        self.broadcast(self.users.values(), Updata("login", name))
        self.users[name] = client
        client.name = name
        self._pending.pop(client, None)
        logger.info("login %s from %s (%d online)", shown(quote(name)), client.address,
                    len(self.users))
        self.send(client, LoginResult(True))
        self.send(client, UserList(tuple(self.users)))

    def _relay(self, client: Client, relay: Relay) -> None:
        sender = client.name
        if sender is None:
            self.refuse(client, "not logged in")
            return
        target = self.users.get(relay.othername)
        if target is None:
            self.refuse(client, f"user {quote(relay.othername)} is not online")
            return
        try:
            payload = encode(Relayed(relay.type, sender, relay.payload, relay.session))
        except InvalidMessage as error:
            self.refuse(client, str(error))
            return
        if len(payload) > MAX_FRAME_BYTES:
            # Stamping the sender's name may push a frame just under the limit over it.
            self.refuse(client, f"message too large to relay (limit {MAX_FRAME_BYTES} bytes)")
            return
        self.write(target, text_frame(payload))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s -> %s", relay.type, shown(quote(sender)),
                         shown(quote(relay.othername)))
        session = relay.session or NO_SESSION
        if relay.type == "leave":
            self._forget_sessions(client, target, relay.session)
        elif target is not client:
            self._track_session(client, target, session)
            self._track_session(target, client, session)

    def _track_session(self, owner: Client, peer: Client, session: str) -> None:
        key = (peer, session)
        sessions = owner.sessions
        if key in sessions:
            return
        sessions[key] = None
        if len(sessions) > self.config.max_sessions:
            # Bounded memory beats a complete record: the oldest pair gets no leave.
            del sessions[next(iter(sessions))]

    def _forget_sessions(self, client: Client, peer: Client, session: str | None) -> None:
        if session is not None:
            client.sessions.pop((peer, session), None)
            peer.sessions.pop((client, session), None)
            return
        for owner, other in ((client, peer), (peer, client)):
            for key in [key for key in owner.sessions if key[0] is other]:
                del owner.sessions[key]

