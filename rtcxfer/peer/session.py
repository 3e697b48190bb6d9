"""One WebRTC connection to one peer for one transfer: an aiortc ``RTCPeerConnection``.

A :class:`PeerSession` is either the offerer (``rtcxfer send``: it creates the
``rtcxfer/1`` data channel) or the answerer (``rtcxfer listen``: the channel
arrives through ``datachannel``). It owns the negotiation:

* relayed ``answer`` / ``offer`` / ``candidate`` / ``leave`` messages for its
  ``(peer, session)`` are applied strictly in arrival order by one task;
* remote candidates that arrive before the remote description are queued and
  applied right after it (aiortc would drop them);
* aiortc gathers every local candidate inside ``setLocalDescription``; they go
  into the SDP and are also trickled as ``candidate`` messages followed by an
  end-of-candidates ``null``, for peers that expect trickle ICE;
* a connection that does not come up within ``connect_timeout`` or whose state
  becomes ``failed`` ends as :class:`~rtcxfer.errors.NoIcePath`; a ``leave``
  from the peer ends it as :class:`~rtcxfer.errors.TransferFailed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from enum import Enum
from typing import Any, TypeVar

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceCandidate,
    RTCPeerConnection,
    RTCSessionDescription,
)

from rtcxfer.errors import NoIcePath, RtcxferError, ServerUnreachable, TransferFailed
from rtcxfer.peer import loopback
from rtcxfer.peer.candidates import CandidateError, candidate_from_init, candidate_to_init
from rtcxfer.peer.identity import Identity, use_certificate
from rtcxfer.peer.sdp import (
    SdpError,
    data_channel_mline,
    max_message_size,
    sha256_fingerprint,
)
from rtcxfer.peer.signaling import NO_SESSION, Signal, SignalingClient
from rtcxfer.peer.verification import verification_code

logger = logging.getLogger(__name__)

DATA_CHANNEL_LABEL = "rtcxfer/1"
CONNECT_TIMEOUT = 30.0
SESSION_ID_BYTES = 8  # 16 hex characters (docs/protocol.md)
MDNS_SUFFIX = ".local"

T = TypeVar("T")


class Role(Enum):
    OFFERER = "offerer"
    ANSWERER = "answerer"


def new_session_id() -> str:
    return secrets.token_hex(SESSION_ID_BYTES)


def no_ice_path(peer: str) -> NoIcePath:
    return NoIcePath(f"could not reach {peer} directly; try --stun/--turn")


class PeerSession:
    """The negotiation and lifetime of one ``RTCPeerConnection``."""

    def __init__(
        self,
        signaling: SignalingClient,
        peer: str,
        session_id: str,
        configuration: RTCConfiguration,
        *,
        role: Role,
        connect_timeout: float = CONNECT_TIMEOUT,
        identity: Identity | None = None,
    ) -> None:
        loopback.install()
        self.signaling = signaling
        self.peer = peer
        self.session_id = session_id
        self.role = role
        self.connect_timeout = connect_timeout
        self.pc = RTCPeerConnection(configuration)
        if identity is not None:  # the user's long-lived certificate (docs/security.md)
            use_certificate(self.pc, identity)
        self.channel: RTCDataChannel | None = None
        self.on_datachannel: Callable[[RTCDataChannel], None] | None = None
        self._inbox: asyncio.Queue[Signal] = asyncio.Queue()
        self._early_candidates: list[Any] = []
        self._background: set[asyncio.Task[None]] = set()
        self._described = asyncio.Event()
        self._connected = asyncio.Event()
        self._ended: asyncio.Future[RtcxferError] = asyncio.get_running_loop().create_future()
        self._left = False
        self._closed = False
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.pc.on("datachannel", self._on_datachannel)
        signaling.route(peer, session_id, self._inbox.put_nowait)
        self._pump = asyncio.create_task(self._apply_signals(), name=f"session-{session_id}")
        self._watch = asyncio.create_task(self._watch_signaling())

    @property
    def label(self) -> str:
        return self.peer if self.session_id == NO_SESSION else f"{self.peer}/{self.session_id}"

    # -- negotiation --------------------------------------------------------

    async def open_channel(self) -> RTCDataChannel:
        """Offerer: create the channel, offer, and return the channel once it is open."""
        channel = self.pc.createDataChannel(DATA_CHANNEL_LABEL, ordered=True)
        self.channel = channel
        opened = asyncio.Event()
        channel.on("open", opened.set)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.signaling.send_offer(self.peer, self.session_id, _description(self.pc))
        await self._trickle_local_candidates()
        await self.until(self._within_connect_timeout(opened.wait()))
        return channel

    def deliver(self, signal: Signal) -> None:
        """Answerer: hand over the offer that created this session."""
        self._inbox.put_nowait(signal)

    async def wait_connected(self) -> None:
        """Return once ICE and DTLS are up; raise NoIcePath or the session's failure."""
        await self.until(self._within_connect_timeout(self._connected.wait()))

    async def _within_connect_timeout(self, waiter: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(waiter, self.connect_timeout)
        except TimeoutError:
            raise no_ice_path(self.peer) from None

    async def _apply_signals(self) -> None:
        while True:
            signal = await self._inbox.get()
            try:
                await self._apply(signal)
            except RtcxferError as error:
                self.end(error)
            except Exception as error:  # aiortc raises bare ValueError/InvalidStateError
                logger.debug("negotiation with %s failed", self.label, exc_info=True)
                self.end(TransferFailed(f"negotiation with {self.peer} failed: {error}"))

    async def _apply(self, signal: Signal) -> None:
        if signal.type == "leave":
            self._left = True
            self.end(TransferFailed(f"{self.peer} left"))
        elif signal.type == "offer" and self.role is Role.ANSWERER:
            if not await self._set_remote(signal.payload, "offer"):
                return
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await self.signaling.send_answer(self.peer, self.session_id, _description(self.pc))
            await self._trickle_local_candidates()
        elif signal.type == "answer" and self.role is Role.OFFERER:
            await self._set_remote(signal.payload, "answer")
        elif signal.type == "candidate":
            await self._add_candidate(signal.payload)
        else:
            logger.debug("ignoring an unexpected %s from %s", signal.type, self.label)

    async def _set_remote(self, payload: Any, expected: str) -> bool:
        """Apply the peer's description; False if one was applied already."""
        if self._described.is_set():
            logger.debug("ignoring a second %s from %s", expected, self.label)
            return False
        if (
            not isinstance(payload, dict)
            or payload.get("type") != expected
            or not isinstance(payload.get("sdp"), str)
        ):
            raise TransferFailed(f"{self.peer} sent a malformed {expected}")
        try:
            # aiortc reads an SDP without these as an empty session and would answer it.
            data_channel_mline(payload["sdp"])
            sha256_fingerprint(payload["sdp"])
        except SdpError as error:
            raise TransferFailed(f"{self.peer} sent an unusable {expected}: {error}") from None
        await self.pc.setRemoteDescription(RTCSessionDescription(payload["sdp"], expected))
        self._described.set()
        early, self._early_candidates = self._early_candidates, []
        for init in early:
            await self._add_candidate(init)
        return True

    async def _add_candidate(self, init: Any) -> None:
        if not self._described.is_set():
            self._early_candidates.append(init)
            return
        try:
            candidate = candidate_from_init(init)
        except CandidateError as error:
            logger.info("ignoring a candidate from %s: %s", self.label, error)
            return
        if candidate is not None and candidate.ip.endswith(MDNS_SUFFIX):
            # Browsers hide host addresses behind mDNS names, which aioice resolves
            # inline with a 1 s timeout per name. Awaiting that would hold up every
            # later signal (our answer included) for nothing where multicast does not
            # reach: resolve in the background instead; peer-reflexive candidates learnt
            # from the browser's own checks connect meanwhile.
            self._in_background(self._add_mdns_candidate(candidate))
        elif candidate is None and self._background:
            # End-of-candidates must not overtake a name still resolving: aioice would
            # give up on ICE at once with no remote candidate, before the browser's
            # checks arrive.
            self._in_background(self._end_candidates_after(set(self._background)))
        else:
            await self.pc.addIceCandidate(candidate)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _end_candidates_after(self, pending: set[asyncio.Task[None]]) -> None:
        await asyncio.wait(pending)
        await self.pc.addIceCandidate(None)

    async def _add_mdns_candidate(self, candidate: RTCIceCandidate) -> None:
        try:
            await self.pc.addIceCandidate(candidate)
        except Exception as error:  # aiortc/aioice raise bare ValueError and friends
            logger.debug("mDNS candidate %s from %s not used: %s", candidate.ip, self.label, error)

    async def _trickle_local_candidates(self) -> None:
        description = self.pc.localDescription
        sctp = self.pc.sctp
        if description is None or sctp is None:
            return
        try:
            mline_index, mid = data_channel_mline(description.sdp)
        except SdpError:
            return
        for candidate in sctp.transport.transport.iceGatherer.getLocalCandidates():
            init = candidate_to_init(candidate, sdp_mid=mid, sdp_mline_index=mline_index)
            await self.signaling.send_candidate(self.peer, self.session_id, init)
        await self.signaling.send_candidate(self.peer, self.session_id, None)

    async def _watch_signaling(self) -> None:
        # Negotiation needs the server until both descriptions are exchanged (they
        # carry every candidate); from then on ICE and DTLS finish without it.
        await self.signaling.wait_closed()
        if not self._connected.is_set() and not self._described.is_set():
            self.end(ServerUnreachable(
                f"lost the signaling server at {self.signaling.url} while connecting to "
                f"{self.peer}"))

    # -- state --------------------------------------------------------------

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        logger.debug("connection with %s is %s", self.label, state)
        if state == "connected":
            self._connected.set()
        elif state == "failed":
            self.end(
                no_ice_path(self.peer)
                if not self._connected.is_set()
                else TransferFailed(f"lost the connection to {self.peer}")
            )
        elif state == "closed" and not self._closed:
            self.end(TransferFailed(f"the connection to {self.peer} closed"))

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if self.channel is not None or channel.label != DATA_CHANNEL_LABEL:
            logger.info("ignoring data channel %r from %s", channel.label, self.label)
            channel.close()
            return
        self.channel = channel
        if self.on_datachannel is not None:
            self.on_datachannel(channel)

    def end(self, error: RtcxferError) -> None:
        """End the session with ``error`` (raised by :meth:`until`); the first call wins."""
        if not self._ended.done():
            self._ended.set_result(error)

    async def until(self, work: Awaitable[T], *, grace: float = 0.0) -> T:
        """Await ``work`` unless the session ends first; then raise why it ended.

        ``grace``: how long ``work`` may still take once the session has ended. A peer
        hangs up as soon as it has our last message, and its ``leave`` can overtake the
        end of our own bookkeeping: work that finishes within the grace still counts.
        """
        task = asyncio.ensure_future(work)
        ended = asyncio.ensure_future(asyncio.shield(self._ended))
        try:
            await asyncio.wait({task, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done() and grace > 0:
                await asyncio.wait({task}, timeout=grace)
        except asyncio.CancelledError:
            await _cancel(task)
            raise
        finally:
            ended.cancel()
        if task.done():
            return task.result()
        await _cancel(task)
        raise self._ended.result()

    @property
    def verification_code(self) -> str:
        local, remote = self.pc.localDescription, self.pc.remoteDescription
        if local is None or remote is None:
            raise RuntimeError("the verification code needs both descriptions")
        if self.role is Role.OFFERER:
            return verification_code(local.sdp, remote.sdp)
        return verification_code(remote.sdp, local.sdp)

    @property
    def remote_max_message_size(self) -> int:
        remote = self.pc.remoteDescription
        if remote is None:
            raise RuntimeError("no remote description yet")
        return max_message_size(remote.sdp)

    async def close(self) -> None:
        """Close the connection and tell the peer, unless it left first."""
        if self._closed:
            return
        self._closed = True
        self.signaling.unroute(self.peer, self.session_id, self._inbox.put_nowait)
        for task in (self._pump, self._watch, *self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self._left and self.signaling.is_open:
            with contextlib.suppress(ServerUnreachable):
                await self.signaling.send_leave(self.peer, self.session_id)
        await self.pc.close()
        self.end(TransferFailed(f"the connection to {self.peer} was closed"))


async def _cancel(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait for its cleanup; its outcome no longer matters."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _description(pc: RTCPeerConnection) -> dict[str, str]:
    description = pc.localDescription
    return {"type": description.type, "sdp": description.sdp}
