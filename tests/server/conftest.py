"""Fixtures for the signaling server tests: a real server on a loopback port, real clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from rtcxfer.server import ServerConfig, SignalingServer

RECEIVE_TIMEOUT = 10.0
PROBE = {"type": "sync-probe"}
PROBE_REPLY = {"type": "error", "message": 'unknown message type "sync-probe"'}


class WsPeer:
    """A test client speaking PROTOCOL.md JSON over a real WebSocket."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        frame = json.dumps(message) if isinstance(message, dict) else message
        await self.connection.send(frame)

    async def recv(self) -> dict[str, Any]:
        frame = await asyncio.wait_for(self.connection.recv(), RECEIVE_TIMEOUT)
        assert isinstance(frame, str), f"server sent a binary frame: {frame!r}"
        message = json.loads(frame)
        assert isinstance(message, dict)
        return message

    async def login(self, name: str, **extra: Any) -> list[str]:
        """Log in, insist on success, return the userlist."""
        await self.send({"type": "login", "name": name, **extra})
        assert await self.recv() == {"type": "login", "success": True}
        userlist = await self.recv()
        assert userlist["type"] == "userlist"
        return userlist["users"]

    async def sync(self) -> None:
        """Assert that nothing is pending for this client: the next frame answers a probe."""
        await self.send(PROBE)
        assert await self.recv() == PROBE_REPLY

    async def closed(self) -> tuple[int | None, str | None]:
        """Read until the server closes the connection; return its close code and reason."""
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await self.connection.recv()
            await self.connection.wait_closed()
        return self.connection.close_code, self.connection.close_reason

    async def close(self) -> None:
        await self.connection.close()


ServerFactory = Callable[..., Awaitable[SignalingServer]]
PeerFactory = Callable[..., Awaitable[WsPeer]]


@pytest.fixture
def static_root(tmp_path: Path) -> Path:
    root = tmp_path / "static"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>rtcxfer</title>\n")
    (root / "app.js").write_text("console.log('rtcxfer');\n")
    (root / "sub" / "style.css").write_text("body { margin: 0; }\n")
    (root / "icon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>\n")
    (root / ".hidden").write_text("private\n")
    (tmp_path / "secret.txt").write_text("outside the static root\n")
    return root


@pytest.fixture
async def start_server(static_root: Path) -> AsyncIterator[ServerFactory]:
    """Start servers on 127.0.0.1:<free port> with ServerConfig overrides; close them after."""
    servers: list[SignalingServer] = []

    async def start(**overrides: Any) -> SignalingServer:
        config = replace(ServerConfig(host="127.0.0.1", port=0, static_root=static_root),
                         **overrides)
        server = SignalingServer(config)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def server(start_server: ServerFactory) -> SignalingServer:
    return await start_server()


@pytest.fixture
async def peer_factory() -> AsyncIterator[Callable[..., Awaitable[WsPeer]]]:
    """Connect clients (``await connect(server)``); every one is closed after the test."""
    peers: list[WsPeer] = []

    async def connect_peer(server: SignalingServer, **kwargs: Any) -> WsPeer:
        # Unbounded client-side buffering: a test client that has not read every
        # frame must still see the server's close frame behind them when closing.
        kwargs.setdefault("max_queue", None)
        connection = await connect(server.url, open_timeout=RECEIVE_TIMEOUT, **kwargs)
        peer = WsPeer(connection)
        peers.append(peer)
        return peer

    yield connect_peer
    for peer in peers:
        await peer.close()


@pytest.fixture
async def logged_in(server: SignalingServer, peer_factory: PeerFactory
                    ) -> Callable[[str], Awaitable[WsPeer]]:
    """``await logged_in("alice")``: a client on ``server`` logged in as alice."""

    async def log_in(name: str) -> WsPeer:
        peer = await peer_factory(server)
        await peer.login(name)
        return peer

    return log_in


# -- the same rules on two instances sharing Redis -----------------------------

from redis_support import RedisServer, redis_available, running_redis  # noqa: E402

needs_redis = pytest.mark.skipif(not redis_available(), reason="redis-server is not installed")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; every test that uses it starts from FLUSHALL."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.flush()
    return redis_server.url


class Cluster:
    """Several instances sharing one Redis; each new client goes to the next instance."""

    def __init__(self, instances: list[SignalingServer]) -> None:
        self.instances = instances
        self._turn = 0

    @property
    def url(self) -> str:
        instance = self.instances[self._turn % len(self.instances)]
        self._turn += 1
        return instance.url

    @property
    def users(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for instance in self.instances:
            merged.update(instance.users)
        return merged


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def start_deployment(backend: str, start_server: ServerFactory,
                           request: pytest.FixtureRequest) -> Callable[..., Awaitable[Any]]:
    """``await start_deployment(**overrides)``: one in-memory server, or two on Redis."""

    async def start(**overrides: Any) -> Any:
        if backend == "memory":
            return await start_server(**overrides)
        url = request.getfixturevalue("redis_url")
        return Cluster([await start_server(redis_url=url, **overrides) for _ in range(2)])

    return start
