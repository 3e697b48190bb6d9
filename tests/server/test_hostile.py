"""Hostile and broken input never harms the server or the other users (PROTOCOL.md 1.3)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from rtcxfer.protocol.signaling import MAX_FRAME_BYTES
from rtcxfer.server import ServerConfig, SignalingServer
from rtcxfer.server.server import HARD_FRAME_LIMIT

PROBE = {"type": "sync-probe"}
PROBE_REPLY = {"type": "error", "message": 'unknown message type "sync-probe"'}

OFFER = {"type": "offer", "sdp": "v=0\r\n"}


class RawClient:
    """A WebSocket client that does only what it is told: no pongs, no reading by itself."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 protocol: ClientProtocol) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = protocol

    @classmethod
    async def connect(cls, url: str) -> RawClient:
        protocol = ClientProtocol(parse_uri(url))
        reader, writer = await asyncio.open_connection(*url.removeprefix("ws://").split(":"))
        protocol.send_request(protocol.connect())
        for data in protocol.data_to_send():
            writer.write(data)
        while not any(isinstance(event, Response) for event in protocol.events_received()):
            protocol.receive_data(await reader.read(4096))
        return cls(reader, writer, protocol)

    async def send_frame(self, frame: Frame) -> None:
        self.writer.write(frame.serialize(mask=True))
        await self.writer.drain()

    async def send_text(self, text: str) -> None:
        await self.send_frame(Frame(Opcode.TEXT, text.encode()))

    def close(self) -> None:
        self.writer.transport.abort()


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{", "invalid JSON"),
        ("", "invalid JSON"),
        ('{"type":"login","name":"a"', "invalid JSON"),
        ("NaN", "invalid JSON"),
        ('{"type":"offer","othername":"b","offer":{"x":1e999}}', "invalid JSON"),
        ("[" * 50_000, "invalid JSON"),
        ("[1, 2]", "message must be a JSON object"),
        ("42", "message must be a JSON object"),
        ('"login"', "message must be a JSON object"),
        ("null", "message must be a JSON object"),
        ("{}", 'message has no "type" field'),
        ('{"type": 1}', '"type" must be a string'),
        ('{"type": null}', '"type" must be a string'),
        ('{"type": "foo"}', 'unknown message type "foo"'),
        ('{"type": "updata", "action": "login", "name": "x"}', 'unknown message type "updata"'),
        (b'{"type":"login","name":"alice"}', "binary frames are not supported"),
        (b"\x00\xff", "binary frames are not supported"),
        ("x" * (MAX_FRAME_BYTES + 1), "frame too large"),
        ('{"type":"login","name":"' + "é" * (MAX_FRAME_BYTES // 2) + '"}', "frame too large"),
    ],
    ids=lambda value: repr(value)[:40],
)
async def test_bad_frames_get_an_error_and_change_nothing(server, logged_in, peer_factory,
                                                          frame, reason):
    bystander = await logged_in("bystander")
    attacker = await peer_factory(server)
    await attacker.send(frame)
    error = await attacker.recv()
    assert error["type"] == "error"
    assert reason in error["message"]
    # The same connection still works, and nobody else noticed anything.
    assert await attacker.login("attacker") == ["bystander", "attacker"]
    assert await bystander.recv() == {"type": "updata", "action": "login", "name": "attacker"}
    await bystander.sync()


async def test_bad_frames_after_login_change_nothing(server, logged_in):
    alice = await logged_in("alice")
    bob = await logged_in("bob")
    await alice.recv()
    for frame in ("{", "[]", '{"type":"login"}', b"\x00", "x" * (MAX_FRAME_BYTES + 10)):
        await alice.send(frame)
        assert (await alice.recv())["type"] in ("error", "login")
    await alice.send({"type": "offer", "othername": "bob", "offer": OFFER})
    assert await bob.recv() == {"type": "offer", "name": "alice", "offer": OFFER}
    await bob.sync()


async def test_a_frame_beyond_the_hard_limit_closes_only_that_connection(server, logged_in,
                                                                         peer_factory):
    bystander = await logged_in("bystander")
    attacker = await peer_factory(server, max_size=None)
    await attacker.login("attacker")
    await bystander.recv()
    await attacker.send("x" * (HARD_FRAME_LIMIT + 1))
    code, _ = await attacker.closed()
    assert code == CloseCode.MESSAGE_TOO_BIG
    assert await bystander.recv() == {"type": "updata", "action": "offline", "name": "attacker"}
    await bystander.sync()


async def test_a_relay_that_would_exceed_the_frame_limit_is_refused(server, logged_in):
    sender = await logged_in("s" * 64)
    bob = await logged_in("bob")
    await sender.recv()
    envelope = json.dumps({"type": "offer", "othername": "bob", "offer": {"sdp": ""}})
    # Exactly at the limit as sent; stamping the 64-character sender name pushes it over.
    sdp = "x" * (MAX_FRAME_BYTES - len(envelope))
    await sender.send({"type": "offer", "othername": "bob", "offer": {"sdp": sdp}})
    error = await sender.recv()
    assert error["type"] == "error"
    assert "too large" in error["message"]
    await bob.sync()


async def test_fragmented_messages_are_assembled(server, logged_in, peer_factory):
    bystander = await logged_in("bystander")
    fragmented = await peer_factory(server)
    await fragmented.connection.send(['{"type":"lo', 'gin","na', 'me":"frag"}'])
    assert await fragmented.recv() == {"type": "login", "success": True}
    assert await fragmented.recv() == {"type": "userlist", "users": ["bystander", "frag"]}
    await fragmented.connection.send([b'{"type":', b'"offer"}'])
    assert await fragmented.recv() == {"type": "error",
                                       "message": "binary frames are not supported"}
    await fragmented.connection.send(["x" * 40_000, "y" * 40_000])
    assert "frame too large" in (await fragmented.recv())["message"]
    assert await bystander.recv() == {"type": "updata", "action": "login", "name": "frag"}
    await bystander.sync()


async def test_invalid_utf8_closes_only_that_connection(start_server, peer_factory):
    server = await start_server(close_timeout=0.5)
    bystander = await peer_factory(server)
    await bystander.login("bystander")
    raw = await RawClient.connect(server.url)
    try:
        await raw.send_frame(Frame(Opcode.TEXT, b'{"type":"login","name":"\xff"}'))
        raw.protocol.receive_data(await asyncio.wait_for(raw.reader.read(), 10))
    finally:
        raw.close()
    closes = [Close.parse(event.data) for event in raw.protocol.events_received()
              if isinstance(event, Frame) and event.opcode is Opcode.CLOSE]
    assert [close.code for close in closes] == [CloseCode.INVALID_DATA]
    await bystander.sync()
    assert server.users.keys() == {"bystander"}


async def test_message_flood_closes_the_flooder_with_policy_violation(start_server,
                                                                      peer_factory):
    server = await start_server(message_rate=10.0, message_burst=20)
    bystander = await peer_factory(server)
    await bystander.login("bystander")
    flooder = await peer_factory(server)
    await flooder.login("flooder")
    await bystander.recv()
    for _ in range(200):
        await flooder.send({"type": "candidate", "othername": "nobody", "candidate": None})
    code, reason = await flooder.closed()
    assert code == CloseCode.POLICY_VIOLATION
    assert reason == "message rate limit exceeded"
    assert await bystander.recv() == {"type": "updata", "action": "offline", "name": "flooder"}
    await bystander.sync()


async def test_login_flood_on_one_socket_is_closed(server, logged_in, peer_factory):
    owner = await logged_in("alice")
    flooder = await peer_factory(server)
    for attempt in range(20):
        # Taken names and invalid names count alike.
        name = "alice" if attempt % 2 else ""
        await flooder.send({"type": "login", "name": name, "token": str(attempt)})
    for _ in range(16):
        reply = await flooder.recv()
        assert reply["type"] == "login"
        assert reply["success"] is False
    code, reason = await flooder.closed()
    assert code == CloseCode.POLICY_VIOLATION
    assert reason == "too many login attempts"
    await owner.sync()


async def test_many_concurrent_logins_deliver_every_updata(server, peer_factory):
    names = [f"user{index}" for index in range(40)]
    peers = await asyncio.gather(*(peer_factory(server) for _ in names))

    async def log_in_and_learn(peer, name):  # type: ignore[no-untyped-def]
        known = set(await peer.login(name))
        while known != set(names):
            update = await peer.recv()
            assert update["type"] == "updata"
            assert update["action"] == "login"
            assert update["name"] not in known
            known.add(update["name"])
        return known

    results = await asyncio.gather(*(log_in_and_learn(peer, name)
                                     for peer, name in zip(peers, names, strict=True)))
    assert all(known == set(names) for known in results)
    for peer in peers:
        await peer.sync()


async def test_a_client_that_does_not_read_is_disconnected(start_server, peer_factory):
    server = await start_server(send_queue_limit=64 * 1024, message_rate=1000.0,
                                message_burst=1000)
    sender = await peer_factory(server)
    await sender.login("sender")
    # A tiny receive buffer and a one-message queue: the kernel holds little for it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, server.addresses[0])
    sleeper = await peer_factory(server, sock=sock, max_queue=1)
    await sleeper.login("sleeper")
    assert await sender.recv() == {"type": "updata", "action": "login", "name": "sleeper"}

    big_offer = {"type": "offer", "sdp": "x" * 60_000}
    for _ in range(400):
        if "sleeper" not in server.users:
            break
        await sender.send({"type": "offer", "othername": "sleeper", "offer": big_offer})
    # The sender was negotiating with it, so it gets a leave before the updata;
    # offers that were on their way when the sleeper went offline get errors.
    assert await sender.recv() == {"type": "leave", "name": "sleeper"}
    assert await sender.recv() == {"type": "updata", "action": "offline", "name": "sleeper"}
    await sender.send(PROBE)
    while (reply := await sender.recv()) != PROBE_REPLY:
        assert reply == {"type": "error", "message": 'user "sleeper" is not online'}
    # The sleeper's own close would wait for frames it never read: cut it.
    sleeper.connection.transport.abort()


async def test_a_silent_half_open_client_is_dropped_by_keepalive(start_server, logged_in,
                                                                 peer_factory):
    server = await start_server(ping_interval=0.2, ping_timeout=0.3, close_timeout=0.3)
    bystander = await peer_factory(server)
    await bystander.login("bystander")
    silent = await RawClient.connect(server.url)
    try:
        await silent.send_text(json.dumps({"type": "login", "name": "silent"}))
        assert await bystander.recv() == {"type": "updata", "action": "login", "name": "silent"}
        # It never reads again, so never answers a ping.
        assert await bystander.recv() == {"type": "updata", "action": "offline",
                                          "name": "silent"}
    finally:
        silent.close()
    await bystander.sync()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
message_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["login", "offer", "answer", "candidate", "leave", "error",
                              "updata", "x"]) | json_values},
    optional={field: st.sampled_from(["bystander", "fuzzer", ""]) | json_values
              for field in ("name", "othername", "offer", "answer", "candidate", "session",
                            "token")},
).map(json.dumps)
fuzz_frames = st.lists(message_like | st.text(max_size=50) | st.binary(max_size=50),
                       min_size=1, max_size=8)


@given(frames=fuzz_frames)
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_input_never_harms_the_server_or_a_bystander(static_root, frames):
    async def scenario() -> None:
        config = ServerConfig(host="127.0.0.1", port=0, static_root=static_root)
        async with (SignalingServer(config) as server, connect(server.url) as bystander,
                    connect(server.url) as fuzzer):
            await bystander.send(json.dumps({"type": "login", "name": "bystander"}))
            for frame in frames:
                await fuzzer.send(frame)
            await fuzzer.send(json.dumps(PROBE))
            # Every frame got its answer, in order, and the connection lives on.
            while json.loads(await asyncio.wait_for(fuzzer.recv(), 10)) != PROBE_REPLY:
                pass
            await bystander.send(json.dumps(PROBE))
            while json.loads(await asyncio.wait_for(bystander.recv(), 10)) != PROBE_REPLY:
                pass
            assert "bystander" in server.users

    asyncio.run(scenario())
