"""The asyncio signaling server: the I/O around :mod:`rtcxfer.server.core`.

websockets does the handshake, framing, keepalive and closing. Every message
is handed, as its frame is parsed, to the pure signaling core
(:meth:`SignalingCore.receive`), whose actions this layer carries out at once,
with no queue and no task switch per message: frames to write, closes, and
claims, releases and deliveries through the presence backend
(:mod:`rtcxfer.server.presence`: in memory by default, Redis with ``--redis``).
Outgoing frames are encoded once and queued per recipient (:meth:`SignalingServer.write`);
each recipient's queue leaves in one transport write (:meth:`SignalingServer.flush`),
so a broadcast to N users costs N list appends, not N coroutines, and a
recipient that does not read never blocks a sender: once its send buffer passes
a limit it is disconnected instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import http
import importlib.resources
import inspect
import logging
import ssl
from collections.abc import Awaitable, Iterable, Sequence
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
from rtcxfer.protocol.signaling import quote
from rtcxfer.server.core import (
    Action,
    Claim,
    Close,
    Conn,
    CoreConfig,
    Deliver,
    LoginReplyExtras,
    Release,
    Send,
    SignalingCore,
    shown,
)
from rtcxfer.server.handshake import SignalingProtocol
from rtcxfer.server.http import (
    HEALTH_PATH,
    OriginPolicy,
    StaticFiles,
    is_websocket_upgrade,
    json_response,
    make_response,
    no_content_response,
    single_header,
    text_response,
)
from rtcxfer.server.presence import ClaimAnswer, MemoryPresence, Presence, text_frame

__all__ = ["Client", "ServerConfig", "SignalingServer", "shown", "text_frame"]

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
# How often (seconds) the housekeeping pass runs: login deadlines, idle connections, GC.
SWEEP_INTERVAL = 1.0
# Run a full garbage collection after this many connections ended (or any, after
# GC_MAX_INTERVAL seconds): a connection leaves reference cycles behind, and the
# spaced-out thresholds of runner.GC_THRESHOLDS would keep them for a long time.
GC_AFTER_CONNECTIONS = 1000
GC_MAX_INTERVAL = 60.0
# /r/NAME serves the page for room NAME (the page reads the room from its URL).
ROOM_PAGE_PREFIX = "/r/"
# The page's streamed downloads (web/static/download-sw.js answers them); one that
# reaches the server gets 204, so the page that navigated to it stays as it is.
DOWNLOAD_PREFIX = "/rtcxfer-download/"
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
    # Rooms (docs/protocol.md): refuse a login without a "room" field.
    room_required: bool = False
    # Shared name space: redis://HOST:PORT/DB (docs/scaling.md); None: this process only.
    redis_url: str | None = None
    # Extra fields for every successful login reply, from the user name: the one
    # place where extensions (such as iceServers) join the reply. None: none.
    login_reply_extras: LoginReplyExtras | None = None

    def core_config(self) -> CoreConfig:
        return CoreConfig(
            token=self.token, max_users=self.max_users, message_rate=self.message_rate,
            message_burst=self.message_burst, max_login_attempts=self.max_login_attempts,
            max_sessions=self.max_sessions, room_required=self.room_required,
            login_reply_extras=self.login_reply_extras)


class Client(Conn):
    """One WebSocket connection: the core's state plus what the I/O needs."""

    __slots__ = ("closing", "connection", "fragments", "outbox", "transport")

    def __init__(self, connection: ServerConnection, burst: int, now: float) -> None:
        super().__init__(burst, now)
        self.connection = connection
        self.transport = connection.transport
        self.outbox: list[bytes] = []  # frames waiting for SignalingServer.flush
        self.fragments: list[Frame] = []  # a fragmented message being received
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
        self.core = SignalingCore(config.core_config())
        self.presence: Presence = self._make_presence()
        # Logged-in local clients, in login order.
        self.local: dict[Client, None] = {}
        self.origins = OriginPolicy(config.allowed_origins, tls=config.ssl_context is not None)
        self.max_connections = config.max_users + config.extra_connections
        self._resources = contextlib.ExitStack()
        self._static: StaticFiles | None = None
        self._server: Server | None = None
        self._background: set[asyncio.Task[Any]] = set()
        # Clients with frames in their outbox, by when these must leave.
        self._urgent: list[Client] = []
        self._lazy: list[Client] = []
        # Open WebSockets not logged in yet, oldest first, with when they opened.
        self._pending: dict[Client, float] = {}
        self._ended_connections = 0
        self._last_collection = 0.0
        self._sweeper: asyncio.TimerHandle | None = None

    def _make_presence(self) -> Presence:
        if self.config.redis_url is None:
            return MemoryPresence(self)
        from rtcxfer.server.redis_presence import RedisPresence

        return RedisPresence(self, self.config.redis_url)

    @property
    def users(self) -> dict[str, Client]:
        """Logged-in users of this instance by name, in login order (all rooms)."""
        return {cast(str, client.name): client for client in self.local}

    # Lifecycle

    async def start(self) -> None:
        static_root = self.config.static_root
        if static_root is None:
            package_folder = importlib.resources.files("rtcxfer.web").joinpath("static")
            static_root = self._resources.enter_context(importlib.resources.as_file(package_folder))
        self._static = StaticFiles(static_root)
        await self.presence.start()
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
        await self.presence.close()
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
        path = request.path.split("?", 1)[0]
        if path == HEALTH_PATH:
            unavailable = self.presence.unavailable
            if unavailable is not None:
                response = json_response(http.HTTPStatus.SERVICE_UNAVAILABLE,
                                         {"status": "unavailable", "reason": unavailable})
            else:
                response = json_response(http.HTTPStatus.OK, self.health())
        elif path.startswith(DOWNLOAD_PREFIX):
            response = no_content_response()
        else:
            assert self._static is not None, "requests arrive only after start()"
            room = path[len(ROOM_PAGE_PREFIX):] if path.startswith(ROOM_PAGE_PREFIX) else None
            if room and "/" not in room:
                # /r/NAME is the page of room NAME: the page reads the room from its URL.
                request = dataclasses.replace(request, path="/")
            response = await self._static.respond(request)
        if request.method == "HEAD":
            # Same headers, Content-Length included, and no body.
            response = dataclasses.replace(response, body=b"")
        return response

    def health(self) -> dict[str, object]:
        """The body of ``/healthz``; with a token, nothing a stranger should learn."""
        if self.config.token is not None:
            return {"status": "ok"}
        return {"status": "ok", "users": self.core.online}

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
        # Oldest first: only the prefix older than the grace is looked at (a login storm
        # keeps thousands of young connections here; they are not copied every second).
        aged: list[tuple[Client, float]] = []
        for client, since in self._pending.items():
            if since > idle_since:
                break  # the rest are younger still
            aged.append((client, since))
        for client, since in aged:
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
        """Hand one message from ``client`` to the core and carry out its actions."""
        self.execute(self.core.receive(client, data, asyncio.get_running_loop().time()))

    def execute(self, actions: Sequence[Action]) -> None:
        """Carry out the core's actions, in order."""
        for action in actions:
            if type(action) is Deliver:
                sender: str = action.conn.name  # type: ignore[assignment]
                routed = self.presence.deliver(action.room, action.target, sender, action.kind,
                                               action.session, action.payload)
                if type(routed) is not bool:
                    self._spawn(self._deliver_later(cast(Client, action.conn), action.target,
                                                    cast(Awaitable[bool], routed)))
                elif not routed:
                    self.execute(self.core.undeliverable(action.conn, action.target))
                elif logger.isEnabledFor(logging.DEBUG):
                    logger.debug("%s %s -> %s", action.kind, shown(quote(sender)),
                                 shown(quote(action.target)))
            elif type(action) is Send:
                self.write(action.conn, text_frame(action.payload))  # type: ignore[arg-type]
            elif isinstance(action, Claim):
                self._claim(cast(Client, action.conn), action.room, action.name)
            elif isinstance(action, Release):
                self.local.pop(cast(Client, action.conn), None)
                self.presence.release(action.conn, action.room, action.name, action.partners)
            elif isinstance(action, Close):
                self.close_client(cast(Client, action.conn), CloseCode(action.code),
                                  action.reason)

    async def _deliver_later(self, client: Client, target: str,
                             routed: Awaitable[bool]) -> None:
        if not await routed and not client.closing and client.name is not None:
            self.execute(self.core.undeliverable(client, target))

    def _claim(self, client: Client, room: str, name: str) -> None:
        answer = self.presence.claim(client, room, name)
        if inspect.isawaitable(answer):
            self._spawn(self._claim_later(client, room, name, answer))
        else:
            self._claimed(client, room, name, cast(ClaimAnswer, answer))

    async def _claim_later(self, client: Client, room: str, name: str,
                           answer: Awaitable[ClaimAnswer]) -> None:
        self._claimed(client, room, name, await answer)

    def _claimed(self, client: Client, room: str, name: str, answer: ClaimAnswer) -> None:
        users, reason = answer
        if client.closing or client.connection.protocol.state is not State.OPEN:
            # Gone while the claim was out: give the name back at once.
            client.claiming = False
            if users is not None:
                self.presence.release(client, room, name, ())
            return
        actions = self.core.claimed(client, room, name, users, reason,
                                    unlisted=self.presence.may_have_unlisted(room))
        if users is not None:
            self._pending.pop(client, None)
            self.local[client] = None
        self.execute(actions)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def disconnect(self, client: Client) -> None:
        """Free the name of a closed connection; the backend tells its partners and the room."""
        self._pending.pop(client, None)
        self.execute(self.core.closed(client))

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
        self._spawn(self._close(client.connection, code, reason))
        asyncio.get_running_loop().call_soon(self.disconnect, client)

    async def _close(self, connection: ServerConnection, code: CloseCode, reason: str) -> None:
        # A client that does not read leaves close() waiting to write: abort it then.
        try:
            async with asyncio.timeout(self.config.close_timeout):
                await connection.close(code, reason)
        except TimeoutError:
            connection.transport.abort()

    # What the presence backend asks of the server (PresenceSink)

    def deliver_local(self, client: Conn, payload: bytes, sender: str, kind: str,
                      session: str | None) -> None:
        self.write(client, text_frame(payload))  # type: ignore[arg-type]
        self.core.delivered(client, sender, kind, session)

    def partner_gone(self, client: Conn, name: str) -> None:
        self.execute(self.core.partner_gone(client, name))

    def evict(self, client: Conn, reason: str) -> None:
        logger.warning("closing %s: %s", client.label, reason)
        self.close_client(cast(Client, client), CloseCode.TRY_AGAIN_LATER, reason)

    # Output

    def write(self, client: Client, frame: bytes, *,  # type: ignore[override]
              urgent: bool = True) -> None:
        """Queue a complete WebSocket frame for ``client``.

        Urgent frames leave at the end of the current event loop iteration,
        the others (presence broadcasts) within :data:`PRESENCE_DELAY`, or with
        the next urgent frame to the same client. Each client's frames leave
        in order, in one write per flush: a login storm then costs a few
        system calls per client, not one per login. An empty frame (the
        presence frame of an unlisted name) writes nothing.
        """
        if client.closing or not frame:
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

    def write_many(self, clients: Iterable[Client], frame: bytes) -> None:  # type: ignore[override]
        """:meth:`write` of one presence frame (``urgent=False``) to each of ``clients``,
        inlined: a login storm of N users makes N²/2 of these."""
        if not frame:
            return
        lazy = self._lazy
        waiting = bool(lazy)
        for client in clients:
            if client.closing:
                continue
            outbox = client.outbox
            if not outbox:
                lazy.append(client)
            outbox.append(frame)
        if lazy and not waiting:
            asyncio.get_running_loop().call_later(PRESENCE_DELAY, self._flush_lazy)

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
