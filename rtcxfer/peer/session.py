"""One WebRTC connection to one peer for one transfer: an aiortc ``RTCPeerConnection``.

A :class:`PeerSession` is either the offerer (``rtcxfer send``: it creates the
``rtcxfer/1`` data channel) or the answerer (``rtcxfer listen``: the channel
arrives through ``datachannel``). What happens when is decided by the pure
:class:`~rtcxfer.peer.negotiation.Negotiation` machine; this class feeds it
events and carries out its actions:

* relayed ``answer`` / ``offer`` / ``candidate`` / ``leave`` messages for its
  ``(peer, session)`` are applied strictly in arrival order by one task;
* aiortc gathers every local candidate inside ``setLocalDescription``; they go
  into the SDP and are also trickled as ``candidate`` messages followed by an
  end-of-candidates ``null``, for peers that expect trickle ICE;
* once connected, the path (direct or relayed, :class:`~rtcxfer.peer.negotiation.Path`)
  goes to ``on_path``;
* a connection that ICE cannot establish ends as :class:`~rtcxfer.errors.NoIcePath`
  naming the ICE servers tried; a ``leave`` from the peer ends it as
  :class:`~rtcxfer.errors.TransferFailed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceCandidate,
    RTCPeerConnection,
    RTCSessionDescription,
)

from rtcxfer.errors import NoIcePath, RtcxferError, ServerUnreachable, TransferFailed
from rtcxfer.peer import direct_first, loopback
from rtcxfer.peer.candidates import CandidateError, candidate_from_init, candidate_to_init
from rtcxfer.peer.config import IcePlan, local_networks
from rtcxfer.peer.identity import Identity, use_certificate
from rtcxfer.peer.negotiation import (
    Action,
    AddRemoteCandidate,
    ApplyRemoteDescription,
    CandidateFacts,
    Connected,
    End,
    EndReason,
    MakeDescription,
    Negotiation,
    Path,
    Role,
    classify_path,
)
from rtcxfer.peer.sdp import SdpError, data_channel_mline, max_message_size
from rtcxfer.peer.signaling import NO_SESSION, Signal, SignalingClient
from rtcxfer.peer.verification import verification_code
from rtcxfer.progress import Output

logger = logging.getLogger(__name__)

DATA_CHANNEL_LABEL = "rtcxfer/1"
CONNECT_TIMEOUT = 30.0
SESSION_ID_BYTES = 8  # 16 hex characters (docs/protocol.md)
MDNS_SUFFIX = ".local"

T = TypeVar("T")


__all__ = ["CONNECT_TIMEOUT", "DATA_CHANNEL_LABEL", "PeerSession", "Role", "new_session_id"]


def new_session_id() -> str:
    return secrets.token_hex(SESSION_ID_BYTES)


def no_ice_path(peer: str, plan: IcePlan | None = None, detail: str = "") -> NoIcePath:
    """The failure a person reads when ICE found no path: what was tried, what to do."""
    plan = plan or IcePlan()
    why = f" ({detail})" if detail else ""
    if plan.turn is None:
        return NoIcePath(
            f"could not reach {peer} directly{why}; ICE servers tried: {plan.tried()}; "
            f"try --stun/--turn: {plan.advice()}")
    return NoIcePath(
        f"could not reach {peer}{why}, not even through TURN; ICE servers tried: "
        f"{plan.tried()}; {plan.advice()}")


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
        ice_plan: IcePlan | None = None,
        identity: Identity | None = None,
    ) -> None:
        loopback.install()
        direct_first.install()
        loop = asyncio.get_running_loop()
        self.signaling = signaling
        self.peer = peer
        self.session_id = session_id
        self.role = role
        self.connect_timeout = connect_timeout
        self.ice_plan = ice_plan
        self.negotiation = Negotiation(role, loop.time(), connect_timeout)
        self.pc = RTCPeerConnection(configuration)
        if identity is not None:  # the user's long-lived certificate (docs/security.md)
            use_certificate(self.pc, identity)
        self.channel: RTCDataChannel | None = None
        self.on_datachannel: Callable[[RTCDataChannel], None] | None = None
        self.on_path: Callable[[Path], None] | None = None
        self.path: Path | None = None
        self._inbox: asyncio.Queue[Signal] = asyncio.Queue()
        self._background: set[asyncio.Task[None]] = set()
        self._connected = asyncio.Event()
        self._ended: asyncio.Future[RtcxferError] = loop.create_future()
        self._closed = False
        self._peer_left = False
        self._clock = asyncio.Event()  # the negotiation's deadline may have moved
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.pc.on("iceconnectionstatechange", self._on_ice_state)
        self.pc.on("datachannel", self._on_datachannel)
        signaling.route(peer, session_id, self._inbox.put_nowait)
        self._pump = asyncio.create_task(self._apply_signals(), name=f"session-{session_id}")
        self._watch = asyncio.create_task(self._watch_signaling())
        self._timer = asyncio.create_task(self._watch_deadline())

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
        await self.until(self._perform(self.negotiation.start()))
        await self.until(self._connected.wait())
        try:
            await self.until(asyncio.wait_for(opened.wait(), self.connect_timeout))
        except TimeoutError:
            raise TransferFailed(
                f"connected to {self.peer}, but the {DATA_CHANNEL_LABEL} channel did not open"
            ) from None
        return channel

    def deliver(self, signal: Signal) -> None:
        """Answerer: hand over the offer that created this session."""
        self._inbox.put_nowait(signal)

    async def wait_connected(self) -> None:
        """Return once ICE and DTLS are up; raise NoIcePath or the session's failure."""
        await self.until(self._connected.wait())

    async def _apply_signals(self) -> None:
        while True:
            signal = await self._inbox.get()
            try:
                await self._perform(self._event_for(signal))
            except RtcxferError as error:
                self.end(error)
            except Exception as error:  # aiortc raises bare ValueError/InvalidStateError
                logger.debug("negotiation with %s failed", self.label, exc_info=True)
                self._apply(self.negotiation.failed(str(error)))

    def _event_for(self, signal: Signal) -> list[Action]:
        machine, now = self.negotiation, asyncio.get_running_loop().time()
        if signal.type == "leave":
            self._peer_left = True
            return machine.leave_received()
        if signal.type in ("offer", "answer"):
            actions = machine.description_received(signal.type, signal.payload)
            if not actions:
                logger.debug("ignoring an unexpected %s from %s", signal.type, self.label)
            return actions
        if signal.type == "candidate":
            return machine.candidate_received(signal.payload, now)
        return []

    async def _perform(self, actions: list[Action]) -> None:
        """Carry out the machine's actions in order (each may lead to more)."""
        queue = list(actions)
        while queue:
            action = queue.pop(0)
            now = asyncio.get_running_loop().time
            if isinstance(action, MakeDescription):
                if action.kind == "offer":
                    await self.pc.setLocalDescription(await self.pc.createOffer())
                    await self.signaling.send_offer(self.peer, self.session_id,
                                                    _description(self.pc))
                else:
                    await self.pc.setLocalDescription(await self.pc.createAnswer())
                    await self.signaling.send_answer(self.peer, self.session_id,
                                                     _description(self.pc))
                await self._trickle_local_candidates()
                queue[:0] = self.negotiation.local_description_sent(now())
            elif isinstance(action, ApplyRemoteDescription):
                await self.pc.setRemoteDescription(
                    RTCSessionDescription(action.sdp, action.kind))
                queue[:0] = self.negotiation.remote_description_applied(now())
            elif isinstance(action, AddRemoteCandidate):
                await self._add_candidate(action.init)
            else:
                self._apply([action])
            self._clock.set()

    def _apply(self, actions: list[Action]) -> None:
        """The actions that need no waiting: Connected and End."""
        for action in actions:
            if isinstance(action, Connected):
                self._report_path()
                self._connected.set()
            elif isinstance(action, End):
                self._end_with(action)
            elif isinstance(action, AddRemoteCandidate | MakeDescription
                            | ApplyRemoteDescription):
                self._in_background(self._perform([action]))
        self._clock.set()

    def _end_with(self, end: End) -> None:
        peer, detail = self.peer, end.detail
        match end.reason:
            case EndReason.NO_ICE_PATH:
                detail = detail.replace("the peer", peer)
                error: RtcxferError = no_ice_path(peer, self.ice_plan, detail)
            case EndReason.CONNECTION_LOST:
                error = TransferFailed(f"lost the connection to {peer}")
            case EndReason.CONNECTION_CLOSED:
                error = TransferFailed(f"the connection to {peer} closed")
            case EndReason.PEER_LEFT:
                error = TransferFailed(f"{peer} left")
            case EndReason.MALFORMED:
                error = TransferFailed(f"{peer} sent {detail}")
            case EndReason.NEGOTIATION_FAILED:
                error = TransferFailed(f"negotiation with {peer} failed: {detail}")
            case EndReason.SERVER_LOST:
                error = ServerUnreachable(
                    f"lost the signaling server at {self.signaling.url} while connecting to "
                    f"{peer}")
            case _:
                error = TransferFailed(f"the connection to {peer} was closed")
        self._set_ended(error)

    async def _add_candidate(self, init: Any) -> None:
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
        self._apply(self.negotiation.signaling_lost())

    async def _watch_deadline(self) -> None:
        """Tell the machine the time whenever its deadline comes."""
        loop = asyncio.get_running_loop()
        while not self._ended.done():
            self._clock.clear()
            deadline = self.negotiation.deadline()
            if deadline is None:
                await self._clock.wait()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._clock.wait(), max(0.0, deadline - loop.time()))
            self._apply(self.negotiation.tick(loop.time()))

    # -- state --------------------------------------------------------------

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        logger.debug("connection with %s is %s", self.label, state)
        if state == "closed" and self._closed:
            return
        self._apply(self.negotiation.ice_state(state))

    def _on_ice_state(self) -> None:
        state = self.pc.iceConnectionState
        logger.debug("ICE with %s is %s", self.label, state)
        if state == "failed":  # connectionState follows; the machine ends only once
            self._apply(self.negotiation.ice_state(state))
        elif state in ("connected", "completed"):
            self.negotiation.checks_succeeded()
            self._clock.set()

    def _report_path(self) -> None:
        try:
            self.path = self._selected_path()
        except Exception:  # aioice internals: a path unknown never fails a transfer
            logger.debug("cannot tell the path to %s", self.label, exc_info=True)
            return
        if self.path is not None and self.on_path is not None:
            self.on_path(self.path)

    def _selected_path(self) -> Path | None:
        sctp = self.pc.sctp
        if sctp is None:
            return None
        connection = sctp.transport.transport._connection
        pair = connection._nominated.get(1)
        if pair is None:
            return None
        local, remote = pair.protocol.local_candidate, pair.remote_candidate
        plan = self.ice_plan
        return classify_path(
            _facts(local), _facts(remote),
            local_candidates=[_facts(c) for c in connection.local_candidates],
            local_networks=local_networks(),
            turn_url=plan.turn.url if plan is not None and plan.turn is not None else None,
        )

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
        self.negotiation.end(EndReason.EXTERNAL, str(error))
        self._set_ended(error)

    def _set_ended(self, error: RtcxferError) -> None:
        if not self._ended.done():
            self._ended.set_result(error)
        self._clock.set()

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
        left = self._peer_left
        self.negotiation.end(EndReason.CLOSED)
        self.signaling.unroute(self.peer, self.session_id, self._inbox.put_nowait)
        for task in (self._pump, self._watch, self._timer, *self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not left and self.signaling.is_open:
            with contextlib.suppress(ServerUnreachable):
                await self.signaling.send_leave(self.peer, self.session_id)
        await self.pc.close()
        self._set_ended(TransferFailed(f"the connection to {self.peer} was closed"))


def report_path(output: Output, session: PeerSession, path: Path) -> None:
    """Tell the person (or the --json reader) which path the bytes take."""
    output.report("path", f"path to {session.peer}: {path.describe()}",
                  peer=session.peer, session=session.session_id, **path.as_event())


def _facts(candidate: Any) -> CandidateFacts:
    """An aioice ``Candidate`` as the path needs it."""
    return CandidateFacts(candidate.type, candidate.host, candidate.port,
                          candidate.related_address)


async def _cancel(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait for its cleanup; its outcome no longer matters."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _description(pc: RTCPeerConnection) -> dict[str, str]:
    description = pc.localDescription
    return {"type": description.type, "sdp": description.sdp}
