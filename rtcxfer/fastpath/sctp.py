"""A tuned aiortc SCTP association: the same wire protocol, less work per packet.

``FastSctpTransport`` subclasses aiortc's ``RTCSctpTransport`` and overrides only the
methods that run once per packet or per SACK. Every override keeps RFC 9260 (SCTP, which
obsoletes RFC 4960) behaviour on the wire; what changes is how often a SACK is sent
(still at least every second packet, section 6.2), how much bookkeeping each packet
and each SACK costs, the windows (sized to the path instead of fixed), and the
congestion control: a sender-side model-based controller (rtcxfer/fastpath/bbr.py)
instead of Reno, which the receiver cannot tell apart on the wire.
docs/fast-path.md lists every override and the section it follows.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import time
from collections import deque

from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcsctptransport import (
    SCTP_DATA_LAST_FRAG,
    USERDATA_MAX_LENGTH,
    DataChunk,
    ForwardTsnChunk,
    InboundStream,
    RTCSctpTransport,
    SackChunk,
)
from aiortc.utils import uint32_gt

from rtcxfer.fastpath.bbr import BbrController
from rtcxfer.fastpath.inline import run_inline

TSN_MASK = 0xFFFFFFFF
TSN_HALF = 0x80000000

# RFC 9260 section 6.2: acknowledge at least every second packet carrying DATA.
PACKETS_PER_SACK = 2

# Sender window ceiling: the controller sizes the window to the path's bandwidth-delay
# product (twice it while probing); this only bounds it, and with it the sender's memory
# (the sent queue holds at most this much user data).
MAX_CWND = 32 * 1024 * 1024

# Receive window we advertise (a_rwnd, RFC 9260 section 6.2.1). aiortc advertises 1 MiB,
# which caps any sender that honours it at 1 MiB per round trip (5 MB/s at 200 ms). Only
# data actually held for reassembly (behind a gap, or a message not yet complete) uses
# it, so memory grows with what the sender really has outstanding, never past this.
RECEIVE_WINDOW = 32 * 1024 * 1024

# Gap Ack Blocks and duplicate TSNs per SACK: keeps a SACK inside one 1200-byte packet
# and its cost bounded; blocks beyond these are reported once earlier gaps are filled.
MAX_GAP_BLOCKS = 100
MAX_DUPLICATES = 16

# Reordering tolerated before a missing chunk counts as lost: a quarter of the minimum
# round trip (RFC 8985 section 6.2), at least this.
MIN_REORDERING_WINDOW = 0.001

# Lower bound of the retransmission timeout. RFC 9260 recommends 1 s (aiortc uses it);
# the bound is the sender's choice, and with SACKs delayed by at most one event-loop
# iteration 200 ms (TCP's usual minimum) is safe. A tail loss (nothing sent after it
# to reveal it) waits one RTO: at 1 s that was a fifth of a 32 MiB transfer at 2 % loss.
RTO_MIN = 0.2
RTO_MAX = 60.0
RTO_ALPHA = 1 / 8
RTO_BETA = 1 / 4

# Pacing timer: never sooner than this (the event loop's practical resolution).
MIN_PACING_DELAY = 0.0005

monotonic = time.monotonic


def tsn_distance(later: int, earlier: int) -> int:
    """``later - earlier`` in serial number arithmetic (RFC 1982), negative if before."""
    return ((later - earlier + TSN_HALF) & TSN_MASK) - TSN_HALF


class FastInboundStream(InboundStream):
    """aiortc's reassembly list, with out-of-order chunks placed by binary search."""

    def add_chunk(self, chunk: DataChunk) -> None:
        reassembly = self.reassembly
        if not reassembly or uint32_gt(chunk.tsn, reassembly[-1].tsn):
            reassembly.append(chunk)
            return
        # Every buffered TSN is within 2**31 below the last one.
        base = (reassembly[-1].tsn - TSN_HALF) & TSN_MASK

        def key(item: DataChunk) -> int:
            return (item.tsn - base) & TSN_MASK

        index = bisect.bisect_left(reassembly, key(chunk), key=key)
        if index < len(reassembly) and reassembly[index].tsn == chunk.tsn:
            return  # a duplicate (already filtered out by the TSN bookkeeping)
        reassembly.insert(index, chunk)


