"""A malicious signaling server, for tests only: it puts itself between two peers.

It speaks PROTOCOL.md like an honest server (login, userlist, updata, relay).
While :attr:`MitmServer.attack` is set, an ``offer`` from A to B is not relayed:
the server answers A itself from one aiortc peer connection (its own DTLS
certificate) and offers B from another (another certificate of its own), then
pipes every data channel message between the two ``rtcxfer/1`` channels. The
file passes through it in the clear and is delivered intact; only the
certificates (and so the fingerprints and verification codes) give it away.

Everything else, code-mode messages included, is relayed unchanged: the attack
is the certificate substitution, not a denial of service.

Runs in a thread with its own event loop, so a test can drive CLI subprocesses
with blocking waits meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

import rtcxfer.web
from rtcxfer.peer import loopback
from rtcxfer.peer.identity import generate, use_certificate
from rtcxfer.server.http import StaticFiles, is_websocket_upgrade


@dataclass
class Interception:
    """One offer the server answered itself: A (offerer) <-> server <-> B."""

    offerer: str
    answerer: str
    session: str | None
    towards_offerer: RTCPeerConnection
    towards_answerer: RTCPeerConnection
    seen: list[bytes | str] = field(default_factory=list)  # what passed A -> B


class MitmServer:
    def __init__(self) -> None:
        self.attack = False
        self.users: dict[str, ServerConnection] = {}
        self.interceptions: dict[tuple[str, str, str | None], Interception] = {}
        self.history: list[Interception] = []  # every interception, ended ones too
        self.url = ""
        self.page_url = ""
        self._static = StaticFiles(Path(rtcxfer.web.__file__).parent / "static")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._pipes: set[asyncio.Task[None]] = set()

    # -- lifetime (test thread) ----------------------------------------------

    def start(self) -> str:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("MITM server did not start")
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)

    def data_seen(self) -> bytes:
        """Every binary frame the server piped from an offerer to an answerer."""
        return b"".join(m for i in list(self.history) for m in list(i.seen)
                        if isinstance(m, bytes))

    async def _main(self) -> None:
        loopback.install()
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0, max_size=2**20,
                         process_request=self._page) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}"
            self.page_url = f"http://127.0.0.1:{port}/"
            self._ready.set()
            await self._stop.wait()
        for interception in list(self.interceptions.values()):
            await interception.towards_offerer.close()
            await interception.towards_answerer.close()

    async def _page(self, connection: ServerConnection, request: Request) -> Response | None:
        """The real page, so that a browser can be put behind this server too."""
        if is_websocket_upgrade(request):
            return None
        return await self._static.respond(request)

    # -- signaling ------------------------------------------------------------

    async def _handle(self, websocket: ServerConnection) -> None:
        name: str | None = None
        try:
            async for frame in websocket:
                try:
                    message = json.loads(frame)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                kind = message.get("type")
                if kind == "login" and name is None:
                    wanted = message.get("name")
                    if not isinstance(wanted, str) or wanted in self.users:
                        await websocket.send(json.dumps(
                            {"type": "login", "success": False, "message": "name taken"}))
                        continue
                    name = wanted
                    for other in self.users.values():
                        await _send(other, {"type": "updata", "action": "login", "name": name})
                    self.users[name] = websocket
                    await websocket.send(json.dumps({"type": "login", "success": True}))
                    await websocket.send(json.dumps(
                        {"type": "userlist", "users": list(self.users)}))
                elif kind in ("offer", "answer", "candidate", "leave") and name is not None:
                    await self._relay(name, kind, message)
        except ConnectionClosed:
            pass
        finally:
            if name is not None and self.users.get(name) is websocket:
                del self.users[name]
                for other in self.users.values():
                    await _send(other, {"type": "updata", "action": "offline", "name": name})

    async def _relay(self, sender: str, kind: str, message: dict[str, Any]) -> None:
        target = message.get("othername")
        session = message.get("session")
        if not isinstance(target, str) or target not in self.users:
            await _send(self.users[sender],
                        {"type": "error", "message": f"user {target} is not online"})
            return
        if self.attack and await self._intercept(sender, target, session, kind, message):
            return
        relayed: dict[str, Any] = {"type": kind, "name": sender}
        if kind != "leave":
            relayed[kind] = message.get(kind)
        if session is not None:
            relayed["session"] = session
        await _send(self.users[target], relayed)

    async def _intercept(self, sender: str, target: str, session: Any, kind: str,
                         message: dict[str, Any]) -> bool:
        """Handle one negotiation message ourselves; False to relay it unchanged."""
        payload = message.get(kind)
        if kind == "offer":
            await self._start_interception(sender, target, session, payload)
            return True
        if kind == "answer":
            interception = self.interceptions.get((target, sender, session))
            if interception is None:
                return False
            await interception.towards_answerer.setRemoteDescription(
                RTCSessionDescription(payload["sdp"], "answer"))
            return True
        if kind == "candidate":
            # Our own connections' SDP carry every candidate; the peers' trickled
            # candidates are for us, not for each other. Anything else (code mode's
            # messages) passes.
            return payload is None or (isinstance(payload, dict) and "candidate" in payload)
        if kind == "leave":
            for key in [(sender, target, session), (target, sender, session)]:
                interception = self.interceptions.pop(key, None)
                if interception is not None:
                    await interception.towards_offerer.close()
                    await interception.towards_answerer.close()
            return False
        return False

    async def _start_interception(self, offerer: str, answerer: str, session: Any,
                                  offer: dict[str, Any]) -> None:
        configuration = RTCConfiguration(iceServers=[])
        towards_offerer = RTCPeerConnection(configuration)
        towards_answerer = RTCPeerConnection(configuration)
        # Lasting certificates of its own, as a careful attacker would use: the peers
        # pin them like any rtcxfer identity.
        use_certificate(towards_offerer, generate())
        use_certificate(towards_answerer, generate())
        interception = Interception(offerer, answerer, session, towards_offerer,
                                    towards_answerer)
        self.interceptions[(offerer, answerer, session)] = interception
        self.history.append(interception)
        to_answerer = towards_answerer.createDataChannel("rtcxfer/1", ordered=True)
        from_offerer: asyncio.Future[RTCDataChannel] = asyncio.get_running_loop().create_future()
        towards_offerer.on("datachannel", lambda channel: from_offerer.done()
                           or from_offerer.set_result(channel))
        answerer_open = asyncio.Event()
        to_answerer.on("open", answerer_open.set)

        await towards_offerer.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await towards_offerer.setLocalDescription(await towards_offerer.createAnswer())
        await towards_answerer.setLocalDescription(await towards_answerer.createOffer())
        relay_session = {"session": session} if session is not None else {}
        await _send(self.users[offerer], {
            "type": "answer", "name": answerer, **relay_session,
            "answer": {"type": "answer", "sdp": towards_offerer.localDescription.sdp}})
        await _send(self.users[answerer], {
            "type": "offer", "name": offerer, **relay_session,
            "offer": {"type": "offer", "sdp": towards_answerer.localDescription.sdp}})
        task = asyncio.create_task(
            self._pipe(interception, from_offerer, to_answerer, answerer_open))
        self._pipes.add(task)
        task.add_done_callback(self._pipes.discard)

    async def _pipe(self, interception: Interception, from_offerer: asyncio.Future[RTCDataChannel],
                    to_answerer: RTCDataChannel, answerer_open: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            channel = await asyncio.wait_for(from_offerer, 60)
            waiting: list[bytes | str] = []
            flushed: list[bool] = []

            def offerer_said(message: bytes | str) -> None:
                interception.seen.append(message)
                if flushed:
                    to_answerer.send(message)
                else:
                    waiting.append(message)

            channel.on("message", offerer_said)
            to_answerer.on("message", channel.send)
            await asyncio.wait_for(answerer_open.wait(), 60)
            for message in waiting:
                to_answerer.send(message)
            waiting.clear()
            flushed.append(True)
            closed = asyncio.Event()
            channel.on("close", closed.set)
            to_answerer.on("close", closed.set)
            await closed.wait()
            to_answerer.close()
            channel.close()


async def _send(websocket: ServerConnection, message: dict[str, Any]) -> None:
    with contextlib.suppress(ConnectionClosed):
        await websocket.send(json.dumps(message))
