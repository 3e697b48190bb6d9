"""A tuned aiortc SCTP association: the same wire protocol, less work per packet.

``FastSctpTransport`` subclasses aiortc's ``RTCSctpTransport`` and overrides only the
methods that run once per packet or per SACK. Every override keeps RFC 9260 (SCTP, which
obsoletes RFC 4960) behaviour on the wire; what changes is how often a SACK is sent
(still at least every second packet, section 6.2), and how much bookkeeping each packet
and each SACK costs. docs/fast-path.md lists every override and the section it follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcsctptransport import (
    SCTP_DATA_LAST_FRAG,
    USERDATA_MAX_LENGTH,
    DataChunk,
    ForwardTsnChunk,
    RTCSctpTransport,
    SackChunk,
)
from aiortc.utils import uint32_gt, uint32_gte

from rtcxfer.fastpath.inline import run_inline

TSN_MASK = 0xFFFFFFFF
TSN_HALF = 0x80000000

# RFC 9260 section 6.2: acknowledge at least every second packet carrying DATA.
PACKETS_PER_SACK = 2

# Congestion window ceiling. aiortc never applied the peer's receive window, so on a
# fast path cwnd grew until the receiver's UDP socket buffer (aioice asks for 256 KiB)
# overflowed, costing drops and retransmissions. A window this size keeps a loopback or
# LAN path full; the peer's advertised window (applied too) bounds it further.
MAX_CWND = 256 * 1024


def tsn_distance(later: int, earlier: int) -> int:
    """``later - earlier`` in serial number arithmetic (RFC 1982), negative if before."""
    return ((later - earlier + TSN_HALF) & TSN_MASK) - TSN_HALF


class FastSctpTransport(RTCSctpTransport):
    """aiortc's SCTP transport with per-packet and per-SACK costs cut down."""

    def __init__(self, transport: RTCDtlsTransport, port: int = 5000) -> None:
        super().__init__(transport, port)
        # Receiver: DATA packets not yet acknowledged, and whether one SACK flush is
        # already scheduled for the end of the current event-loop iteration.
        self._unacked_packets = 0
        self._sack_flush_scheduled = False
        self._sack_immediately = False
        # Sender: the peer's last advertised receive window (a_rwnd); unknown until the
        # first SACK, when cwnd (three packets) is the tighter bound anyway.
        self._peer_rwnd = MAX_CWND
        # Set whenever a chunk may have been marked for retransmission, so _transmit
        # scans the sent queue only then instead of on every call.
        self._retransmit_pending = False
        # T3 as a deadline: restarting it per SACK moves the deadline; the one timer
        # handle re-arms itself when it fires early instead of being cancelled and
        # rescheduled every time.
        self._t3_deadline: float | None = None
        self._t3_timer: asyncio.TimerHandle | None = None
        # SACKs handled by the fast path's own code: proof that the override runs.
        self.fast_sacks = 0

    # ------------------------------------------------------------------ receiver

    async def _receive_data_chunk(self, chunk: DataChunk) -> None:
        if self._last_received_tsn is None:
            # DATA before the association exists (no INIT seen): nothing to attach it to.
            return
        self._sack_needed = True
        tsn = chunk.tsn
        if tsn == (self._last_received_tsn + 1) & TSN_MASK and not self._sack_misordered:
            # In-order arrival: the cumulative TSN just moves on. aiortc's
            # _mark_received rebuilds a set and a list for every chunk.
            self._last_received_tsn = tsn
        elif self._mark_received(tsn):
            # A duplicate asks for an immediate SACK (RFC 9260 section 6.2).
            self._sack_immediately = True
            return
        else:
            # Out of order, or filling a gap: report it at once so the sender can
            # fast-retransmit or move on (RFC 9260 sections 6.2 and 6.7).
            self._sack_immediately = True

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
        self._sack_immediately = True
        await super()._receive_forward_tsn_chunk(chunk)

    async def _send_sack(self) -> None:
        """Delay the SACK to every second packet or the end of this loop iteration.

        RFC 9260 section 6.2 asks for a SACK at least every second packet and within
        200 ms; gaps and duplicates are reported immediately. Packets that arrive in one
        burst are handled in one event-loop iteration, so a SACK still owed at its end
        is sent then: well within 200 ms, and never stalling a sender with one packet
        in flight.
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
        await super()._send_sack()

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
        """Process a SACK in time proportional to what it acknowledges and reports missing.

        Same rules as aiortc (RFC 9260 sections 6.2.1, 7.2 and 7.2.4), but chunks are
        found by their offset in the sent queue (TSNs in it are consecutive) instead of
        by walking the queue with serial-number comparisons, and a chunk is
        fast-retransmitted at most once (section 7.2.4: later losses of it are T3's).
        """
        cumulative_tsn = chunk.cumulative_tsn
        if uint32_gt(self._last_sacked_tsn, cumulative_tsn):
            return

        self.fast_sacks += 1
        received_time = time.time()
        self._last_sacked_tsn = cumulative_tsn
        self._peer_rwnd = chunk.advertised_rwnd
        cwnd_fully_utilized = self._flight_size >= self._cwnd
        sent_queue = self._sent_queue
        done = 0
        done_bytes = 0

        if sent_queue:
            acked = min(tsn_distance(cumulative_tsn, sent_queue[0].tsn) + 1, len(sent_queue))
            for _ in range(acked):
                schunk = sent_queue.popleft()
                done += 1
                if not schunk._acked:
                    done_bytes += schunk._book_size
                if schunk._in_flight:
                    schunk._in_flight = False
                    self._flight_size -= schunk._book_size
                if done == 1 and schunk._sent_count == 1:
                    self._update_rto(received_time - schunk._sent_time)

        loss = False
        if chunk.gaps and sent_queue:
            # Offset n in a gap block is TSN cumulative + n, which sits at this index.
            shift = tsn_distance(cumulative_tsn, sent_queue[0].tsn)
            length = len(sent_queue)
            highest_newly_acked = -1
            for start, end in chunk.gaps:
                for index in range(max(start + shift, 0), min(end + shift + 1, length)):
                    schunk = sent_queue[index]
                    if not schunk._acked:
                        done_bytes += schunk._book_size
                        schunk._acked = True
                        highest_newly_acked = index
                    if schunk._in_flight:
                        schunk._in_flight = False
                        self._flight_size -= schunk._book_size

            # Strike the chunks reported missing below the highest newly acked TSN.
            hole_start = 1
            for start, end in chunk.gaps:
                first = max(hole_start + shift, 0)
                last = min(start + shift, highest_newly_acked)
                for index in range(first, last):
                    schunk = sent_queue[index]
                    if schunk._acked or getattr(schunk, "_fast_retransmitted", False):
                        continue
                    schunk._misses += 1
                    if schunk._misses == 3:
                        schunk._misses = 0
                        schunk._fast_retransmitted = True
                        if not self._maybe_abandon(schunk):
                            schunk._retransmit = True
                            self._retransmit_pending = True
                        self._flight_size_decrease(schunk)
                        loss = True
                hole_start = end + 1

        if self._fast_recovery_exit is None:
            if done and cwnd_fully_utilized:
                if self._cwnd <= self._ssthresh:
                    self._cwnd += min(done_bytes, USERDATA_MAX_LENGTH)
                else:
                    self._partial_bytes_acked += done_bytes
                    if self._partial_bytes_acked >= self._cwnd:
                        self._partial_bytes_acked -= self._cwnd
                        self._cwnd += USERDATA_MAX_LENGTH
                self._cwnd = min(self._cwnd, MAX_CWND)
            if loss:
                self._ssthresh = max(self._cwnd // 2, 4 * USERDATA_MAX_LENGTH)
                self._cwnd = self._ssthresh
                self._partial_bytes_acked = 0
                self._fast_recovery_exit = sent_queue[-1].tsn
                self._fast_recovery_transmit = True
        elif uint32_gte(cumulative_tsn, self._fast_recovery_exit):
            self._fast_recovery_exit = None

        if not sent_queue:
            self._t3_cancel()
        elif done:
            self._t3_restart()

        self._update_advanced_peer_ack_point()
        if not self._outbound_queue or self._reconfig_queue:
            # Only then can aiortc's flush move a message in or start a stream reset.
            await self._data_channel_flush()
        await self._transmit()

    async def _transmit(self) -> None:
        """Send retransmissions, then new DATA, within cwnd and the peer's window.

        RFC 9260 section 6.1 rule A: no new DATA beyond the peer's rwnd, except one
        packet to probe a zero window when nothing is in flight.
        """
        if self._forward_tsn_chunk is not None:
            await self._send_chunk(self._forward_tsn_chunk)
            self._forward_tsn_chunk = None
            if not self._t3_handle:
                self._t3_start()

        if self._fast_recovery_exit is not None:
            burst_size = 2 * USERDATA_MAX_LENGTH
        else:
            burst_size = 4 * USERDATA_MAX_LENGTH
        cwnd = min(self._flight_size + burst_size, self._cwnd)

        if self._retransmit_pending:
            self._retransmit_pending = False
            retransmit_earliest = True
            for chunk in list(self._sent_queue):
                if chunk._retransmit:
                    if self._fast_recovery_transmit:
                        self._fast_recovery_transmit = False
                    elif self._flight_size >= cwnd:
                        self._retransmit_pending = True
                        return
                    self._flight_size_increase(chunk)
                    chunk._misses = 0
                    chunk._retransmit = False
                    chunk._sent_count += 1
                    await self._send_chunk(chunk)
                    if retransmit_earliest:
                        self._t3_restart()
                retransmit_earliest = False

        window = min(cwnd, max(self._peer_rwnd, 1))
        outbound_queue = self._outbound_queue
        if not outbound_queue or self._flight_size >= window:
            return
        now = time.time()
        while outbound_queue and self._flight_size < window:
            chunk = outbound_queue.popleft()
            self._sent_queue.append(chunk)
            chunk._in_flight = True
            self._flight_size += chunk._book_size
            chunk._sent_count += 1
            chunk._sent_time = now
            await self._send_chunk(chunk)
        if not self._t3_handle:
            self._t3_start()

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

    # ------------------------------------------------------------------ lifecycle

    async def stop(self) -> None:
        await super().stop()
        self._t3_cancel()
        if self._t3_timer is not None:
            self._t3_timer.cancel()
            self._t3_timer = None

