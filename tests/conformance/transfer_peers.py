"""rtcxfer/1 peers written only from PROTOCOL.md section 2: sender side and receiver side."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import RTCDataChannel, RTCSessionDescription
from conformance.wire import (
    ANSWER_SECONDS,
    CHUNK_SIZE,
    REPLY_SECONDS,
    ChannelInbox,
    Closed,
    SignalingClient,
    assert_candidate_shape,
    description,
    new_peer_connection,
    offer_channel,
    signaling,
)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Outcome:
    """How the receiver reacted to what a (possibly hostile) sender did."""

    reply: dict[str, Any] | None = None
    acks: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False

    @property
    def refused(self) -> bool:
        """Declined, errored, closed, or nacked: anything but a clean success."""
        return (self.closed or bool(self.errors) or self.reply is None
                or self.reply.get("type") != "accept"
                or any(ack.get("ok") is not True for ack in self.acks))


async def next_control(inbox: ChannelInbox, outcome: Outcome,
                       seconds: float = REPLY_SECONDS) -> dict[str, Any] | None:
    """The receiver's next control message; records `error` and close in ``outcome``."""
    try:
        message = await inbox.receive_control(seconds)
    except TimeoutError:
        return None
    if message is None:
        outcome.closed = True
    elif message.get("type") == "error":
        outcome.errors.append(message)
        assert isinstance(message.get("message"), str), message
    return message


async def send_hello(inbox: ChannelInbox, files: list[dict[str, Any]],
                     total: int | None = None, outcome: Outcome | None = None) -> Outcome:
    outcome = outcome or Outcome()
    inbox.send({"type": "hello", "version": 1, "files": files,
                "total": sum(f["size"] for f in files) if total is None else total})
    outcome.reply = await next_control(inbox, outcome, 30)
    return outcome


async def send_file(inbox: ChannelInbox, outcome: Outcome, index: int, data: bytes, *,
                    offset: int = 0, digest: str | None = None) -> dict[str, Any] | None:
    """One `file` ... binary ... `eof` round; the ack (or error) that follows it."""
    inbox.send({"type": "file", "index": index, "offset": offset})
    for start in range(offset, len(data), CHUNK_SIZE):
        inbox.send(data[start:start + CHUNK_SIZE])
    inbox.send({"type": "eof", "index": index, "sha256": digest or sha256_hex(data)})
    reply = await next_control(inbox, outcome, 30)
    if reply is not None and reply.get("type") == "ack":
        outcome.acks.append(reply)
    return reply


async def finish(inbox: ChannelInbox, outcome: Outcome) -> dict[str, Any] | None:
    inbox.send({"type": "done"})
    return await next_control(inbox, outcome, 15)


async def send_files(inbox: ChannelInbox, files: list[tuple[str, bytes]]) -> Outcome:
    """A conforming transfer: hello, then every file from the accepted offset, then done."""
    outcome = await send_hello(inbox, [{"name": name, "size": len(data)}
                                       for name, data in files])
    assert outcome.reply is not None and outcome.reply["type"] == "accept", outcome
    offsets = outcome.reply["offsets"]
    assert isinstance(offsets, list) and len(offsets) == len(files), outcome.reply
    for index, (_name, data) in enumerate(files):
        await send_file(inbox, outcome, index, data, offset=offsets[index])
    assert await finish(inbox, outcome) == {"type": "done"}, outcome
    return outcome


@contextlib.asynccontextmanager
async def channel_to(url: str, sender: str, receiver: str,
                     session: str | None = None) -> AsyncIterator[ChannelInbox]:
    async with signaling(url, sender) as client, \
            offer_channel(client, receiver, session) as inbox:
        yield inbox


@dataclass
class ReceiverScript:
    """What the minimal receiver answers; defaults are a conforming receiver."""

    decline_reason: str | None = None
    # sent instead of a conforming accept (a hostile receiver)
    reply_to_hello: dict[str, Any] | str | None = None
    # bytes of each file (by name) that the receiver claims to hold already
    held: dict[str, bytes] = field(default_factory=dict)
    # advertised in our answer instead of aiortc's own a=max-message-size
    max_message_size: int | None = None
    largest_frame: int = 0
    offer_sdp: str = ""
    answer_sdp: str = ""
    nack_reason: str | None = None
    error_message: str | None = None
    echo_session: bool = True
    # close the connection right after replying `done`, as a browser page may
    linger_after_done: bool = True
    received: dict[str, bytes] = field(default_factory=dict)
    hello: dict[str, Any] | None = None


