"""The HTTP side of the signaling port: the page, /healthz, and the WebSocket Origin check."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from rtcxfer.server.http import CONTENT_SECURITY_POLICY

HttpReply = tuple[int, dict[str, str], bytes]


async def http_request(server, target: str, method: str = "GET",
                       headers: dict[str, str] | None = None) -> HttpReply:
    """One raw HTTP/1.1 request; returns status, headers (lower-case names) and body."""
    host, port = server.addresses[0]
    reader, writer = await asyncio.open_connection(host, port)
    try:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    reply_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        reply_headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), reply_headers, body


async def test_healthz_counts_logged_in_users(server, logged_in, peer_factory):
    status, headers, body = await http_request(server, "/healthz")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"status": "ok", "users": 0}

    await logged_in("alice")
    await peer_factory(server)  # connected, not logged in: not a user
    _, _, body = await http_request(server, "/healthz")
    assert json.loads(body) == {"status": "ok", "users": 1}


@pytest.mark.parametrize(
    ("target", "content_type", "content"),
    [
        ("/", "text/html; charset=utf-8", b"<title>rtcxfer</title>"),
        ("/index.html", "text/html; charset=utf-8", b"<title>rtcxfer</title>"),
        ("/app.js", "text/javascript; charset=utf-8", b"console.log"),
        ("/app.js?v=2", "text/javascript; charset=utf-8", b"console.log"),
        ("/sub/style.css", "text/css; charset=utf-8", b"margin"),
        ("/icon.svg", "image/svg+xml", b"<svg"),
        ("/%61pp.js", "text/javascript; charset=utf-8", b"console.log"),
    ],
)
async def test_static_files_with_their_type_and_security_headers(server, target, content_type,
                                                                 content):
    status, headers, body = await http_request(server, target)
    assert status == 200
    assert headers["content-type"] == content_type
    assert content in body
    assert headers["content-length"] == str(len(body))
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    "target",
    [
        "/missing.js",
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/sub/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/.hidden",
        "/link.txt",
        "/%00",
        "/..\\secret.txt",
        "//etc/passwd",
    ],
)
async def test_nothing_outside_the_static_root_is_served(server, static_root: Path, target):
    (static_root / "link.txt").symlink_to(static_root.parent / "secret.txt")
    status, headers, body = await http_request(server, target)
    assert status == 404
    assert b"outside" not in body
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
async def test_other_methods_are_not_allowed(server, method):
    status, headers, _ = await http_request(server, "/", method=method)
    assert status == 405
    assert headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("target", ["/", "/healthz", "/missing"])
async def test_head_gives_the_headers_of_get_without_a_body(server, target):
    get_status, get_headers, get_body = await http_request(server, target)
    status, headers, body = await http_request(server, target, method="HEAD")
    assert (status, body) == (get_status, b"")
    assert headers["content-length"] == str(len(get_body))
    assert headers["content-type"] == get_headers["content-type"]


async def test_the_package_page_is_the_default_root(start_server):
    server = await start_server(static_root=None)
    status, headers, _ = await http_request(server, "/")
    # The page may not exist yet in a development tree; never anything but 200/404.
    assert status in (200, 404)
    if status == 200:
        assert headers["content-type"] == "text/html; charset=utf-8"


async def test_websocket_without_origin_is_accepted(server):
    async with connect(server.url) as websocket:
        await websocket.send(json.dumps({"type": "login", "name": "cli"}))
        assert json.loads(await websocket.recv())["success"] is True


async def test_websocket_from_the_servers_own_origin_is_accepted(server):
    host, port = server.addresses[0]
    async with connect(server.url, origin=f"http://{host}:{port}") as websocket:
        await websocket.send(json.dumps({"type": "login", "name": "browser"}))
        assert json.loads(await websocket.recv())["success"] is True


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "https://127.0.0.1:1"])
async def test_websocket_from_a_foreign_origin_is_refused(server, origin):
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server.url, origin=origin):
            pass
    assert refused.value.response.status_code == 403
    assert server.users == {}


async def test_allowed_origins(start_server):
    server = await start_server(allowed_origins=frozenset({"https://app.example"}))
    async with connect(server.url, origin="https://app.example"):
        pass
    with pytest.raises(InvalidStatus):
        async with connect(server.url, origin="https://other.example"):
            pass

    anything = await start_server(allowed_origins=frozenset({"*"}))
    async with connect(anything.url, origin="https://other.example"):
        pass


async def test_repeated_origin_headers_are_a_bad_request(server):
    status, _, _ = await http_request(server, "/", headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Origin": "http://a.example\r\nOrigin: http://b.example"})
    assert status == 400


async def test_connections_beyond_the_limit_get_503(start_server, peer_factory):
    server = await start_server(max_users=1, extra_connections=1, pending_grace=0.3)
    first = await peer_factory(server)
    await first.login("first")
    waiting = await peer_factory(server)
    # The one slot for clients not logged in is taken by a young connection: 503.
    with pytest.raises(InvalidStatus) as refused:
        await peer_factory(server)
    assert refused.value.response.status_code == 503
    # Once it has waited past the grace period, a newcomer takes its place.
    await asyncio.sleep(0.5)
    late = await peer_factory(server)
    assert await waiting.closed() == (1008, "too many connections waiting to log in")
    await late.send({"type": "login", "name": "late"})
    reply = await late.recv()
    assert reply["success"] is False and "server is full" in reply["message"]
    await first.close()
    await first.connection.wait_closed()
    for _ in range(100):
        if not server.users:
            break
        await asyncio.sleep(0.01)
    assert await late.login("late") == ["late"]
