"""ICE setup: loopback host candidates, and no ICE server unless the user names one."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import aioice.ice
import pytest
from aiortc import RTCPeerConnection

from rtcxfer.peer import loopback
from rtcxfer.peer.config import IceOptions, IceServerError, rtc_configuration


async def test_gathering_offers_loopback_last_and_lowest() -> None:
    loopback.install()
    loopback.install()  # idempotent: a second call must not wrap twice
    connection = aioice.ice.Connection(ice_controlling=True)
    try:
        await connection.gather_candidates()
        candidates = connection.local_candidates
        hosts = [c.host for c in candidates]
        assert "127.0.0.1" in hosts
        assert hosts.count("127.0.0.1") == 1
        loopbacks = [c for c in candidates if loopback.is_loopback(c.host)]
        others = [c for c in candidates if not loopback.is_loopback(c.host)]
        assert all(lo.priority < other.priority for lo in loopbacks for other in others)
    finally:
        await connection.close()


async def test_loopback_sockets_ask_no_stun_server() -> None:
    """A STUN answer never reaches 127.0.0.1 from another host: loopback does not ask."""
    import asyncio

    asked_from: list[str] = []

    class Stun(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            asked_from.append(addr[0])
            # A binding success with XOR-MAPPED-ADDRESS = the source address.
            from aioice import stun

            request = stun.parse_message(data)
            response = stun.Message(message_method=stun.Method.BINDING,
                                    message_class=stun.Class.RESPONSE,
                                    transaction_id=request.transaction_id)
            response.attributes["XOR-MAPPED-ADDRESS"] = addr
            self.transport.sendto(bytes(response), addr)  # type: ignore[attr-defined]

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Stun, local_addr=("0.0.0.0", 0))
    port = transport.get_extra_info("sockname")[1]
    loopback.install()
    connection = aioice.ice.Connection(ice_controlling=True, stun_server=("127.0.0.1", port))
    try:
        await connection.gather_candidates()
        srflx = [c for c in connection.local_candidates if c.type == "srflx"]
        assert all(not loopback.is_loopback(c.related_address or "") for c in srflx)
        assert "127.0.0.1" not in asked_from
        # Real interfaces still ask (where this host has any besides lo).
        real = [c for c in connection.local_candidates
                if c.type == "host" and not loopback.is_loopback(c.host) and ":" not in c.host]
        assert len(asked_from) == len(real)
    finally:
        await connection.close()
        transport.close()


def test_default_configuration_names_no_ice_server() -> None:
    configuration = rtc_configuration(IceOptions())
    assert configuration.iceServers == []


async def test_peer_connection_never_contacts_google_stun() -> None:
    pc = RTCPeerConnection(rtc_configuration(IceOptions()))
    try:
        pc.createDataChannel("rtcxfer/1")
        await pc.setLocalDescription(await pc.createOffer())
        connection = pc.sctp.transport.transport.iceGatherer._connection
        assert connection.stun_server is None
        assert connection.turn_server is None
        assert "typ srflx" not in pc.localDescription.sdp
    finally:
        await pc.close()


def test_stun_and_turn_urls() -> None:
    configuration = rtc_configuration(IceOptions(
        stun=["stun.example.net:3478"], turn=["turn:turn.example.net"],
        turn_user="u", turn_password="p"))
    assert [s.urls for s in configuration.iceServers] == [
        "stun:stun.example.net:3478", "turn:turn.example.net"]
    assert configuration.iceServers[1].username == "u"
    assert configuration.iceServers[1].credential == "p"


@pytest.mark.parametrize("options", [
    IceOptions(stun=["http://stun.example.net"]),
    IceOptions(turn=["turn:turn.example.net"]),
    IceOptions(turn=["stun:turn.example.net"], turn_user="u", turn_password="p"),
])
def test_bad_ice_server_options(options: IceOptions) -> None:
    with pytest.raises(IceServerError):
        rtc_configuration(options)


LOOPBACK_ONLY_PEERS = textwrap.dedent("""
    import asyncio
    from aiortc import RTCPeerConnection
    from rtcxfer.peer import loopback
    from rtcxfer.peer.config import IceOptions, rtc_configuration

    async def main():
        loopback.install()
        offerer = RTCPeerConnection(rtc_configuration(IceOptions()))
        answerer = RTCPeerConnection(rtc_configuration(IceOptions()))
        received = asyncio.get_running_loop().create_future()
        answerer.on("datachannel", lambda channel: channel.on(
            "message", lambda message: received.done() or received.set_result(message)))
        channel = offerer.createDataChannel("rtcxfer/1")
        channel.on("open", lambda: channel.send("over loopback"))
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())
        await offerer.setRemoteDescription(answerer.localDescription)
        print(await asyncio.wait_for(received, 30))
        await offerer.close()
        await answerer.close()

    asyncio.run(main())
""")


def test_two_peers_connect_where_loopback_is_the_only_interface() -> None:
    unshare = shutil.which("unshare")
    ip = shutil.which("ip")
    if unshare is None or ip is None:
        pytest.skip("needs unshare and ip to make a loopback-only network namespace")
    probe = subprocess.run([unshare, "-rn", ip, "link", "set", "lo", "up"],
                           capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode().strip()}")
    result = subprocess.run(
        [unshare, "-rn", "sh", "-c", f'{ip} link set lo up && exec "$0" -c "$1"',
         sys.executable, LOOPBACK_ONLY_PEERS],
        capture_output=True, text=True, timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "over loopback"
