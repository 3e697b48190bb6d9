"""Fast path against itself and against stock aiortc, in both directions."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiortc.rtcicetransport
import aiortc.rtcpeerconnection
import pytest
from aiortc import RTCPeerConnection

from rtcxfer import fastpath
from rtcxfer.fastpath.dtls import FastDtlsTransport
from rtcxfer.fastpath.ice import ConsentConnection
from rtcxfer.fastpath.sctp import FastSctpTransport

from .pairs import Pair, collect, connect_pair, digest, random_messages, send_all

PAIRINGS = [
    pytest.param(True, True, id="fast-to-fast"),
    pytest.param(True, False, id="fast-to-stock"),
    pytest.param(False, True, id="stock-to-fast"),
]
TRANSFER_TIMEOUT = 120.0


def test_enable_disable_swap_the_classes_aiortc_uses() -> None:
    fastpath.enable()
    fastpath.enable()
    assert fastpath.is_enabled()
    assert aiortc.rtcpeerconnection.RTCSctpTransport is FastSctpTransport
    assert aiortc.rtcpeerconnection.RTCDtlsTransport is FastDtlsTransport
    assert aiortc.rtcicetransport.Connection is ConsentConnection
    fastpath.disable()
    fastpath.disable()
    assert not fastpath.is_enabled()
    assert aiortc.rtcpeerconnection.RTCSctpTransport is not FastSctpTransport
    assert aiortc.rtcicetransport.Connection is not ConsentConnection


async def exchange(pair: Pair, seed: int, count: int) -> None:
    """Messages both ways at once; each side checks order, boundaries and content."""
    limit = min(pair.offerer.sctp._remote_max_message_size or 262144,
                pair.answerer.sctp._remote_max_message_size or 262144)
    forward = random_messages(seed, count, limit)
    backward = random_messages(seed + 1, count // 2, limit)
    got_forward, forward_done = collect(pair.answerer_channel, len(forward))
    got_backward, backward_done = collect(pair.offerer_channel, len(backward))
    await asyncio.wait_for(asyncio.gather(
        send_all(pair.offerer_channel, forward),
        send_all(pair.answerer_channel, backward),
        forward_done,
        backward_done,
    ), TRANSFER_TIMEOUT)
    assert digest(got_forward) == digest(forward)
    assert digest(got_backward) == digest(backward)


@pytest.mark.parametrize(("offerer_fast", "answerer_fast"), PAIRINGS)
async def test_messages_arrive_intact_in_order(
    pairs: list[Pair], offerer_fast: bool, answerer_fast: bool
) -> None:
    pair = await connect_pair(offerer_fast, answerer_fast)
    pairs.append(pair)
    await exchange(pair, seed=7, count=300)
    # Text frames and empty messages use their own PPIDs (RFC 8831 section 6.6).
    texts, texts_done = collect_any(pair.answerer_channel, 3)
    for message in ["hello", "", b""]:
        pair.offerer_channel.send(message)
    await asyncio.wait_for(texts_done, TRANSFER_TIMEOUT)
    assert texts == ["hello", "", b""]


def collect_any(channel: Any, count: int) -> tuple[list[Any], asyncio.Future[None]]:
    received: list[Any] = []
    complete: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_message(message: Any) -> None:
        received.append(message)
        if len(received) == count:
            complete.set_result(None)

    channel.remove_all_listeners("message")
    channel.on("message", on_message)
    return received, complete


class LossyLink:
    """Drops and reorders a share of one peer's outgoing datagrams (test-only shim).

    It wraps the ``sendto`` of the UDP transport under the nominated ICE pair, so it sees
    exactly the DTLS records (and STUN) that would go on the wire.
    """

    def __init__(self, pc: RTCPeerConnection, seed: int, drop: float, reorder: float) -> None:
        pair = pc.sctp.transport.transport._connection._nominated[1]
        self._transport = pair.protocol.transport
        self._sendto = self._transport.sendto
        self._rng = random.Random(seed)
        self._drop = drop
        self._reorder = reorder
        self._held: tuple[bytes, Any] | None = None
        self.dropped = 0
        self.reordered = 0
        self._transport.sendto = self.sendto

    def sendto(self, data: bytes, addr: Any = None) -> None:
        roll = self._rng.random()
        if roll < self._drop:
            self.dropped += 1
            return
        if roll < self._drop + self._reorder and self._held is None:
            # Hold this datagram and send it after the next one.
            self._held = (data, addr)
            self.reordered += 1
            return
        self._sendto(data, addr)
        if self._held is not None:
            held, self._held = self._held, None
            self._sendto(*held)

    def remove(self) -> None:
        del self._transport.sendto


@pytest.mark.parametrize(("offerer_fast", "answerer_fast"), PAIRINGS)
async def test_loss_and_reordering_are_repaired(
    pairs: list[Pair], offerer_fast: bool, answerer_fast: bool
) -> None:
    pair = await connect_pair(offerer_fast, answerer_fast)
    pairs.append(pair)
    links = [LossyLink(pair.offerer, seed=1, drop=0.03, reorder=0.03),
             LossyLink(pair.answerer, seed=2, drop=0.03, reorder=0.03)]
    await exchange(pair, seed=11, count=120)
    assert all(link.dropped and link.reordered for link in links)
    for link in links:
        link.remove()


class DelayedLink:
    """Delays every datagram one peer sends by ``delay`` seconds (test-only shim).

    Stands in for ``tc netem`` where the kernel has no netem (the namespace test in
    test_slow_paths.py skips there); both peers delayed by 100 ms make a 200 ms RTT.
    """

    def __init__(self, pc: RTCPeerConnection, delay: float) -> None:
        pair = pc.sctp.transport.transport._connection._nominated[1]
        self._transport = pair.protocol.transport
        self._sendto = self._transport.sendto
        self._loop = asyncio.get_running_loop()
        self._delay = delay
        self._transport.sendto = self.sendto

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self._loop.call_later(self._delay, self._send_later, data, addr)

    def _send_later(self, data: bytes, addr: Any) -> None:
        if not self._transport.is_closing():
            self._sendto(data, addr)


@pytest.mark.slow
@pytest.mark.parametrize(("offerer_fast", "answerer_fast"), PAIRINGS)
async def test_transfer_over_a_200ms_round_trip(
    pairs: list[Pair], offerer_fast: bool, answerer_fast: bool
) -> None:
    pair = await connect_pair(offerer_fast, answerer_fast)
    pairs.append(pair)
    DelayedLink(pair.offerer, 0.1)
    DelayedLink(pair.answerer, 0.1)
    await exchange(pair, seed=13, count=60)


@pytest.mark.parametrize(("offerer_fast", "answerer_fast"), PAIRINGS)
async def test_partially_reliable_unordered_channel_over_loss(
    pairs: list[Pair], offerer_fast: bool, answerer_fast: bool
) -> None:
    """maxRetransmits=0 and unordered (RFC 3758 FORWARD TSN), then the reliable channel."""
    pair = await connect_pair(offerer_fast, answerer_fast)
    pairs.append(pair)
    lossy = pair.offerer.createDataChannel("lossy", ordered=False, maxRetransmits=0)
    incoming: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    pair.answerer.remove_all_listeners("datachannel")
    pair.answerer.on("datachannel", incoming.set_result)
    remote = await asyncio.wait_for(incoming, 20)
    if lossy.readyState != "open":
        opened = asyncio.Event()
        lossy.on("open", opened.set)
        await asyncio.wait_for(opened.wait(), 20)
    link = LossyLink(pair.offerer, seed=3, drop=0.05, reorder=0.05)
    messages = random_messages(17, 200, 20000)
    received: list[bytes] = []
    remote.on("message", received.append)
    await send_all(lossy, messages)
    await asyncio.sleep(3.0)
    link.remove()
    # Whatever arrived is whole and was sent, each message at most once.
    assert received
    assert len(set(received)) == len(received)
    assert set(received) <= set(messages)
    # Abandoned chunks were skipped with FORWARD TSN: the reliable channel still flows.
    await exchange(pair, seed=19, count=40)


@pytest.mark.parametrize(("offerer_fast", "answerer_fast"), PAIRINGS)
async def test_closing_one_side_closes_the_other(
    pairs: list[Pair], offerer_fast: bool, answerer_fast: bool
) -> None:
    pair = await connect_pair(offerer_fast, answerer_fast)
    pairs.append(pair)
    closed = asyncio.Event()
    pair.answerer_channel.on("close", closed.set)
    await pair.offerer.close()
    # SCTP ABORT and DTLS close_notify reach the other side, which closes the channel.
    await asyncio.wait_for(closed.wait(), 20)
    assert pair.answerer_channel.readyState == "closed"
