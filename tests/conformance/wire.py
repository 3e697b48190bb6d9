"""Clients written only from PROTOCOL.md: a raw signaling client and a raw rtcxfer/1 peer.

Nothing here imports rtcxfer: the point of the conformance tests is that an outsider
who read only the contract can talk to ``rtcxfer serve``, ``listen`` and ``send``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

# Long enough for a loaded two-core machine; a conforming reply arrives in milliseconds.
REPLY_SECONDS = 10.0
# An answer from a peer on loopback takes well under a second, even on a loaded machine.
ANSWER_SECONDS = 15.0
# How long "nothing arrives" is watched for; a relay on loopback takes milliseconds.
QUIET_SECONDS = 0.6
CHANNEL_LABEL = "rtcxfer/1"
CHUNK_SIZE = 16 * 1024


def loopback_only_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """aioice skips 127.0.0.1 by itself; the tests must stay on loopback.

    Installed over ``aioice.ice.get_host_addresses`` by the conformance conftest, for
    the peers these tests run in-process only.
    """
    return ["127.0.0.1"] if use_ipv4 else []


class Closed(Exception):
    """The other side closed; ``code`` is the WebSocket close code when there is one."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with code {code}")
        self.code = code


def _reject_constant(constant: str) -> Any:
    raise AssertionError(f"frame is not strict JSON (RFC 8259): contains {constant}")


