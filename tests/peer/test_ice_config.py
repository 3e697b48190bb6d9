"""Which ICE servers a connection uses: the user's, the server's, UDP or TCP TURN."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from rtcxfer.peer.config import (
    IceOptions,
    IcePlan,
    IceServerError,
    IceUrl,
    credentials_expiry,
    local_networks,
    plan_ice,
    server_ice_urls,
    udp_reachable,
)
from rtcxfer.peer.session import no_ice_path

SERVER_ICE = [
    {"urls": ["stun:127.0.0.1:3478"]},
    {"urls": ["turn:127.0.0.1:{port}", "turn:127.0.0.1:{port}?transport=tcp"],
     "username": "1900000000:alice", "credential": "c2VjcmV0"},
]


def server_list(port: int) -> list[dict]:
    return [{**s, "urls": [u.format(port=port) for u in s["urls"]]} for s in SERVER_ICE]


class StunResponder(asyncio.DatagramProtocol):
    """Answers every datagram with a binding success carrying its transaction id."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"\x01\x01\x00\x00" + data[4:20], addr)  # type: ignore[attr-defined]


@pytest.fixture
async def stun_port() -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(StunResponder,
                                                       local_addr=("127.0.0.1", 0))
    yield transport.get_extra_info("sockname")[1]
    transport.close()


def silent_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_server_ice_urls_skip_what_is_unusable() -> None:
    urls = server_ice_urls([
        {"urls": "stun:a.example"},
        {"urls": ["turn:b.example"], "username": "u"},  # no credential: skipped
        {"urls": ["http://c.example", 7, "turn:d.example?transport=tcp",
                  "stun:\x1b[31mred.example", "turn:e.example?transport=udp\n"],
         "username": "9:u", "credential": "p"},
        "garbage",
    ])
    assert [u.url for u in urls] == ["stun:a.example", "turn:d.example?transport=tcp"]
    assert urls[1].from_server and urls[1].username == "9:u"
    assert server_ice_urls(None) == [] and server_ice_urls({"urls": []}) == []
    assert credentials_expiry(urls) == 9.0


async def test_turn_over_udp_when_the_server_answers_udp(stun_port: int) -> None:
    plan = await plan_ice(IceOptions(), server_ice_urls(server_list(stun_port)))
    assert plan.stun is not None and plan.stun.url == "stun:127.0.0.1:3478"
    assert plan.turn is not None and plan.turn.url == f"turn:127.0.0.1:{stun_port}"
    configuration = plan.configuration()
    assert [s.urls for s in configuration.iceServers] == [plan.stun.url, plan.turn.url]
    assert configuration.iceServers[1].username == "1900000000:alice"


async def test_a_udp_turn_server_doubles_as_stun(stun_port: int) -> None:
    only_turn = server_list(stun_port)[1:]
    plan = await plan_ice(IceOptions(), server_ice_urls(only_turn))
    assert plan.stun == IceUrl(f"stun:127.0.0.1:{stun_port}", from_server=True)
    relay_only = await plan_ice(IceOptions(relay_only=True), server_ice_urls(only_turn))
    assert relay_only.stun is None


async def test_turn_over_tcp_when_udp_gets_no_answer() -> None:
    port = silent_port()
    plan = await plan_ice(IceOptions(), server_ice_urls(server_list(port)))
    assert plan.turn is not None and plan.turn.url == f"turn:127.0.0.1:{port}?transport=tcp"
    assert plan.stun is None  # the same host: it does not answer over UDP


async def test_own_servers_come_first_and_no_server_ice_drops_the_servers(
        stun_port: int) -> None:
    mine = IceOptions(stun=("stun:127.0.0.2:1",), turn=(f"turn:localhost:{stun_port}",),
                      turn_user="me", turn_password="pw")
    plan = await plan_ice(mine, server_ice_urls(server_list(stun_port)))
    assert plan.stun == IceUrl("stun:127.0.0.2:1")
    assert plan.turn == IceUrl(f"turn:localhost:{stun_port}", "me", "pw")
    # Our own UDP TURN does not answer: the server's TCP TURN is the way out.
    silent = IceOptions(turn=(f"turn:127.0.0.1:{silent_port()}",), turn_user="me",
                        turn_password="pw")
    fallback = await plan_ice(silent, server_ice_urls(server_list(stun_port)))
    assert fallback.turn is not None and fallback.turn.url.endswith("?transport=tcp")
    alone = await plan_ice(IceOptions(use_server_ice=False),
                           server_ice_urls(server_list(stun_port)))
    assert alone == IcePlan()
    assert alone.configuration().iceServers == []