async def answer_and_receive(client: SignalingClient, script: ReceiverScript,
                             seconds: float = 60) -> None:
    """Answer the first offer, then run the receiving side of rtcxfer/1 per ``script``."""
    connection = new_peer_connection()
    channels: asyncio.Queue[RTCDataChannel] = asyncio.Queue()
    connection.on("datachannel", channels.put_nowait)
    watching: asyncio.Task[None] | None = None
    try:
        while (offer := await client.receive(seconds))["type"] != "offer":
            assert offer["type"] in {"updata", "candidate"}, offer
        await connection.setRemoteDescription(
            RTCSessionDescription(sdp=offer["offer"]["sdp"], type="offer"))
        await connection.setLocalDescription(await connection.createAnswer())
        extra = {"session": offer["session"]} if script.echo_session and "session" in offer \
            else {}
        answer = description(connection.localDescription)
        if script.max_message_size is not None:
            answer["sdp"] = re.sub(r"a=max-message-size:\d+",
                                   f"a=max-message-size:{script.max_message_size}",
                                   answer["sdp"])
        await client.relay("answer", offer["name"], answer, **extra)
        script.offer_sdp = offer["offer"]["sdp"]
        script.answer_sdp = answer["sdp"]
        watching = asyncio.create_task(watch_candidates(client))
        channel = await asyncio.wait_for(channels.get(), ANSWER_SECONDS + 5)
        assert channel.label == "rtcxfer/1", channel.label
        inbox = ChannelInbox(channel)
        await receive_on(inbox, script)
        if watching.done():  # surfaces a malformed candidate it found
            watching.result()
    finally:
        if watching is not None:
            watching.cancel()
        await connection.close()


async def watch_candidates(client: SignalingClient) -> None:
    """Check the shape of every candidate the sender trickles after our answer."""
    with contextlib.suppress(Closed):
        while True:
            message = await client.receive(3600)
            if message["type"] == "candidate":
                assert_candidate_shape(message["candidate"])


async def receive_on(inbox: ChannelInbox, script: ReceiverScript) -> None:
    hello = await inbox.receive_control(30)
    assert hello is not None and hello["type"] == "hello" and hello["version"] == 1, hello
    script.hello = hello
    if script.decline_reason is not None:
        inbox.send({"type": "decline", "reason": script.decline_reason})
        await inbox.receive(15)
        return
    if script.error_message is not None or script.reply_to_hello is not None:
        inbox.send(script.reply_to_hello
                   or {"type": "error", "message": script.error_message})
        # the sender answers with an error and closes, or just closes
        with contextlib.suppress(TimeoutError):
            while await inbox.receive(15) is not None:
                pass
        return
    files = hello["files"]
    offsets = [len(script.held.get(entry["name"], b"")) for entry in files]
    inbox.send({"type": "accept", "offsets": offsets})
    for index, entry in enumerate(files):
        start = await inbox.receive_control(30)
        assert start == {"type": "file", "index": index, "offset": offsets[index]}, start
        data = bytearray(script.held.get(entry["name"], b""))
        while isinstance(chunk := await inbox.receive(30), bytes):
            assert len(chunk) <= 64 * 1024, len(chunk)
            script.largest_frame = max(script.largest_frame, len(chunk))
            data.extend(chunk)
        assert chunk is not None and chunk["type"] == "eof" and chunk["index"] == index, chunk
        ok = chunk["sha256"] == sha256_hex(bytes(data)) and len(data) == entry["size"]
        if script.nack_reason is not None or not ok:
            inbox.send({"type": "ack", "index": index, "ok": False,
                        "reason": script.nack_reason or "sha256 mismatch"})
        else:
            script.received[entry["name"]] = bytes(data)
            inbox.send({"type": "ack", "index": index, "ok": True})
    done = await inbox.receive_control(30)
    if done is not None and done["type"] == "done":
        inbox.send({"type": "done"})
        if script.linger_after_done:
            # the sender closes once it has our done; until then keep the connection up
            with contextlib.suppress(TimeoutError):
                await inbox.receive(15)
        else:
            await inbox.flushed()


def write_file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