class SignalingClient:
    """One raw WebSocket to the signaling server, speaking PROTOCOL.md section 1."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.name: str | None = None

    async def send(self, message: Any) -> None:
        await self.connection.send(message if isinstance(message, str | bytes)
                                   else json.dumps(message))

    async def receive_frame(self, seconds: float = REPLY_SECONDS) -> str:
        """The next text frame as sent; it must be strict JSON (no NaN, no Infinity)."""
        try:
            frame = await asyncio.wait_for(self.connection.recv(), seconds)
        except ConnectionClosed as closed:
            raise Closed(closed.rcvd.code if closed.rcvd else None) from closed
        assert isinstance(frame, str), f"server sent a binary frame: {frame!r}"
        json.loads(frame, parse_constant=_reject_constant)
        return frame

    async def receive(self, seconds: float = REPLY_SECONDS) -> dict[str, Any]:
        frame = await self.receive_frame(seconds)
        message = json.loads(frame)
        assert isinstance(message, dict) and isinstance(message.get("type"), str), frame
        return message

    async def receive_type(self, kind: str, seconds: float = REPLY_SECONDS) -> dict[str, Any]:
        """The next message of type ``kind``, skipping presence noise (updata)."""
        while True:
            message = await self.receive(seconds)
            if message["type"] == kind:
                return message
            assert message["type"] == "updata", f"expected {kind}, got {message}"

    async def reply(self, seconds: float = REPLY_SECONDS) -> dict[str, Any]:
        """The next message that is not presence noise (updata)."""
        while (message := await self.receive(seconds))["type"] == "updata":
            pass
        return message

    async def quiet(self, seconds: float = QUIET_SECONDS,
                    ignore: Callable[[dict[str, Any]], bool] = lambda _m: False) -> None:
        """Assert that nothing but ``ignore``-d messages arrives for ``seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (remaining := deadline - loop.time()) > 0:
            try:
                message = await self.receive(remaining)
            except TimeoutError:
                return
            assert ignore(message), f"unexpected message: {message}"

    async def login(self, name: str) -> list[str]:
        """Log in; return the userlist. Asserts the exact reply sequence of 1.2."""
        await self.send({"type": "login", "name": name})
        reply = await self.receive()
        assert reply == {"type": "login", "success": True}, reply
        users = await self.receive()
        assert set(users) == {"type", "users"} and users["type"] == "userlist", users
        self.name = name
        return users["users"]

    async def relay(self, kind: str, target: str, payload: Any = None,
                    **extra: Any) -> None:
        message: dict[str, Any] = {"type": kind, "name": self.name, "othername": target}
        if kind != "leave":
            message[kind] = payload
        message.update(extra)
        await self.send(message)

    async def close_code(self, seconds: float = REPLY_SECONDS) -> int | None:
        """Wait for the server to close this socket; return the close code."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            try:
                await self.receive(max(deadline - loop.time(), 0.01))
            except Closed as closed:
                return closed.code

    async def close(self) -> None:
        await self.connection.close()


@contextlib.asynccontextmanager
async def signaling(url: str, name: str | None = None) -> AsyncIterator[SignalingClient]:
    async with connect(url, max_size=None, open_timeout=REPLY_SECONDS) as connection:
        client = SignalingClient(connection)
        if name is not None:
            await client.login(name)
        yield client


class ChannelInbox:
    """Every message and the close of one data channel, in arrival order."""

    CLOSED = object()

    def __init__(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        self.offer_sdp = ""
        self.answer_sdp = ""
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        channel.on("message", self.queue.put_nowait)
        channel.on("close", lambda: self.queue.put_nowait(self.CLOSED))

    def send(self, message: dict[str, Any] | str | bytes) -> None:
        self.channel.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def flushed(self) -> None:
        """Wait until everything sent left this process: closing aborts what did not."""
        if self.channel.bufferedAmount > self.channel.bufferedAmountLowThreshold:
            drained = asyncio.Event()
            self.channel.on("bufferedamountlow", drained.set)
            await asyncio.wait_for(drained.wait(), REPLY_SECONDS)

    async def receive(self, seconds: float = REPLY_SECONDS) -> dict[str, Any] | bytes | None:
        """The next message (JSON decoded), bytes, or None once the channel closed."""
        item = await asyncio.wait_for(self.queue.get(), seconds)
        if item is self.CLOSED:
            self.queue.put_nowait(item)
            return None
        return json.loads(item) if isinstance(item, str) else item

    async def receive_control(self, seconds: float = REPLY_SECONDS) -> dict[str, Any] | None:
        message = await self.receive(seconds)
        assert not isinstance(message, bytes), "binary frame where a control message was due"
        return message


def new_peer_connection() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def description(sdp: RTCSessionDescription) -> dict[str, str]:
    return {"type": sdp.type, "sdp": sdp.sdp}


@contextlib.asynccontextmanager
async def offer_channel(client: SignalingClient, target: str,
                        session: str | None = None) -> AsyncIterator[ChannelInbox]:
    """Offer a ``rtcxfer/1`` channel to ``target`` as PROTOCOL.md describes it, no trickle.

    Candidates travel only inside the SDP (aiortc gathers them all before the
    offer is set); trickled candidates from the other side are not needed
    because its SDP carries them too.
    """
    connection = new_peer_connection()
    channel = connection.createDataChannel(CHANNEL_LABEL)
    inbox = ChannelInbox(channel)
    opened = asyncio.Event()
    channel.on("open", opened.set)
    try:
        await connection.setLocalDescription(await connection.createOffer())
        extra = {} if session is None else {"session": session}
        await client.relay("offer", target, description(connection.localDescription), **extra)
        answer = await _answer_from(client, target)
        inbox.offer_sdp = connection.localDescription.sdp
        inbox.answer_sdp = answer["answer"]["sdp"]
        await connection.setRemoteDescription(
            RTCSessionDescription(sdp=answer["answer"]["sdp"], type="answer"))
        try:
            await asyncio.wait_for(opened.wait(), ANSWER_SECONDS + 5)
        except TimeoutError:
            raise AssertionError(
                f"rtcxfer/1 channel to {target} never opened: ice "
                f"{connection.iceConnectionState}, connection {connection.connectionState}, "
                f"channel {channel.readyState}") from None
        yield inbox
    finally:
        await connection.close()


async def _answer_from(client: SignalingClient, target: str) -> dict[str, Any]:
    """The answer of ``target``, skipping its trickled candidates and presence noise."""
    while True:
        message = await client.receive(ANSWER_SECONDS)
        if message["type"] == "answer" and message["name"] == target:
            return message
        if message["type"] == "error":
            raise AssertionError(f"server refused the offer: {message}")
        if message["type"] == "candidate":
            assert_candidate_shape(message["candidate"])
        # a `leave` here ends the peer's previous connection (one per pair without
        # `session`), sent when that one closed; it cannot concern an offer not answered yet
        assert message["type"] in {"updata", "candidate", "leave"}, message


def assert_candidate_shape(candidate: Any) -> None:
    """An RTCIceCandidateInit as PROTOCOL.md 1.1 describes it, or end-of-candidates."""
    if candidate is None:
        return
    assert isinstance(candidate, dict), candidate
    assert isinstance(candidate.get("candidate"), str), candidate
    assert candidate["candidate"] == "" or candidate["candidate"].startswith("candidate:"), \
        candidate
    assert isinstance(candidate.get("sdpMid"), str | None), candidate
    assert isinstance(candidate.get("sdpMLineIndex"), int | None), candidate


def verification_code(offer_sdp: str, answer_sdp: str) -> str:
    """The short code of docs/protocol.md, computed from the two SDPs."""
    def fingerprint(sdp: str) -> str:
        match = re.search(r"^a=fingerprint:sha-256 ([0-9A-Fa-f:]+)", sdp,
                          re.IGNORECASE | re.MULTILINE)
        assert match, "no sha-256 fingerprint in the SDP"
        return match.group(1).upper()

    digest = hashlib.sha256(
        f"rtcxfer-verify/1|{fingerprint(offer_sdp)}|{fingerprint(answer_sdp)}".encode()).digest()
    number = int.from_bytes(digest[:4], "big") % 100_000_000
    return f"{number // 10000:04d}-{number % 10000:04d}"
