"""``rtcxfer serve`` as a real subprocess: its output, signals, token, TLS and failures."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import ssl
import urllib.request

import pytest
from support import CliProcess, cli_env, make_certificate, running_server
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

SDP_MARKER = "a=secret-sdp-line-that-must-not-be-logged"


def http_get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10, context=context) as reply:
        return reply.status, reply.read()


async def recv_json(websocket) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(await asyncio.wait_for(websocket.recv(), 10))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_serve_prints_its_urls_logs_and_shuts_down_cleanly(signum):
    with running_server() as (url, process):
        assert process.stdout_lines[0] == url
        assert url.startswith("ws://127.0.0.1:")
        page_line = process.wait_for_line(lambda line: line.startswith("open "))
        page_url = url.replace("ws://", "http://") + "/"
        assert page_line == f"open {page_url} in a browser"
        status, body = await asyncio.to_thread(http_get, page_url + "healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok", "users": 0})

        async with connect(url) as alice, connect(url) as bob:
            await alice.send(json.dumps({"type": "login", "name": "alice"}))
            assert await recv_json(alice) == {"type": "login", "success": True}
            assert await recv_json(alice) == {"type": "userlist", "users": ["alice"]}
            await bob.send(json.dumps({"type": "login", "name": "bob"}))
            assert await recv_json(bob) == {"type": "login", "success": True}
            assert await recv_json(bob) == {"type": "userlist", "users": ["alice", "bob"]}
            assert (await recv_json(alice))["action"] == "login"
            await bob.send(json.dumps({"type": "offer", "othername": "alice",
                                       "offer": {"type": "offer", "sdp": SDP_MARKER}}))
            await bob.send(json.dumps({"type": "bogus"}))
            assert (await recv_json(alice))["type"] == "offer"
            assert await recv_json(bob) == {"type": "error",
                                            "message": 'unknown message type "bogus"'}
            await bob.close()
            assert await recv_json(alice) == {"type": "leave", "name": "bob"}
            assert await recv_json(alice) == {"type": "updata", "action": "offline",
                                              "name": "bob"}

            process.send_signal(signum)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(alice.recv(), 10)
            assert alice.close_code == CloseCode.GOING_AWAY
        assert await asyncio.to_thread(process.wait, 20) == 0

    log = process.stderr
    assert 'login "alice"' in log
    assert 'login "bob"' in log
    assert 'offline "bob"' in log
    assert 'unknown message type "bogus"' in log
    assert SDP_MARKER not in log
    assert "Traceback" not in log


async def test_token_from_the_environment():
    with running_server(env=cli_env(RTCXFER_TOKEN="hunter2")) as (url, _):
        async with connect(url) as websocket:
            await websocket.send(json.dumps({"type": "login", "name": "alice"}))
            assert (await recv_json(websocket))["success"] is False
            await websocket.send(json.dumps({"type": "login", "name": "alice",
                                             "token": "hunter2"}))
            assert await recv_json(websocket) == {"type": "login", "success": True}


async def test_tls_serves_wss_and_https(tmp_path):
    certfile, keyfile = make_certificate(tmp_path)
    trust = ssl.create_default_context(cafile=str(certfile))
    with running_server("--certfile", str(certfile), "--keyfile", str(keyfile)) as (url,
                                                                                   process):
        assert url.startswith("wss://127.0.0.1:")
        page_url = url.replace("wss://", "https://") + "/"
        process.wait_for_line(lambda line: line == f"open {page_url} in a browser")
        async with connect(url, ssl=trust) as websocket:
            await websocket.send(json.dumps({"type": "login", "name": "alice"}))
            assert await recv_json(websocket) == {"type": "login", "success": True}
        status, body = await asyncio.to_thread(http_get, page_url + "healthz", trust)
        assert (status, json.loads(body)["status"]) == (200, "ok")
        # A browser page served over https connects with an https origin.
        async with connect(url, ssl=trust, origin=page_url.rstrip("/")):
            pass


def test_unreadable_certificate_is_a_clear_error(tmp_path):
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    process = CliProcess(["serve", "--port", "0", "--certfile", str(bogus)])
    try:
        assert process.wait(30) == 1
    finally:
        process.stop()
    assert "cannot load TLS certificate" in process.stderr
    assert "Traceback" not in process.stderr


def test_keyfile_without_certfile_is_a_usage_error(tmp_path):
    process = CliProcess(["serve", "--port", "0", "--keyfile", str(tmp_path / "key.pem")])
    try:
        assert process.wait(30) == 2
    finally:
        process.stop()
    assert "--keyfile needs --certfile" in process.stderr


def test_a_busy_port_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = CliProcess(["serve", "--host", "127.0.0.1", "--port", str(port)])
        try:
            assert process.wait(30) == 1
        finally:
            process.stop()
    assert f"cannot listen on 127.0.0.1:{port}" in process.stderr
    assert "Traceback" not in process.stderr
