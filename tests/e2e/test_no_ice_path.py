"""`rtcxfer send` to a peer it cannot reach: exit 7 with a hint, not a hang."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from support import CliProcess, free_port, json_events
from websockets.asyncio.client import connect

Start = Callable[..., CliProcess]


def unreachable_answer(sdp: str, port: int) -> str:
    """The answer with its candidates replaced by one on a port nobody listens on."""
    lines = [line for line in sdp.splitlines() if not line.startswith("a=candidate:")]
    bogus = f"a=candidate:1 1 udp 2130706431 127.0.0.1 {port} typ host"
    index = next(i for i, line in enumerate(lines) if line.startswith("a=end-of-candidates"))
    lines.insert(index, bogus)
    return re.sub(r"c=IN IP4 \S+", "c=IN IP4 127.0.0.1", "\r\n".join(lines) + "\r\n")


async def test_unreachable_peer_ends_with_no_ice_path(tmp_path: Path, server: str,
                                                      send: Start) -> None:
    (tmp_path / "f").write_text("x")
    async with connect(server) as websocket:
        await websocket.send(json.dumps({"type": "login", "name": "ghost"}))
        sender = send("alice", "ghost", tmp_path / "f", "--connect-timeout", "5")
        while (message := json.loads(await asyncio.wait_for(websocket.recv(), 60)))[
                "type"] != "offer":
            pass
        # Answer, then drop the connection at once: no check ever reaches alice.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        await pc.setRemoteDescription(RTCSessionDescription(**message["offer"]))
        await pc.setLocalDescription(await pc.createAnswer())
        await pc.close()
        answer = {"type": "answer", "sdp": unreachable_answer(pc.localDescription.sdp,
                                                               free_port())}
        await websocket.send(json.dumps({"type": "answer", "name": "ghost",
                                         "othername": "alice", "answer": answer,
                                         "session": message["session"]}))
        code = await asyncio.to_thread(sender.wait, 120)
    assert code == 7, sender.stderr
    assert "could not reach ghost directly" in sender.stderr
    assert "ICE servers tried: no STUN or TURN server; try --stun/--turn" in sender.stderr
    (error,) = json_events(sender, "error")
    assert error["exit_code"] == 7
