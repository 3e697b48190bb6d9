"""PeerSession negotiation between two real aiortc peers through the real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from aiortc import RTCDataChannel
from support import running_server

from rtcxfer.errors import NoIcePath, ServerUnreachable, TransferFailed
from rtcxfer.peer.candidates import candidate_from_init
from rtcxfer.peer.config import IceOptions, rtc_configuration
from rtcxfer.peer.session import PeerSession, Role, new_session_id
from rtcxfer.peer.signaling import Signal, SignalingClient

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server() as (url, _process):
        yield url


@pytest.fixture
async def pair(server: str) -> AsyncIterator[tuple[SignalingClient, SignalingClient]]:
    offerer = SignalingClient(server, f"offerer-{new_session_id()}")
    answerer = SignalingClient(server, f"answerer-{new_session_id()}")
    await offerer.connect()
    await answerer.connect()
    yield offerer, answerer
    await offerer.close()
    await answerer.close()


def without_candidates(sdp: str) -> str:
    return "".join(line + "\r\n" for line in sdp.splitlines()
                   if not line.startswith(("a=candidate:", "a=end-of-candidates")))


async def test_offer_answer_and_matching_codes(
        pair: tuple[SignalingClient, SignalingClient]) -> None:
    offerer, answerer = pair
    configuration = rtc_configuration(IceOptions())
    channels: asyncio.Queue[RTCDataChannel] = asyncio.Queue()
    answering: list[PeerSession] = []

    def on_offer(signal: Signal) -> None:
        session = PeerSession(answerer, signal.peer, signal.session, configuration,
                              role=Role.ANSWERER)
        session.on_datachannel = channels.put_nowait
        session.deliver(signal)
        answering.append(session)

    answerer.on_new_offer = on_offer
    sending = PeerSession(offerer, answerer.name, new_session_id(), configuration,
                          role=Role.OFFERER)
    try:
        channel = await sending.open_channel()
        received = await asyncio.wait_for(channels.get(), TIMEOUT)
        assert (channel.label, received.label) == ("rtcxfer/1", "rtcxfer/1")
        (session,) = answering
        await session.wait_connected()
        assert session.session_id == sending.session_id
        assert sending.verification_code == session.verification_code
        assert sending.remote_max_message_size > 0
    finally:
        await sending.close()
        for session in answering:
            await session.close()


async def test_candidates_before_the_offer_are_queued(
        pair: tuple[SignalingClient, SignalingClient]) -> None:
    """A trickle-only offer whose candidates reach the answerer before the offer itself."""
    offerer, answerer = pair
    configuration = rtc_configuration(IceOptions())
    sending = PeerSession(offerer, answerer.name, new_session_id(), configuration,
                          role=Role.OFFERER)
    captured: asyncio.Queue[Signal] = asyncio.Queue()

    def capture_offer_and_what_follows(offer: Signal) -> None:
        captured.put_nowait(offer)
        answerer.route(offer.peer, offer.session, captured.put_nowait)

    answerer.on_new_offer = capture_offer_and_what_follows
    opening = asyncio.create_task(sending.open_channel())
    try:
        offer = await asyncio.wait_for(captured.get(), TIMEOUT)
        candidates = []
        while not candidates or candidates[-1].payload is not None:
            candidates.append(await asyncio.wait_for(captured.get(), TIMEOUT))
        answerer.unroute(offerer.name, sending.session_id, captured.put_nowait)

        answering = PeerSession(answerer, offerer.name, sending.session_id, configuration,
                                role=Role.ANSWERER)
        for candidate in candidates:
            answering.deliver(candidate)
        answering.deliver(Signal("offer", offer.peer, offer.session,
                                 {"type": "offer", "sdp": without_candidates(
                                     offer.payload["sdp"])}))
        await asyncio.wait_for(opening, TIMEOUT)
        await answering.wait_connected()
        remote = answering.pc.sctp.transport.transport.getRemoteCandidates()
        trickled = [candidate_from_init(c.payload) for c in candidates[:-1]]
        assert {(c.ip, c.port) for c in trickled} <= {(c.ip, c.port) for c in remote}
        await answering.close()
    finally:
        opening.cancel()
        await sending.close()


async def test_leave_ends_the_session(pair: tuple[SignalingClient, SignalingClient]) -> None:
    offerer, answerer = pair
    answerer.on_new_offer = lambda signal: asyncio.ensure_future(
        answerer.send_leave(signal.peer, signal.session))
    sending = PeerSession(offerer, answerer.name, new_session_id(),
                          rtc_configuration(IceOptions()), role=Role.OFFERER)
    try:
        with pytest.raises(TransferFailed, match=f"{answerer.name} left"):
            await sending.open_channel()
    finally:
        await sending.close()


async def test_silent_peer_is_no_ice_path(pair: tuple[SignalingClient, SignalingClient]) -> None:
    offerer, answerer = pair
    sending = PeerSession(offerer, answerer.name, new_session_id(),
                          rtc_configuration(IceOptions()), role=Role.OFFERER,
                          connect_timeout=1.0)
    try:
        with pytest.raises(NoIcePath, match="try --stun/--turn"):
            await sending.open_channel()
    finally:
        await sending.close()


async def test_losing_the_server_while_connecting(
        pair: tuple[SignalingClient, SignalingClient]) -> None:
    offerer, answerer = pair
    answerer.on_new_offer = lambda signal: asyncio.ensure_future(offerer.close())
    sending = PeerSession(offerer, answerer.name, new_session_id(),
                          rtc_configuration(IceOptions()), role=Role.OFFERER)
    try:
        with pytest.raises(ServerUnreachable, match="lost the signaling server"):
            await sending.open_channel()
    finally:
        await sending.close()


async def test_work_finishing_just_after_the_peer_left_still_counts(
        pair: tuple[SignalingClient, SignalingClient]) -> None:
    """The sender leaves as soon as it has our `done`; our last steps may still run."""
    offerer, answerer = pair
    session = PeerSession(answerer, offerer.name, new_session_id(),
                          rtc_configuration(IceOptions()), role=Role.ANSWERER)
    try:
        async def finishing() -> str:
            await asyncio.sleep(0.2)
            return "report"

        session.end(TransferFailed(f"{offerer.name} left"))
        assert await session.until(finishing(), grace=TIMEOUT) == "report"
        with pytest.raises(TransferFailed, match="left"):
            await session.until(finishing())
    finally:
        await session.close()
