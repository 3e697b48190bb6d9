"""A misbehaving rtcxfer/1 sender, to check how the page treats bad peers.

Run as ``python hostile_sender.py WS_URL NAME TARGET MODE``; it logs in as NAME,
offers TARGET a connection (plain aiortc, written only from PROTOCOL.md), and:

- ``bad-hash``: sends one small file whose ``eof`` carries a wrong sha256;
- ``bad-name``: offers a file named ``../escape.txt``;
- ``folder-bad-hash``: rtcxfer/2, a folder of two files whose second ``eof``
  carries a wrong sha256, then ``done``;
- ``folder-then-wait``: rtcxfer/2, a folder of two files; sends the first, then
  only listens (for the page's ``error`` when its download is cancelled).

It prints one JSON line per rtcxfer/1 message it received from the page, then
``{"closed": true}`` when the channel closed or the page stopped answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import sys
from typing import Any

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp
from websockets.asyncio.client import ClientConnection, connect

PAYLOAD = b"these bytes do not hash to the announced sha256\n"
STEP_TIMEOUT_S = 60.0


def report(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


async def relay_candidates(websocket: ClientConnection, pc: RTCPeerConnection,
                           session: str) -> None:
    async for frame in websocket:
        message = json.loads(frame)
        if message.get("type") == "leave":
            return
        if message.get("type") != "candidate" or message.get("session") != session:
            continue
        candidate = message.get("candidate")
        if candidate and candidate.get("candidate"):
            parsed = candidate_from_sdp(candidate["candidate"].removeprefix("candidate:"))
            parsed.sdpMid = candidate.get("sdpMid")
            parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
            await pc.addIceCandidate(parsed)


async def run(url: str, name: str, target: str, mode: str) -> None:
    session = secrets.token_hex(8)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    channel = pc.createDataChannel("rtcxfer/1", ordered=True)
    received: asyncio.Queue[str | bytes | None] = asyncio.Queue()
    opened = asyncio.Event()
    channel.on("open", opened.set)
    channel.on("message", received.put_nowait)
    channel.on("close", lambda: received.put_nowait(None))

    async with connect(url) as websocket:
        await websocket.send(json.dumps({"type": "login", "name": name}))
        while json.loads(await websocket.recv()).get("type") != "userlist":
            pass
        await pc.setLocalDescription(await pc.createOffer())
        await websocket.send(json.dumps({
            "type": "offer", "name": name, "othername": target, "session": session,
            "offer": {"type": "offer", "sdp": pc.localDescription.sdp},
        }))
        while True:
            message = json.loads(await asyncio.wait_for(websocket.recv(), STEP_TIMEOUT_S))
            if message.get("type") == "answer" and message.get("session") == session:
                break
        await pc.setRemoteDescription(RTCSessionDescription(**message["answer"]))
        candidates = asyncio.create_task(relay_candidates(websocket, pc, session))
        try:
            await asyncio.wait_for(opened.wait(), STEP_TIMEOUT_S)
            await speak(channel, received, mode)
        finally:
            candidates.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await candidates
            await pc.close()


async def speak(channel: RTCDataChannel, received: asyncio.Queue[str | bytes | None],
                mode: str) -> None:
    if mode.startswith("folder-"):
        await speak_folder(channel, received, mode)
        return
    name = "../escape.txt" if mode == "bad-name" else "tampered.txt"
    channel.send(json.dumps({
        "type": "hello", "version": 1, "total": len(PAYLOAD),
        "files": [{"name": name, "size": len(PAYLOAD)}],
    }))
    reply = await next_message(received)
    if reply is None or reply.get("type") != "accept":
        return
    channel.send(json.dumps({"type": "file", "index": 0, "offset": 0}))
    channel.send(PAYLOAD)
    channel.send(json.dumps({"type": "eof", "index": 0, "sha256": "0" * 64}))
    await next_message(received)


async def speak_folder(channel: RTCDataChannel,
                       received: asyncio.Queue[str | bytes | None], mode: str) -> None:
    files = [("d/first.txt", b"first file\n" * 100), ("d/second.txt", PAYLOAD)]
    channel.send(json.dumps({
        "type": "hello", "version": 2, "count": len(files),
        "total": sum(len(data) for _, data in files),
        "files": [{"name": name, "size": len(data)} for name, data in files],
    }))
    reply = await next_message(received)
    if reply is None or reply.get("type") != "accept":
        return
    for index, (_, data) in enumerate(files):
        if index == 1 and mode == "folder-then-wait":
            break
        digest = "0" * 64 if index == 1 else hashlib.sha256(data).hexdigest()
        channel.send(json.dumps({"type": "file", "index": index, "offset": 0}))
        channel.send(data)
        channel.send(json.dumps({"type": "eof", "index": index, "sha256": digest,
                                 "size": len(data)}))
    else:
        channel.send(json.dumps({"type": "done"}))
    # Report everything the page says until it closes or stays silent.
    for _ in range(10):
        if await next_message(received) is None:
            return


async def next_message(received: asyncio.Queue[str | bytes | None]) -> dict[str, Any] | None:
    try:
        frame = await asyncio.wait_for(received.get(), STEP_TIMEOUT_S)
    except TimeoutError:
        frame = None
    if frame is None:
        report({"closed": True})
        return None
    message: dict[str, Any] = json.loads(frame)
    report(message)
    return message


if __name__ == "__main__":
    asyncio.run(run(*sys.argv[1:5]))
