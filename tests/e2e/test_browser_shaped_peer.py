"""A peer that signals like a browser, against a real `rtcxfer listen`.

No ``session`` field, an offer whose SDP carries no candidates (everything
trickled, with the ``candidate:`` prefix, ended by an empty candidate), raw
PROTOCOL.md JSON over a plain WebSocket, and rtcxfer/1 spoken by hand.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp
from support import CliProcess, wait_for_event
from websockets.asyncio.client import ClientConnection, connect

from rtcxfer.peer.verification import verification_code

Start = Callable[..., CliProcess]
TIMEOUT = 30.0
CONTENT = b"sent like a browser would\n" * 100


def without_candidates(sdp: str) -> str:
    lines = sdp.splitlines()
    kept = [line for line in lines
            if not line.startswith(("a=candidate:", "a=end-of-candidates"))]
    return "\r\n".join(kept) + "\r\n"


async def next_of(websocket: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(websocket.recv(), TIMEOUT))
        if message["type"] == kind:
            return message


async def test_browser_shaped_sender(tmp_path: Path, listen: Start, server: str) -> None:
    inbox = tmp_path / "in"
    listener = listen("bob", inbox, "--yes")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        async with connect(server) as websocket:
            await websocket.send(json.dumps({"type": "login", "name": "browser"}))
            assert (await next_of(websocket, "login"))["success"] is True

            channel = pc.createDataChannel("rtcxfer/1")
            replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            channel.on("message", lambda m: replies.put_nowait(json.loads(m)))
            opened = asyncio.Event()
            channel.on("open", opened.set)
            await pc.setLocalDescription(await pc.createOffer())
            gatherer = pc.sctp.transport.transport.iceGatherer
            offer = {"type": "offer", "sdp": without_candidates(pc.localDescription.sdp)}
            await websocket.send(json.dumps(
                {"type": "offer", "name": "browser", "othername": "bob", "offer": offer}))
            for candidate in gatherer.getLocalCandidates():
                init = {"candidate": "candidate:" + candidate_to_sdp(candidate),
                        "sdpMid": pc.sctp.mid, "sdpMLineIndex": 0}
                await websocket.send(json.dumps({"type": "candidate", "name": "browser",
                                                 "othername": "bob", "candidate": init}))
            await websocket.send(json.dumps({"type": "candidate", "name": "browser",
                                             "othername": "bob",
                                             "candidate": {"candidate": "", "sdpMid": "0",
                                                           "sdpMLineIndex": 0}}))

            answer = await next_of(websocket, "answer")
            assert "session" not in answer
            await pc.setRemoteDescription(RTCSessionDescription(**answer["answer"]))
            trickled = await next_of(websocket, "candidate")
            assert trickled["candidate"]["candidate"].startswith("candidate:")
            assert "session" not in trickled
            line = trickled["candidate"]["candidate"].removeprefix("candidate:")
            remote = candidate_from_sdp(line)
            remote.sdpMid = trickled["candidate"]["sdpMid"]
            remote.sdpMLineIndex = trickled["candidate"]["sdpMLineIndex"]
            await pc.addIceCandidate(remote)
            await asyncio.wait_for(opened.wait(), TIMEOUT)

            digest = hashlib.sha256(CONTENT).hexdigest()
            files = [{"name": "browser.txt", "size": len(CONTENT), "mtime": 1_700_000_000}]
            channel.send(json.dumps({"type": "hello", "version": 1, "files": files,
                                     "total": len(CONTENT)}))
            assert await asyncio.wait_for(replies.get(), TIMEOUT) == {
                "type": "accept", "offsets": [0]}
            channel.send(json.dumps({"type": "file", "index": 0, "offset": 0}))
            for start in range(0, len(CONTENT), 1000):
                channel.send(CONTENT[start:start + 1000])
            channel.send(json.dumps({"type": "eof", "index": 0, "sha256": digest}))
            ack = await asyncio.wait_for(replies.get(), TIMEOUT)
            assert ack == {"type": "ack", "index": 0, "ok": True}
            channel.send(json.dumps({"type": "done"}))
            assert (await asyncio.wait_for(replies.get(), TIMEOUT))["type"] == "done"

            code = verification_code(pc.localDescription.sdp, pc.remoteDescription.sdp)
            await websocket.send(json.dumps({"type": "leave", "name": "browser",
                                             "othername": "bob"}))
    finally:
        await pc.close()
    await asyncio.to_thread(check_received, listener, inbox, code)


def check_received(listener: CliProcess, inbox: Path, code: str) -> None:
    assert (inbox / "browser.txt").read_bytes() == CONTENT
    offer = wait_for_event(listener, "offer", peer="browser")
    assert offer["code"] == code
    assert offer["session"] == ""
