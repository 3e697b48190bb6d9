"""A model-based congestion controller in the spirit of BBR, as a pure state machine.

Reno-style congestion control (what SCTP specifies, RFC 9260 section 7.2) halves its
window on every loss, so a path with 0.5 % random loss caps a transfer at about
MSS/RTT x 1.22/sqrt(p) whatever the link. This controller instead keeps a model of the
path, from what the receiver's SACKs say was delivered:

- ``btl_bw``: the bottleneck bandwidth, the highest delivery rate sampled over the last
  ``BW_WINDOW_ROUNDS`` round trips (a windowed max filter);
- ``min_rtt``: the lowest round-trip time seen in the last ``MIN_RTT_WINDOW`` seconds;

and sends at ``pacing_gain x btl_bw`` with at most ``cwnd_gain x btl_bw x min_rtt`` bytes
in flight. Random loss lowers a delivery-rate sample by the loss rate, not by half, so
it barely moves the model. The states are BBR's (Cardwell et al., "BBR:
Congestion-Based Congestion Control", ACM Queue 2016; draft-cardwell-iccrg-bbr-
congestion-control):

``STARTUP``
    from an initial window of 32 packets, doubles the sending rate every round (gain
    2/ln 2; the pacing rate never falls here, as in Linux's BBR) until the bandwidth stops
    growing (three rounds under +25 %), or a round loses more than
    ``STARTUP_LOSS_THRESHOLD`` of its packets: a full drop-tail queue (BBRv2's rule; a
    random-loss path stays far below it);
``DRAIN``
    sends below the estimate until what is in flight fits the path's BDP;
``PROBE_BW``
    cycles the pacing gain 1.25, 0.75, 1 x 6, one ``min_rtt`` per phase, to notice
    more bandwidth and give back the queue it made;
``PROBE_RTT``
    when ``min_rtt`` is ``MIN_RTT_WINDOW`` old, holds the window at half a BDP (at
    least ``PROBE_RTT_PACKETS``) for ``PROBE_RTT_TIME`` and a round trip, so a queue
    (its own or a competing flow's) drains and the path RTT is measured again.

It only decides how much may be in flight and how fast to send: the SCTP sender
(rtcxfer/fastpath/sctp.py) feeds it one call per burst of SACKs and one stamp per burst of
packets sent. Nothing here changes the wire, so the receiver can be any SCTP stack.

Units: bytes and seconds; ``now`` comes from the caller (a monotonic clock), so the
machine is driven by hand in tests/fastpath/test_bbr.py.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum

STARTUP_GAIN = 2 / math.log(2)  # 2.885: doubles the delivery rate each round
STARTUP_CWND_GAIN = 2.0
DRAIN_GAIN = 1 / STARTUP_GAIN
PROBE_BW_GAINS = (1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
# The window in PROBE_BW: CWND_GAIN x the model's BDP + CWND_ADD_PACKETS (BBR: 2 x BDP).
# Flows sharing a bottleneck end up window-limited behind a common queue. With a window
# proportional to each flow's own estimate alone, any split is then an equilibrium:
# two flows kept the split they started with (1.4 x BDP: 0.77-1.49 in bench/wan.py
# --share). A part that is the same for every flow, as Vegas's alpha, breaks the tie:
# in equilibrium each flow's rate x (RTT - CWND_GAIN x min RTT) = the added part, so
# every flow has the same rate. It also bounds the standing queue (the window binds,
# not pacing: per-SACK rate samples from a Python receiver run up to ~10 % high and the
# max filter keeps them) at 100 packets, 116 KB: 1.46x the path's RTT at 20 ms at most
# (where MIN_WINDOW decides anyway), 1.19x at 50 ms, 1.05x at 200 ms; 1.4 x BDP kept
# 0.4 BDP queued on every path. Measured in bench/wan.py and tests/fastpath/test_bbr.py.
CWND_GAIN = 1.0
CWND_ADD_PACKETS = 100
BW_WINDOW_ROUNDS = 10
FULL_BW_GROWTH = 1.25
FULL_BW_ROUNDS = 3
STARTUP_LOSS_THRESHOLD = 0.10
STARTUP_LOSS_MIN_PACKETS = 8
MIN_RTT_WINDOW = 10.0
PROBE_RTT_TIME = 0.2
PROBE_RTT_PACKETS = 4
# BBRv2's PROBE_RTT keeps half a BDP in flight rather than 4 packets: enough to drain a
# queue, without emptying a long path (at 200 ms, 4 packets for 0.4 s every 10 s would
# cost 4 % of the transfer).
PROBE_RTT_CWND_GAIN = 0.5
MIN_CWND_PACKETS = 4
# The first round's window, before any SACK. RFC 9002 suggests 10 packets; QUIC stacks
# (Google's gQUIC, quiche, msquic's options) use 32. STARTUP doubles the rate per round
# from the first round's delivery rate, so 32 saves about 1.7 round trips of a slow
# start: 0.34 s at 200 ms. 37 KiB, well below MIN_WINDOW, which the fast path already
# allowed in flight from the first SACK on.
INITIAL_CWND_PACKETS = 32
# The window never goes below this (except for a round after a timeout): what the fast
# path used as its fixed window before, which keeps loopback and LAN paths full.
MIN_WINDOW = 256 * 1024
# Paths with a min RTT below this are not paced.
PACING_MIN_RTT = 0.005
# Pacing bursts: at most this much time's worth of sending at once (and never less than
# a few packets), so one timer tick or one SACK can release a small batch.
PACING_BURST_SECONDS = 0.002
PACING_BURST_PACKETS = 4


class Mode(Enum):
    STARTUP = "startup"
    DRAIN = "drain"
    PROBE_BW = "probe_bw"
    PROBE_RTT = "probe_rtt"


@dataclass(frozen=True, slots=True)
class SendStamp:
    """What the controller knew when a packet left; attached to the packet.

    BBR's per-packet state: a delivery-rate sample is the data delivered between this
    stamp and the SACK of the packet, over the longer of the send and ACK intervals.
    """

    delivered: int
    delivered_time: float
    first_sent_time: float
    app_limited: bool


class BbrController:
    """Congestion window and pacing rate from a bandwidth and min-RTT model."""

    def __init__(self, mss: int, now: float, max_cwnd: int,
                 initial_rtt: float | None = None) -> None:
        self.mss = mss
        self.max_cwnd = max_cwnd
        self.mode = Mode.STARTUP
        self.pacing_gain = STARTUP_GAIN
        self.cwnd_gain = STARTUP_CWND_GAIN
        self.cwnd = INITIAL_CWND_PACKETS * mss
        # Delivery accounting (the rate-sample algorithm).
        self.delivered = 0
        self.delivered_time = now
        self.first_sent_time = now
        self.app_limited_until = 0  # delivered count below which samples are app-limited
        # Rounds: a round ends when a packet sent after it began is acknowledged.
        self.round_count = 0
        self.next_round_delivered = 0
        self._round_lost = 0
        self._round_delivered_start = 0
        # Model.
        self._bw_samples: deque[tuple[int, float]] = deque()  # (round, rate), max filter
        self.btl_bw = 0.0
        self.min_rtt = initial_rtt if initial_rtt is not None else math.inf
        self.min_rtt_stamp = now
        self._min_rtt_expired = False
        # STARTUP exit.
        self.filled_pipe = False
        self._full_bw = 0.0
        self._full_bw_count = 0
        # PROBE_BW.
        self.cycle_index = 0
        self._cycle_stamp = now
        # PROBE_RTT.
        self._probe_rtt_done: float | None = None
        self._probe_rtt_round_done = False
        self._prior_cwnd = 0
        # After a retransmission timeout: packet conservation for one round.
        self._rto_round: int | None = None
        initial_bw = self.cwnd / initial_rtt if initial_rtt else 0.0
        self.pacing_rate = STARTUP_GAIN * initial_bw if initial_bw else math.inf
        self.pacing_burst = self._burst()
        # Counters for tests, benchmarks and docs.
        self.samples = 0
        self.timeouts = 0

    # ------------------------------------------------------------------ events

    def on_send(self, now: float, inflight: int) -> SendStamp:
        """Stamp for a burst of packets about to leave with ``inflight`` bytes out."""
        if inflight == 0:
            # Restarting from idle: the send interval starts now.
            self.first_sent_time = now
            self.delivered_time = now
        return SendStamp(self.delivered, self.delivered_time, self.first_sent_time,
                         self.app_limited_until > 0)

    def on_app_limited(self, inflight: int) -> None:
        """The sender ran out of data with room left in the window."""
        if inflight < self.cwnd:
            self.app_limited_until = max(self.delivered + inflight, 1)

    def on_ack(self, now: float, acked: int, lost: int, inflight: int,
               stamp: SendStamp | None, sent_time: float, rtt: float | None) -> None:
        """One SACK: ``acked`` bytes newly delivered, ``lost`` bytes newly marked lost.

        ``stamp`` and ``sent_time`` belong to the most recently sent packet this SACK
        newly acknowledged (None if it acknowledged nothing); ``rtt`` is a sample from a
        packet sent only once, if there is one; ``inflight`` is what is still out.
        """
        # Runs once per SACK: the common case (cruising in PROBE_BW, nothing changed in
        # the model) only does the arithmetic of the rate sample.
        if lost:
            self._round_lost += lost
        if acked:
            self.delivered += acked
            self.delivered_time = now
            if self.app_limited_until and self.delivered > self.app_limited_until:
                self.app_limited_until = 0
        changed = False
        if rtt is not None and rtt > 0 and (
                rtt <= self.min_rtt or now - self.min_rtt_stamp > MIN_RTT_WINDOW):
            self._update_min_rtt(now, rtt)
            changed = True
        if stamp is not None:
            if stamp.delivered >= self.next_round_delivered:
                self._end_round()
                changed = True
            bandwidth = self.btl_bw
            self._sample_rate(now, stamp, sent_time)
            changed = changed or self.btl_bw != bandwidth
        if (changed or self.mode is not Mode.PROBE_BW or now - self._cycle_stamp > self.min_rtt
                or now - self.min_rtt_stamp > MIN_RTT_WINDOW):
            self._update_mode(now, inflight)
            self._update_outputs()

    def on_timeout(self) -> None:
        """A retransmission timeout: everything out is presumed lost."""
        self.timeouts += 1
        self._rto_round = self.round_count
        self._update_outputs()

    # ------------------------------------------------------------------ model

    def _update_min_rtt(self, now: float, rtt: float) -> None:
        expired = now - self.min_rtt_stamp > MIN_RTT_WINDOW
        # As in BBR: an expired min RTT takes the new sample and also starts PROBE_RTT
        # (the sample may be inflated by a queue).
        self._min_rtt_expired = expired
        if rtt <= self.min_rtt or (expired and self.mode is not Mode.PROBE_RTT):
            self.min_rtt = rtt
            self.min_rtt_stamp = now
        elif expired and self.mode is Mode.PROBE_RTT:
            self.min_rtt = min(self.min_rtt, rtt)

    def _end_round(self) -> None:
        # A packet sent after the last round ended was acknowledged: a new round.
        delivered = self.delivered - self._round_delivered_start
        lost = self._round_lost
        self.round_count += 1
        self.next_round_delivered = self.delivered
        self._round_delivered_start = self.delivered
        self._round_lost = 0
        if self._rto_round is not None and self.round_count > self._rto_round + 1:
            self._rto_round = None
        if self.mode is Mode.STARTUP and not self.filled_pipe:
            self._check_full_pipe(delivered, lost)
        if self.mode is Mode.PROBE_RTT and self._probe_rtt_done is not None:
            self._probe_rtt_round_done = True

    def _sample_rate(self, now: float, stamp: SendStamp, sent_time: float) -> None:
        send_elapsed = sent_time - stamp.first_sent_time
        ack_elapsed = now - stamp.delivered_time
        interval = max(send_elapsed, ack_elapsed)
        # The next sample's send interval starts at this packet's departure.
        self.first_sent_time = sent_time
        delivered = self.delivered - stamp.delivered
        if interval <= 0 or delivered <= 0:
            return
        if math.isfinite(self.min_rtt) and interval < self.min_rtt:
            # Shorter than a round trip: ACK compression, not a rate (the draft's guard).
            return
        rate = delivered / interval
        if stamp.app_limited and rate <= self.btl_bw:
            return
        self.samples += 1
        samples = self._bw_samples
        while samples and samples[-1][1] <= rate:
            samples.pop()
        samples.append((self.round_count, rate))
        while samples[0][0] <= self.round_count - BW_WINDOW_ROUNDS:
            samples.popleft()
        self.btl_bw = samples[0][1]

    def _check_full_pipe(self, round_delivered: int, round_lost: int) -> None:
        if self.btl_bw >= self._full_bw * FULL_BW_GROWTH:
            self._full_bw = self.btl_bw
            self._full_bw_count = 0
        else:
            self._full_bw_count += 1
            if self._full_bw_count >= FULL_BW_ROUNDS:
                self.filled_pipe = True
        lost_packets = round_lost / self.mss
        # Not before the flow has a model: a flow starting while another filled the
        # queue can lose a whole first window, and leaving STARTUP with a few KB/s as
        # its estimate starved it for tens of seconds at 200 ms (it then probes up by
        # only 25 % per 8 rounds).
        if (lost_packets >= STARTUP_LOSS_MIN_PACKETS
                and round_delivered >= INITIAL_CWND_PACKETS * self.mss
                and round_lost > STARTUP_LOSS_THRESHOLD * (round_delivered + round_lost)):
            # The queue overflowed: the model's bandwidth is what got through.
            self.filled_pipe = True

    def _probe_rtt_cwnd(self) -> int:
        return max(PROBE_RTT_PACKETS * self.mss, self.bdp(PROBE_RTT_CWND_GAIN))

    def bdp(self, gain: float = 1.0) -> int:
        if not self.btl_bw or not math.isfinite(self.min_rtt):
            return INITIAL_CWND_PACKETS * self.mss
        return int(gain * self.btl_bw * self.min_rtt)

    # ------------------------------------------------------------------ states

    def _update_mode(self, now: float, inflight: int) -> None:
        if self.mode is Mode.STARTUP and self.filled_pipe:
            self.mode = Mode.DRAIN
            self.pacing_gain = DRAIN_GAIN
            self.cwnd_gain = STARTUP_CWND_GAIN
        if self.mode is Mode.DRAIN and inflight <= self.bdp():
            self._enter_probe_bw(now)
        if self.mode is Mode.PROBE_BW:
            self._advance_cycle(now, inflight)
        self._update_probe_rtt(now, inflight)

    def _enter_probe_bw(self, now: float) -> None:
        self.mode = Mode.PROBE_BW
        self.cwnd_gain = CWND_GAIN
        # Start in a cruising phase, as BBR does after DRAIN.
        self.cycle_index = 2
        self.pacing_gain = PROBE_BW_GAINS[self.cycle_index]
        self._cycle_stamp = now

    def _advance_cycle(self, now: float, inflight: int) -> None:
        elapsed = now - self._cycle_stamp > self.min_rtt
        gain = self.pacing_gain
        if gain > 1.0:
            advance = elapsed and inflight >= self.bdp(gain)
            # Do not probe for longer than a few round trips if the window never fills.
            advance = advance or now - self._cycle_stamp > 4 * self.min_rtt
        elif gain < 1.0:
            advance = elapsed or inflight <= self.bdp()
        else:
            advance = elapsed
        if advance:
            self.cycle_index = (self.cycle_index + 1) % len(PROBE_BW_GAINS)
            self.pacing_gain = PROBE_BW_GAINS[self.cycle_index]
            self._cycle_stamp = now

    def _update_probe_rtt(self, now: float, inflight: int) -> None:
        expired = self._min_rtt_expired or now - self.min_rtt_stamp > MIN_RTT_WINDOW
        self._min_rtt_expired = False
        if self.mode is not Mode.PROBE_RTT and math.isfinite(self.min_rtt) and expired:
            self.mode = Mode.PROBE_RTT
            self.pacing_gain = 1.0
            self._prior_cwnd = max(self._prior_cwnd, self.cwnd)
            self._probe_rtt_done = None
            self._probe_rtt_round_done = False
        if self.mode is not Mode.PROBE_RTT:
            return
        if self._probe_rtt_done is None:
            # The window in force is never below MIN_WINDOW: waiting for less in flight
            # than that would keep a slow or shared path in PROBE_RTT for good.
            if inflight <= max(self._probe_rtt_cwnd(), MIN_WINDOW):
                self._probe_rtt_done = now + PROBE_RTT_TIME
                self._probe_rtt_round_done = False
                self.next_round_delivered = self.delivered
        elif self._probe_rtt_round_done and now >= self._probe_rtt_done:
            self.min_rtt_stamp = now
            if self.filled_pipe:
                self._enter_probe_bw(now)
            else:
                self.mode = Mode.STARTUP
                self.pacing_gain = STARTUP_GAIN
                self.cwnd_gain = STARTUP_CWND_GAIN

    # ------------------------------------------------------------------ outputs

    def _update_outputs(self) -> None:
        mss = self.mss
        if self.btl_bw:
            rate = self.pacing_gain * self.btl_bw
            if not self.filled_pipe and math.isfinite(self.min_rtt):
                # As Linux's BBR: until the pipe is full the pacing rate only rises, from
                # STARTUP_GAIN x the initial window per RTT. The first samples come from
                # the application's small first messages (app-limited, a few KB/s); taken
                # as the rate they made STARTUP start ~8 doublings below the link.
                floor = STARTUP_GAIN * INITIAL_CWND_PACKETS * mss / self.min_rtt
                prior = self.pacing_rate if math.isfinite(self.pacing_rate) else 0.0
                rate = max(rate, floor, prior)
            self.pacing_rate = rate
        if self.mode is Mode.PROBE_RTT:
            cwnd = self._probe_rtt_cwnd()
        elif self._rto_round is not None:
            cwnd = MIN_CWND_PACKETS * mss
        elif self.btl_bw and math.isfinite(self.min_rtt):
            cwnd = self.bdp(self.cwnd_gain) + (
                CWND_ADD_PACKETS if self.mode is Mode.PROBE_BW else 3) * mss
            if not self.filled_pipe:
                # STARTUP grows at least as fast as slow start would.
                cwnd = max(cwnd, min(self.cwnd, self.delivered + INITIAL_CWND_PACKETS * mss))
        else:
            cwnd = max(self.cwnd, INITIAL_CWND_PACKETS * mss + self.delivered)
        if self._rto_round is None:
            # Never below the window that keeps a LAN or loopback path full: there the
            # model's BDP (tiny min RTT) would leave a CPU-bound sender waiting on SACKs.
            cwnd = max(cwnd, MIN_WINDOW)
        self.cwnd = max(MIN_CWND_PACKETS * mss, min(cwnd, self.max_cwnd))
        if self.min_rtt < PACING_MIN_RTT:
            # A path this short needs no pacing (SACKs clock the sender), and timers of
            # ~1 ms could not pace it anyway: they would only cost CPU.
            self.pacing_rate = math.inf
        self.pacing_burst = self._burst()

    def _burst(self) -> float:
        if not math.isfinite(self.pacing_rate):
            return float(self.max_cwnd)
        return max(PACING_BURST_PACKETS * self.mss, self.pacing_rate * PACING_BURST_SECONDS)
