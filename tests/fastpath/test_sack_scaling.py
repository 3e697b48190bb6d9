"""SACK handling stays proportional to what each SACK reports, with 12,000 packets out.

The SCTP association is driven by hand: a stand-in for the DTLS transport collects the
packets it would send, SACK chunks are built by the test. Work is counted as accesses to
the sent queue, not timed.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from time import monotonic
from typing import Any

from aiortc.rtcsctptransport import (
    USERDATA_MAX_LENGTH,
    DataChunk,
    SackChunk,
    parse_packet,
)

from rtcxfer.fastpath.sctp import FastSctpTransport, tsn_distance

IN_FLIGHT = 12_000
MASK = 0xFFFFFFFF


class FakeDtls:
    """What RTCSctpTransport needs from its DTLS transport: a state and _send_data."""

    state = "connected"

    def __init__(self) -> None:
        self.packets: list[bytes] = []

    async def _send_data(self, data: bytes) -> None:
        self.packets.append(data)


class CountingDeque(deque):  # type: ignore[type-arg]
    reads = 0

    def __getitem__(self, index: Any) -> Any:
        self.reads += 1
        return super().__getitem__(index)


async def established_sender(chunks: int) -> tuple[FastSctpTransport, FakeDtls, list[DataChunk]]:
    dtls = FakeDtls()
    sctp = FastSctpTransport(dtls)  # type: ignore[arg-type]
    sctp._association_state = sctp.State.ESTABLISHED
    sctp._remote_port = 5000
    # Keep the window open whatever the SACKs say: this test is about bookkeeping.
    controller = sctp.controller
    controller._update_outputs = lambda: None  # type: ignore[method-assign]
    controller.cwnd = 1 << 40
    # The send times below are synthetic, so RTT samples are meaningless: fix the
    # reordering window at 1 ms (10 chunks' worth).
    sctp._reordering_window = lambda: 0.001  # type: ignore[method-assign]
    await sctp._send(1, 53, b"x" * (USERDATA_MAX_LENGTH * chunks))
    sent = list(sctp._sent_queue)
    assert len(sent) == chunks
    # Give the chunks distinct send times, 0.1 ms apart, as a paced sender would.
    for index, chunk in enumerate(sent):
        chunk._sent_time = 1000.0 + index * 1e-4
    sctp._sent_queue = CountingDeque(sctp._sent_queue)
    return sctp, dtls, sent


def sack(cumulative_tsn: int, gaps: list[tuple[int, int]]) -> SackChunk:
    chunk = SackChunk()
    chunk.cumulative_tsn = cumulative_tsn & MASK
    chunk.advertised_rwnd = 1 << 30
    chunk.gaps = gaps
    chunk.duplicates = []
    return chunk


def retransmitted_tsns(dtls: FakeDtls, since: int) -> list[int]:
    tsns = []
    for packet in dtls.packets[since:]:
        for chunk in parse_packet(packet)[3]:
            if isinstance(chunk, DataChunk):
                tsns.append(chunk.tsn)
    return tsns


async def test_one_loss_with_12000_in_flight_costs_o1_per_sack() -> None:
    sctp, dtls, sent = await established_sender(IN_FLIGHT)
    queue = sctp._sent_queue
    assert isinstance(queue, CountingDeque)
    first = sent[0].tsn
    before = len(dtls.packets)
    # The first chunk is lost; every other one is reported by a growing gap block.
    for highest in range(2, IN_FLIGHT + 1):
        await sctp._receive_sack_chunk(sack(first - 1, [(2, highest)]))
    assert retransmitted_tsns(dtls, before) == [first]
    # A handful of sent-queue reads per SACK (the queue's head, the newly acked chunk,
    # the one hole): rescanning the gap block per SACK would cost IN_FLIGHT**2 / 2 = 72
    # million.
    assert queue.reads < 8 * IN_FLIGHT
    await sctp._receive_sack_chunk(sack(first + IN_FLIGHT - 1, []))
    assert len(sctp._sent_queue) == 0
    assert sctp._flight_size == 0


async def test_random_loss_with_12000_in_flight_is_recovered_with_bounded_work() -> None:
    sctp, dtls, sent = await established_sender(IN_FLIGHT)
    queue = sctp._sent_queue
    assert isinstance(queue, CountingDeque)
    rng = random.Random(3)
    first = sent[0].tsn
    lost = {index for index in range(IN_FLIGHT) if rng.random() < 0.02}
    received: set[int] = set()
    sacks = 0
    before = len(dtls.packets)
    seen_packets = before
    cumulative = -1
    # The receiver gets the survivors in order, and each retransmission right after the
    # SACK that triggered it; it SACKs every second packet (at most 100 gap blocks).
    arrivals = deque(index for index in range(IN_FLIGHT) if index not in lost)
    while arrivals:
        received.add(arrivals.popleft())
        if len(received) % 2 and arrivals:
            continue
        while cumulative + 1 in received:
            cumulative += 1
        gaps = blocks_above(received, cumulative)
        await sctp._receive_sack_chunk(sack(first + cumulative, gaps[:100]))
        sacks += 1
        for tsn in retransmitted_tsns(dtls, seen_packets):
            arrivals.appendleft(tsn_distance(tsn, first))
        seen_packets = len(dtls.packets)
    while cumulative + 1 in received:
        cumulative += 1
    assert cumulative == IN_FLIGHT - 1
    await sctp._receive_sack_chunk(sack(first + cumulative, []))
    resent = retransmitted_tsns(dtls, before)
    # Every lost chunk was retransmitted exactly once (none is reported lost twice).
    assert sorted(tsn_distance(tsn, first) for tsn in resent) == sorted(lost)
    # Work: each SACK walks its new part and the holes below it (about 2 % of the
    # window), not the whole window.
    holes_per_sack = len(lost)
    assert queue.reads < sacks * (4 + holes_per_sack)
    assert queue.reads < IN_FLIGHT * 60
    assert len(sctp._sent_queue) == 0
    assert sctp._flight_size == 0


def blocks_above(received: set[int], cumulative: int) -> list[tuple[int, int]]:
    blocks: list[tuple[int, int]] = []
    for index in sorted(value for value in received if value > cumulative):
        offset = index - cumulative
        if blocks and blocks[-1][1] == offset - 1:
            blocks[-1] = (blocks[-1][0], offset)
        else:
            blocks.append((offset, offset))
    return blocks


async def test_receiver_gap_blocks_match_a_reference() -> None:
    """Out-of-order, duplicate and gap-filling TSNs: the SACK says what a set would."""
    sctp = FastSctpTransport(FakeDtls())  # type: ignore[arg-type]
    start = MASK - 500  # the TSNs wrap around 2**32 during the test
    sctp._last_received_tsn = start
    rng = random.Random(5)
    order = list(range(1, 3001))
    # Local shuffles: each TSN moves by up to 40 places; some arrive twice.
    for index in range(0, len(order), 40):
        window = order[index:index + 40]
        rng.shuffle(window)
        order[index:index + 40] = window
    order += rng.sample(range(1, 3001), 100)
    seen: set[int] = set()
    for offset in order:
        tsn = (start + offset) & MASK
        fresh = sctp._record_tsn(tsn)
        assert fresh == (offset not in seen)
        seen.add(offset)
        cumulative = 0
        while cumulative + 1 in seen:
            cumulative += 1
        assert sctp._last_received_tsn == (start + cumulative) & MASK
        expected = blocks_above(seen, cumulative)
        actual = [(tsn_distance(first, sctp._last_received_tsn),
                   tsn_distance(last, sctp._last_received_tsn))
                  for first, last in sctp._rx_blocks]
        assert actual == expected
    assert sctp._rx_blocks == []


async def test_the_retransmission_timer_hears_a_burst_of_sacks_highest_rtt() -> None:
    """SACKs read together after a stall: the controller gets the burst's lowest RTT
    (min_rtt), the RTO estimator its highest, so the stall is not hidden from T3."""
    sctp, _dtls, sent = await established_sender(4)
    first = sent[0].tsn
    now = monotonic()
    for index, chunk in enumerate(sent):
        chunk._sent_time = now - 0.15 + index * 0.03  # RTTs 0.15, 0.12, 0.09, 0.06
    for index in range(4):
        await sctp._receive_sack_chunk(sack(first + index, []))
    await asyncio.sleep(0)  # the burst's controller update (call_soon)
    assert sctp._srtt is not None and sctp._srtt >= 0.15
    assert sctp.controller.min_rtt < 0.07