async def test_relay_only(stun_port: int) -> None:
    plan = await plan_ice(IceOptions(relay_only=True), server_ice_urls(server_list(stun_port)))
    assert plan.configuration().iceTransportPolicy is RTCIceTransportPolicy.RELAY
    with pytest.raises(IceServerError, match="--relay-only needs a TURN server"):
        await plan_ice(IceOptions(relay_only=True), [])


async def test_udp_probe(stun_port: int) -> None:
    assert await udp_reachable("127.0.0.1", stun_port)
    assert not await udp_reachable("127.0.0.1", silent_port(), seconds=0.3)
    assert not await udp_reachable("name.invalid", 3478, seconds=0.3)


def test_no_ice_path_names_what_was_tried_and_what_to_do() -> None:
    bare = str(no_ice_path("bob"))
    assert "no STUN or TURN server" in bare and "--turn" in bare
    turn = IceUrl("turn:t.example:3478", "u", "p")
    relayed = str(no_ice_path("bob", IcePlan(IceUrl("stun:s.example"), turn), "ICE failed"))
    assert "stun:s.example, turn:t.example:3478" in relayed
    assert "not even through TURN" in relayed and "transport=tcp" in relayed


def test_local_networks_include_loopback() -> None:
    assert "127.0.0.0/8" in local_networks()


# -- credentials refreshed over a real server -------------------------------------


@pytest.fixture
async def ice_server() -> AsyncIterator[tuple[str, list[float]]]:
    """An in-process server handing out TURN credentials; each login/refresh 100 s later."""
    import itertools
    import time

    from rtcxfer.server import ServerConfig, SignalingServer
    from rtcxfer.server.ice import IceServerPolicy

    base = time.time() - 59  # the first credentials expire a second from now
    counter = itertools.count()
    issued: list[float] = []

    def clock() -> float:
        issued.append(base + 100 * next(counter))
        return issued[-1]

    policy = IceServerPolicy(turn=("turn:127.0.0.1:9",), turn_secret="s", turn_ttl=60)
    server = SignalingServer(ServerConfig(host="127.0.0.1", port=0,
                                          login_reply_extras=policy.login_reply_extras(clock)))
    await server.start()
    try:
        yield server.url, issued
    finally:
        await server.close()


async def test_signaling_client_refreshes_ice_servers(
        ice_server: tuple[str, list[float]]) -> None:
    from rtcxfer.peer.signaling import SignalingClient

    url, issued = ice_server
    client = SignalingClient(url, "dora")
    await client.connect()
    try:
        first = server_ice_urls(client.ice_servers)
        assert first[0].username == f"{int(issued[0]) + 60}:dora"
        assert await client.refresh_ice_servers()
        second = server_ice_urls(client.ice_servers)
        assert second[0].username == f"{int(issued[1]) + 60}:dora"
        assert credentials_expiry(second) == int(issued[1]) + 60
    finally:
        await client.close()


async def test_listener_refreshes_credentials_before_they_expire(
        ice_server: tuple[str, list[float]], tmp_path, monkeypatch) -> None:
    from rtcxfer.peer import listener as listener_module
    from rtcxfer.peer.client import ClientOptions
    from rtcxfer.peer.listener import Listener, ListenOptions
    from rtcxfer.progress import Output

    monkeypatch.setattr(listener_module, "MIN_REFRESH_SECONDS", 0.1)
    url, issued = ice_server
    listener = Listener(ClientOptions(server=url, name="erin"),
                        ListenOptions(download_dir=tmp_path), Output.from_flags(
                            json_events=True, quiet=True))
    running = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.ready.wait(), 10)
        assert listener.ice_plan.turn is not None
        first = listener.ice_plan.turn.username
        for _ in range(100):  # bounded: 10 s
            if listener.ice_plan.turn.username != first:
                break
            await asyncio.sleep(0.1)
        assert listener.ice_plan.turn.username == f"{int(issued[1]) + 60}:erin"
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