class FastSctpTransport(RTCSctpTransport):
    """aiortc's SCTP transport with per-packet and per-SACK costs cut down."""

    def __init__(self, transport: RTCDtlsTransport, port: int = 5000) -> None:
        super().__init__(transport, port)
        # Receiver: DATA packets not yet acknowledged, and whether one SACK flush is
        # already scheduled for the end of the current event-loop iteration.
        self._unacked_packets = 0
        self._sack_flush_scheduled = False
        self._sack_immediately = False
        self._advertised_rwnd = RECEIVE_WINDOW
        # Received TSNs above the cumulative TSN, as sorted [first, last] blocks (TSN
        # values; their order is serial order relative to the cumulative TSN).
        self._rx_blocks: list[list[int]] = []
        # Sender: the peer's last advertised receive window (a_rwnd); unknown until the
        # first SACK, when the initial window is the tighter bound anyway.
        self._peer_rwnd = MAX_CWND
        self._controller = BbrController(USERDATA_MAX_LENGTH, monotonic(), MAX_CWND)
        self._cwnd = self._controller.cwnd
        # Chunks marked for retransmission, in the order they were marked, so that
        # _transmit never scans the sent queue for them; _retransmit_pending asks for
        # a rescan (after T3, which marks everything).
        self._rtx_queue: deque[DataChunk] = deque()
        self._retransmit_pending = False
        # Gap-acknowledged TSN ranges seen in the last SACK, as (first, last) offsets
        # from _sacked_base, an unwrapped cumulative TSN: only what a SACK adds to them
        # is processed.
        self._sacked_base = 0
        # Send time of the most recently sent chunk acknowledged so far (RACK).
        self._rack_time = 0.0
        self._gap_seen: list[tuple[int, int]] = []
        # Pacing: a token bucket in bytes refilled at the controller's pacing rate.
        self._pacing_tokens = 0.0
        self._pacing_time = monotonic()
        self._pacing_timer: asyncio.TimerHandle | None = None
        # T3 as a deadline: restarting it per SACK moves the deadline; the one timer
        # handle re-arms itself when it fires early instead of being cancelled and
        # rescheduled every time.
        self._t3_deadline: float | None = None
        self._t3_timer: asyncio.TimerHandle | None = None
        # What the SACKs of the current event-loop iteration acknowledged, for the
        # controller (see _flush_acks).
        self._ack_bytes = 0
        self._ack_lost = 0
        self._ack_newest: DataChunk | None = None
        self._ack_rtt: float | None = None
        self._ack_rtt_max = 0.0
        self._ack_flush_scheduled = False
        # SACKs handled by the fast path's own code: proof that the override runs.
        self.fast_sacks = 0
        self.retransmissions = 0

    def _update_rto(self, R: float) -> None:
        """RFC 9260 section 6.3.1, with RTO_MIN instead of aiortc's 1 s."""
        if self._srtt is None or self._rttvar is None:
            self._rttvar = R / 2
            self._srtt = R
        else:
            self._rttvar = (1 - RTO_BETA) * self._rttvar + RTO_BETA * abs(self._srtt - R)
            self._srtt = (1 - RTO_ALPHA) * self._srtt + RTO_ALPHA * R
        self._rto = max(RTO_MIN, min(self._srtt + 4 * self._rttvar, RTO_MAX))

    def _reordering_window(self) -> float:
        min_rtt = self._controller.min_rtt
        if min_rtt == math.inf:
            return MIN_REORDERING_WINDOW
        return max(min_rtt / 4, MIN_REORDERING_WINDOW)

    def stats(self) -> dict[str, float | int | str]:
        """The sender's congestion state and counters, for benchmarks and diagnostics."""
        controller = self._controller
        return {
            "mode": controller.mode.value,
            "btl_bw": controller.btl_bw,
            "min_rtt": controller.min_rtt if controller.min_rtt != math.inf else -1.0,
            "cwnd": controller.cwnd,
            "pacing_rate": controller.pacing_rate if controller.pacing_rate != math.inf else -1,
            "rounds": controller.round_count,
            "timeouts": controller.timeouts,
            "retransmissions": self.retransmissions,
            "sacks": self.fast_sacks,
            "srtt": self._srtt or 0.0,
        }

    @property
    def controller(self) -> BbrController:
        """The sender's congestion controller (read-only use: figures, tests)."""
        return self._controller

    # ------------------------------------------------------------------ receiver

    def _get_inbound_stream(self, stream_id: int) -> InboundStream:
        stream = self._inbound_streams.get(stream_id)
        if stream is None:
            stream = self._inbound_streams[stream_id] = FastInboundStream()
        return stream

    def _record_tsn(self, tsn: int) -> bool:
        """Record a received TSN; False if it is a duplicate.

        Costs O(log of the number of gaps): no set or list is rebuilt per chunk.
        """
        cumulative = self._last_received_tsn
        assert cumulative is not None
        offset = tsn_distance(tsn, cumulative)
        if offset <= 0:
            return False
        blocks = self._rx_blocks
        if offset == 1:
            self._last_received_tsn = tsn
            if blocks and blocks[0][0] == (tsn + 1) & TSN_MASK:
                # The gap before the first block is filled: the cumulative TSN jumps.
                self._last_received_tsn = blocks.pop(0)[1]
                self._sack_immediately = True
            return True

        def start(block: list[int]) -> int:
            return (block[0] - cumulative) & TSN_MASK

        index = bisect.bisect_right(blocks, offset, key=start)
        if index:
            before = blocks[index - 1]
            end = (before[1] - cumulative) & TSN_MASK
            if offset <= end:
                return False
            if offset == end + 1:
                before[1] = tsn
                if index < len(blocks) and start(blocks[index]) == offset + 1:
                    before[1] = blocks.pop(index)[1]
                    # A gap closed: tell the sender now.
                    self._sack_immediately = True
                return True
        if index < len(blocks) and start(blocks[index]) == offset + 1:
            blocks[index][0] = tsn
            return True
        # A new gap below this TSN: report it at once (RFC 9260 section 6.7).
        blocks.insert(index, [tsn, tsn])
        self._sack_immediately = True
        return True

    async def _receive_data_chunk(self, chunk: DataChunk) -> None:
        if self._last_received_tsn is None:
            # DATA before the association exists (no INIT seen): nothing to attach it to.
            return
        self._sack_needed = True
        tsn = chunk.tsn
        if tsn == (self._last_received_tsn + 1) & TSN_MASK and not self._rx_blocks:
            # In-order arrival: the cumulative TSN just moves on.
            self._last_received_tsn = tsn
        elif not self._record_tsn(tsn):
            # A duplicate asks for an immediate SACK (RFC 9260 section 6.2).
            if len(self._sack_duplicates) < MAX_DUPLICATES:
                self._sack_duplicates.append(tsn)
            self._sack_immediately = True
            return

        stream = self._get_inbound_stream(chunk.stream_id)
        appended_last = not stream.reassembly or uint32_gt(tsn, stream.reassembly[-1].tsn)
        stream.add_chunk(chunk)
        self._advertised_rwnd -= len(chunk.user_data)
        if (
            appended_last
            and not chunk.flags & SCTP_DATA_LAST_FRAG
            and self._reconfig_deferred is None
        ):
            # A fragment that lands after every buffered one and does not end a message
            # cannot complete any message, so skip the rescan of the reassembly list
            # (quadratic in the message size in aiortc).
            return
        for message in stream.pop_messages():
            self._advertised_rwnd += len(message[2])
            await self._receive(*message)
        await self._reset_deferred_streams()

    async def _receive_forward_tsn_chunk(self, chunk: ForwardTsnChunk) -> None:
        # aiortc's handling works on a set of received TSNs: hand it ours, take it back.
        # FORWARD TSN is rare (unreliable channels only), so the O(gaps) copy is fine.
        self._sack_immediately = True
        misordered: set[int] = set()
        for first, last in self._rx_blocks:
            for offset in range(tsn_distance(last, first) + 1):
                misordered.add((first + offset) & TSN_MASK)
        self._sack_misordered = misordered
        try:
            await super()._receive_forward_tsn_chunk(chunk)
        finally:
            self._rx_blocks = self._blocks_from(self._sack_misordered)
            self._sack_misordered = set()

    def _blocks_from(self, tsns: set[int]) -> list[list[int]]:
        cumulative = self._last_received_tsn
        assert cumulative is not None
        blocks: list[list[int]] = []
        for tsn in sorted(tsns, key=lambda value: tsn_distance(value, cumulative)):
            if tsn_distance(tsn, cumulative) <= 0:
                continue
            if blocks and blocks[-1][1] == (tsn - 1) & TSN_MASK:
                blocks[-1][1] = tsn
            else:
                blocks.append([tsn, tsn])
        return blocks

    async def _send_sack(self) -> None:
        """Delay the SACK to every second packet or the end of this loop iteration.

        RFC 9260 section 6.2 asks for a SACK at least every second packet and within
        200 ms; a new gap, a filled gap and duplicates are reported immediately.
        Packets that arrive in one burst are handled in one event-loop iteration, so a
        SACK still owed at its end is sent then: well within 200 ms, and never stalling
        a sender with one packet in flight.
        """
        self._unacked_packets += 1
        if self._sack_immediately or self._unacked_packets >= PACKETS_PER_SACK:
            await self._send_sack_now()
        elif not self._sack_flush_scheduled:
            self._sack_flush_scheduled = True
            self._loop.call_soon(self._flush_delayed_sack)

    async def _send_sack_now(self) -> None:
        self._unacked_packets = 0
        self._sack_immediately = False
        cumulative = self._last_received_tsn
        assert cumulative is not None
        sack = SackChunk()
        sack.cumulative_tsn = cumulative
        sack.advertised_rwnd = max(0, self._advertised_rwnd)
        sack.duplicates = self._sack_duplicates[:MAX_DUPLICATES]
        sack.gaps = [
            ((first - cumulative) & TSN_MASK, (last - cumulative) & TSN_MASK)
            for first, last in self._rx_blocks[:MAX_GAP_BLOCKS]
        ]
        await self._send_chunk(sack)
        self._sack_duplicates.clear()
        self._sack_needed = False

    def _flush_delayed_sack(self) -> None:
        self._sack_flush_scheduled = False
        if self._sack_needed and self._association_state == self.State.ESTABLISHED:
            run_inline(self._send_sack_quietly())

    async def _send_sack_quietly(self) -> None:
        # The transport may have closed between the packet and the flush: nothing to ack.
        with contextlib.suppress(ConnectionError):
            await self._send_sack_now()

    # ------------------------------------------------------------------ sender

    async def _receive_sack_chunk(self, chunk: SackChunk) -> None:
        """Process a SACK in time proportional to what it changes.

        Same rules as aiortc (RFC 9260 sections 6.2.1, 7.2 and 7.2.4) except congestion
        control: chunks are found by their offset in the sent queue (TSNs in it are
        consecutive); only the part of each Gap Ack Block not seen in the previous SACK
        is walked; a chunk is fast-retransmitted at most once (section 7.2.4: later
        losses of it are T3's); the window and pacing rate come from the controller.
        """
        cumulative_tsn = chunk.cumulative_tsn
        advance = tsn_distance(cumulative_tsn, self._last_sacked_tsn)
        if advance < 0:
            return
        self.fast_sacks += 1
        now = monotonic()
        self._last_sacked_tsn = cumulative_tsn
        self._sacked_base += advance
        self._peer_rwnd = chunk.advertised_rwnd
        sent_queue = self._sent_queue
        acked_bytes = 0
        lost_bytes = 0
        newest: DataChunk | None = None

        if sent_queue:
            count = min(tsn_distance(cumulative_tsn, sent_queue[0].tsn) + 1, len(sent_queue))
            for _ in range(count):
                schunk = sent_queue.popleft()
                if not schunk._acked:
                    schunk._acked = True
                    acked_bytes += schunk._book_size
                    newest = schunk
                if schunk._in_flight:
                    schunk._in_flight = False
                    self._flight_size -= schunk._book_size

        gaps = chunk.gaps
        if gaps and sent_queue:
            base = self._sacked_base
            # Offset n from the cumulative TSN sits at index n + shift in the sent queue.
            shift = tsn_distance(cumulative_tsn, sent_queue[0].tsn)
            length = len(sent_queue)
            seen = self._gap_seen
            seen_index = 0
            seen_count = len(seen)
            highest_newly_acked = -1
            reported: list[tuple[int, int]] = []
            for start, end in gaps:
                if start < 1 or end < start:
                    continue
                reported.append((base + start, base + end))
                # Walk [start, end] minus the ranges already seen in the last SACK.
                while seen_index < seen_count and seen[seen_index][1] - base < start:
                    seen_index += 1
                position = start
                scan = seen_index
                while position <= end:
                    stop = end
                    resume = end + 1
                    if scan < seen_count and seen[scan][0] - base <= end:
                        stop = seen[scan][0] - base - 1
                        resume = seen[scan][1] - base + 1
                        scan += 1
                    for index in range(max(position + shift, 0), min(stop + shift + 1, length)):
                        schunk = sent_queue[index]
                        if not schunk._acked:
                            schunk._acked = True
                            acked_bytes += schunk._book_size
                            if index > highest_newly_acked:
                                highest_newly_acked = index
                                newest = schunk
                        if schunk._in_flight:
                            schunk._in_flight = False
                            self._flight_size -= schunk._book_size
                    position = max(position, resume)
            self._gap_seen = reported

            # Strike the chunks reported missing below the highest newly acked TSN. A
            # chunk is lost after three strikes (RFC 9260 section 7.2.4) if it was also
            # sent a reordering window before the newest chunk acknowledged (the time
            # rule of RACK, RFC 8985): reordering by less than that window is not
            # loss, and a lost retransmission is detected the same way instead of
            # waiting for T3.
            if newest is not None and newest._sent_time > self._rack_time:
                self._rack_time = newest._sent_time
            lost_before = self._rack_time - self._reordering_window()
            hole_start = 1
            for start, end in gaps:
                first = max(hole_start + shift, 0)
                last = min(start + shift, highest_newly_acked)
                for index in range(first, last):
                    schunk = sent_queue[index]
                    if schunk._acked or schunk._retransmit:
                        continue
                    schunk._misses += 1
                    if schunk._misses >= 3 and schunk._sent_time < lost_before:
                        lost_bytes += schunk._book_size
                        if not self._maybe_abandon(schunk):
                            schunk._retransmit = True
                            self._rtx_queue.append(schunk)
                        self._flight_size_decrease(schunk)
                if end + 1 > hole_start:
                    hole_start = end + 1
        elif not sent_queue or not gaps:
            self._gap_seen = []

        # The controller hears once per burst of SACKs (those read together, handled in
        # one event-loop iteration), as one stretched SACK: its update costs more than
        # the rest of a SACK's handling, and the window moves slowly anyway.
        self._ack_bytes += acked_bytes
        self._ack_lost += lost_bytes
        if newest is not None and newest._sent_time is not None:
            self._ack_newest = newest
            if newest._sent_count == 1:
                rtt = now - newest._sent_time
                if self._ack_rtt is None or rtt < self._ack_rtt:
                    self._ack_rtt = rtt
                if rtt > self._ack_rtt_max:
                    self._ack_rtt_max = rtt
        if not self._ack_flush_scheduled:
            self._ack_flush_scheduled = True
            self._loop.call_soon(self._flush_acks)

        if not sent_queue:
            self._t3_cancel()
        elif advance:
            self._t3_restart()

        self._update_advanced_peer_ack_point()
        if not self._outbound_queue or self._reconfig_queue:
            # Only then can aiortc's flush move a message in or start a stream reset.
            await self._data_channel_flush()
        await self._transmit()

    def _flush_acks(self) -> None:
        """Tell the controller what this burst of SACKs acknowledged, then send."""
        self._ack_flush_scheduled = False
        newest = self._ack_newest
        rtt = self._ack_rtt
        now = monotonic()
        if rtt is not None:
            # The controller wants the burst's lowest RTT (min_rtt), the retransmission
            # timer its highest: after a stall of either peer, a burst of SACKs arrives
            # at once and only its first ones carry the stall, which the lowest sample
            # hides. Fed the lowest, SRTT and RTTVAR ignored stalls and T3 fired
            # spuriously (and resent the whole window) when the machine was loaded.
            self._update_rto(self._ack_rtt_max)
            self._ack_rtt_max = 0.0
        controller = self._controller
        controller.on_ack(now, self._ack_bytes, self._ack_lost, self._flight_size,
                          getattr(newest, "_rs", None) if newest is not None else None,
                          newest._sent_time if newest is not None else now, rtt)
        self._ack_bytes = self._ack_lost = 0
        self._ack_newest = None
        self._ack_rtt = None
        window = self._cwnd
        self._cwnd = controller.cwnd
        if self._cwnd > window and self._association_state == self.State.ESTABLISHED:
            # The window grew: nothing else may come to use it.
            run_inline(self._transmit_quietly())

    async def _transmit(self) -> None:
        """Send retransmissions, then new DATA, within the window and the pacing rate.

        The window is the controller's cwnd and the peer's rwnd: RFC 9260 section 6.1
        rule A, no new DATA beyond the peer's rwnd, except one packet to probe a zero
        window when nothing is in flight. Pacing spreads bursts at the controller's
        pacing rate; a timer resumes sending when tokens run out.
        """
        if self._forward_tsn_chunk is not None:
            await self._send_chunk(self._forward_tsn_chunk)
            self._forward_tsn_chunk = None
            if not self._t3_handle:
                self._t3_start()

        controller = self._controller
        cwnd = controller.cwnd
        now = monotonic()
        rate = controller.pacing_rate
        tokens = self._pacing_tokens + (now - self._pacing_time) * rate if rate < math.inf \
            else controller.pacing_burst
        burst = controller.pacing_burst
        if tokens > burst:
            tokens = burst
        self._pacing_time = now
        stamp = None

        if self._retransmit_pending:
            self._retransmit_pending = False
            self._rtx_queue = deque(
                chunk for chunk in self._sent_queue if chunk._retransmit and not chunk._acked)
        rtx_queue = self._rtx_queue
        while rtx_queue:
            chunk = rtx_queue[0]
            if chunk._acked or not chunk._retransmit or chunk._abandoned:
                rtx_queue.popleft()
                chunk._retransmit = False
                continue
            if (self._flight_size >= cwnd or tokens <= 0) and self._flight_size:
                break
            rtx_queue.popleft()
            if stamp is None:
                stamp = controller.on_send(now, self._flight_size)
            self._flight_size_increase(chunk)
            chunk._misses = 0
            chunk._retransmit = False
            chunk._sent_count += 1
            chunk._sent_time = now
            chunk._rs = stamp
            tokens -= chunk._book_size
            self.retransmissions += 1
            await self._send_chunk(chunk)
            if self._sent_queue and self._sent_queue[0] is chunk:
                self._t3_restart()

        window = min(cwnd, max(self._peer_rwnd, 1))
        outbound_queue = self._outbound_queue
        if outbound_queue and self._flight_size < window and not rtx_queue:
            sent_queue = self._sent_queue
            while outbound_queue and self._flight_size < window and tokens > 0:
                chunk = outbound_queue.popleft()
                if stamp is None:
                    stamp = controller.on_send(now, self._flight_size)
                sent_queue.append(chunk)
                chunk._in_flight = True
                size = chunk._book_size
                self._flight_size += size
                tokens -= size
                chunk._sent_count += 1
                chunk._sent_time = now
                chunk._rs = stamp
                await self._send_chunk(chunk)
            if not self._t3_handle:
                self._t3_start()
        self._pacing_tokens = tokens
        if tokens <= 0 and (outbound_queue or rtx_queue) and self._flight_size < window:
            self._schedule_pacing(-tokens / rate if rate > 0 else MIN_PACING_DELAY)
        elif not outbound_queue and not self._data_channel_queue:
            controller.on_app_limited(self._flight_size)

    def _schedule_pacing(self, delay: float) -> None:
        if self._pacing_timer is not None:
            return
        self._pacing_timer = self._loop.call_later(
            max(delay, MIN_PACING_DELAY), self._pacing_fire)

    def _pacing_fire(self) -> None:
        self._pacing_timer = None
        if self._association_state == self.State.ESTABLISHED:
            run_inline(self._transmit_quietly())

    async def _transmit_quietly(self) -> None:
        """Send what the window and pacing allow, from a timer or a grown window.

        aiortc moves a message from the data channel queue into the outbound queue
        only when the outbound queue is empty, and only when a message is queued or a
        SACK arrives. A pacing tick that empties the outbound queue must move the
        next message itself: otherwise nothing is sent until the next SACK, the
        tokens of the wait are lost, and the rate samples, then the bandwidth estimate,
        fall below the link (at 200 ms the estimate sank to a third of it and took
        25 s to climb back).
        """
        with contextlib.suppress(ConnectionError):
            await self._transmit()
            if not self._outbound_queue and self._data_channel_queue:
                await self._data_channel_flush()

    # ------------------------------------------------------------------ T3 timer

    def _t3_start(self) -> None:
        self._t3_arm()

    def _t3_restart(self) -> None:
        self._t3_arm()

    def _t3_cancel(self) -> None:
        # The timer, if any, stays scheduled and does nothing when it finds no deadline.
        self._t3_deadline = None
        self._t3_handle = None

    def _t3_arm(self) -> None:
        self._t3_deadline = self._loop.time() + self._rto
        timer = self._t3_timer
        if timer is not None and timer.when() > self._t3_deadline:
            timer.cancel()
            timer = None
        if timer is None:
            timer = self._loop.call_at(self._t3_deadline, self._t3_fire)
            self._t3_timer = timer
        # aiortc reads _t3_handle as "T3 is running".
        self._t3_handle = timer

    def _t3_fire(self) -> None:
        self._t3_timer = None
        deadline = self._t3_deadline
        if deadline is None:
            return
        if self._loop.time() < deadline:
            self._t3_timer = self._loop.call_at(deadline, self._t3_fire)
            self._t3_handle = self._t3_timer
            return
        self._t3_deadline = None
        self._t3_expired()

    def _t3_expired(self) -> None:
        super()._t3_expired()
        self._retransmit_pending = True
        self._controller.on_timeout()
        self._cwnd = self._controller.cwnd

    # ------------------------------------------------------------------ lifecycle

    async def stop(self) -> None:
        await super().stop()
        self._t3_cancel()
        if self._t3_timer is not None:
            self._t3_timer.cancel()
            self._t3_timer = None
        if self._pacing_timer is not None:
            self._pacing_timer.cancel()
            self._pacing_timer = None

