"""The congestion controller's state machine, driven by hand on synthetic paths.

A tiny packet-level path model (a bottleneck of RATE bytes/s with a drop-tail queue of
one BDP, a fixed RTT, optional random loss) feeds the controller one ACK per packet, as
the SCTP sender would per SACK. Time is simulated: nothing here depends on the clock.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field

from rtcxfer.fastpath.bbr import (
    INITIAL_CWND_PACKETS,
    MIN_CWND_PACKETS,
    MIN_RTT_WINDOW,
    MIN_WINDOW,
    PROBE_RTT_CWND_GAIN,
    PROBE_RTT_PACKETS,
    STARTUP_GAIN,
    BbrController,
    Mode,
    SendStamp,
)

MSS = 1160
RATE = 12.5e6 * MSS / 1225  # user bytes/s through a 100 Mbit/s link of DTLS records
MAX_CWND = 32 * 1024 * 1024


@dataclass(order=True)
class Ack:
    at: float
    sequence: int
    sent_at: float = field(compare=False)
    stamp: SendStamp | None = field(compare=False)
    lost: bool = field(compare=False)
    flow: int = field(default=0, compare=False)


class Path:
    """A bottleneck with a drop-tail queue, a propagation delay and random loss."""

    def __init__(self, rate: float, rtt: float, loss: float = 0.0, seed: int = 1) -> None:
        self.rate = rate
        self.rtt = rtt
        self.loss = loss
        self.queue_limit = rate * rtt  # one BDP
        self.busy_until = 0.0
        self.random = random.Random(seed)
        self.acks: list[Ack] = []
        self.sequence = 0
        self.inflight = 0
        self.delivered = 0
        self.max_queue_delay = 0.0
        self.queue_delays: list[float] = []

    def send(self, now: float, stamp: SendStamp | None, flow: int = 0) -> None:
        self.sequence += 1
        if flow == 0:
            self.inflight += MSS
        lost = self.random.random() < self.loss
        start = max(self.busy_until, now)
        if not lost and (start - now) * self.rate + MSS > self.queue_limit:
            lost = True  # drop-tail
        if lost:
            # The sender learns of a loss about a round trip later (SACK gaps).
            heapq.heappush(self.acks, Ack(now + self.rtt * 1.1, self.sequence, now, stamp, True,
                                          flow))
            return
        self.queue_delays.append(start - now)
        self.busy_until = start + MSS / self.rate
        heapq.heappush(self.acks, Ack(self.busy_until + self.rtt, self.sequence, now, stamp,
                                      False, flow))


def send_one(controller: BbrController, path: Path, now: float, inflight: int,
             flow: int = 0) -> float:
    """One packet of ``controller``'s flow (``inflight`` before it) onto ``path``; when
    its pacing lets it send the next."""
    path.send(now, controller.on_send(now, inflight), flow=flow)
    pacing = controller.pacing_rate
    return now + (MSS / pacing if math.isfinite(pacing) else 0.0)


def acknowledge(controller: BbrController, ack: Ack, inflight: int) -> None:
    """Tell ``controller`` that ``ack``'s packet arrived or was lost (``inflight`` after)."""
    if ack.lost:
        controller.on_ack(ack.at, 0, MSS, inflight, None, ack.sent_at, None)
    else:
        controller.on_ack(ack.at, MSS, 0, inflight, ack.stamp, ack.sent_at,
                          ack.at - ack.sent_at)


def run(controller: BbrController, path: Path, seconds: float, start: float = 0.0,
        app_limit: float | None = None) -> float:
    """Send as the controller allows (cwnd and pacing) for ``seconds``; returns the end."""
    now = start
    next_send = now
    end = start + seconds
    while now < end:
        can_send = path.inflight + MSS <= controller.cwnd
        if app_limit is not None and path.inflight >= app_limit:
            can_send = False
            controller.on_app_limited(path.inflight)
        if can_send and next_send <= now:
            next_send = send_one(controller, path, now, path.inflight)
            continue
        candidates = [end]
        if path.acks:
            candidates.append(path.acks[0].at)
        if can_send:
            candidates.append(next_send)
        now = max(now, min(candidates))
        while path.acks and path.acks[0].at <= now:
            ack = heapq.heappop(path.acks)
            path.inflight -= MSS
            if not ack.lost:
                path.delivered += MSS
            acknowledge(controller, ack, path.inflight)
    return now


def test_startup_finds_the_bandwidth_then_drains_and_cruises() -> None:
    path = Path(RATE, 0.1)
    controller = BbrController(MSS, 0.0, MAX_CWND)
    assert controller.mode is Mode.STARTUP
    end = run(controller, path, 4.0)
    assert controller.filled_pipe
    assert controller.mode is Mode.PROBE_BW
    assert 0.9 * RATE <= controller.btl_bw <= 1.1 * RATE
    assert 0.099 <= controller.min_rtt <= 0.101
    # The window is about cwnd_gain x BDP, far above aiortc's old 256 KiB cap.
    assert controller.cwnd >= RATE * 0.1
    # Cruising: most of the link is used from here on.
    before = path.delivered
    run(controller, path, 4.0, start=end)
    assert (path.delivered - before) / 4.0 >= 0.9 * RATE


def test_random_loss_does_not_collapse_the_rate() -> None:
    for loss in (0.005, 0.02):
        path = Path(RATE, 0.05, loss=loss, seed=7)
        controller = BbrController(MSS, 0.0, MAX_CWND)
        end = run(controller, path, 3.0)
        before = path.delivered
        run(controller, path, 5.0, start=end)
        goodput = (path.delivered - before) / 5.0
        # Reno would manage about MSS/RTT x 1.22/sqrt(p): 0.4 MB/s at 0.5 %.
        assert goodput >= 0.8 * RATE * (1 - loss), loss
        assert controller.btl_bw >= 0.85 * RATE


def test_startup_exits_when_the_queue_overflows() -> None:
    """Heavy loss in a round (a full drop-tail queue) ends STARTUP, as in BBRv2."""
    controller = BbrController(MSS, 0.0, MAX_CWND)
    stamp = controller.on_send(0.0, 0)
    controller.on_ack(0.05, 20 * MSS, 0, 0, stamp, 0.0, 0.05)
    assert controller.mode is Mode.STARTUP
    stamp = controller.on_send(0.05, 0)
    controller.on_ack(0.10, 60 * MSS, 30 * MSS, 0, stamp, 0.05, 0.05)
    stamp = controller.on_send(0.10, 0)
    controller.on_ack(0.15, 60 * MSS, 0, 0, stamp, 0.10, 0.05)
    assert controller.filled_pipe
    assert controller.mode in (Mode.DRAIN, Mode.PROBE_BW)


def test_losing_a_whole_first_window_does_not_end_startup() -> None:
    """A flow that starts while another has filled the queue may lose everything it
    sends at first: with nothing delivered it has no model yet, so the loss does not end
    STARTUP (ending it left the flow at a few KB/s, probing up 25 % per 8 rounds)."""
    controller = BbrController(MSS, 0.0, MAX_CWND)
    stamp = controller.on_send(0.0, 0)
    controller.on_ack(0.05, 2 * MSS, 0, 0, stamp, 0.0, 0.05)
    for round_number in range(1, 4):
        stamp = controller.on_send(0.05 * round_number, 0)
        controller.on_ack(0.05 * (round_number + 1), MSS, 30 * MSS, 0, stamp,
                          0.05 * round_number, 0.05)
    assert controller.mode is Mode.STARTUP
    assert not controller.filled_pipe


def test_a_few_random_losses_do_not_end_startup() -> None:
    controller = BbrController(MSS, 0.0, MAX_CWND)
    now = 0.0
    delivered_per_round = 20 * MSS
    for _ in range(6):
        stamp = controller.on_send(now, 0)
        now += 0.05
        controller.on_ack(now, delivered_per_round, 2 * MSS, 0, stamp, now - 0.05, 0.05)
        delivered_per_round *= 2
    assert controller.mode is Mode.STARTUP
    assert not controller.filled_pipe


def test_probe_rtt_after_ten_seconds_without_a_lower_rtt() -> None:
    """The route gets longer: no sample reaches the old min RTT, PROBE_RTT re-measures."""
    path = Path(RATE, 0.05)
    controller = BbrController(MSS, 0.0, MAX_CWND)
    end = run(controller, path, 3.0)
    assert controller.mode is Mode.PROBE_BW
    path.rtt = 0.06
    modes: set[Mode] = set()
    cwnds: list[int] = []
    now = end
    for _ in range(int((MIN_RTT_WINDOW + 2) / 0.05)):
        now = run(controller, path, 0.05, start=now)
        modes.add(controller.mode)
        if controller.mode is Mode.PROBE_RTT:
            cwnds.append(controller.cwnd)
    assert Mode.PROBE_RTT in modes
    # Half a BDP in flight while probing (BBRv2), at least PROBE_RTT_PACKETS.
    assert PROBE_RTT_PACKETS * MSS <= min(cwnds) <= 0.6 * RATE * 0.06
    now = run(controller, path, 1.0, start=now)
    assert controller.mode is Mode.PROBE_BW
    assert now - controller.min_rtt_stamp < MIN_RTT_WINDOW
    assert 0.059 <= controller.min_rtt <= 0.061


def test_app_limited_samples_do_not_lower_the_estimate() -> None:
    path = Path(RATE, 0.05)
    controller = BbrController(MSS, 0.0, MAX_CWND)
    end = run(controller, path, 3.0)
    estimate = controller.btl_bw
    # The application sends a trickle for a few seconds (ten packets in flight).
    run(controller, path, 3.0, start=end, app_limit=10 * MSS)
    assert controller.btl_bw >= 0.9 * estimate


def test_a_timeout_shrinks_the_window_for_a_round_then_the_model_returns() -> None:
    path = Path(RATE, 0.05)
    controller = BbrController(MSS, 0.0, MAX_CWND)
    end = run(controller, path, 3.0)
    before = controller.cwnd
    controller.on_timeout()
    assert controller.cwnd == MIN_CWND_PACKETS * MSS
    assert controller.timeouts == 1
    run(controller, path, 1.0, start=end)
    assert controller.cwnd >= 0.5 * before


def test_pacing_rate_follows_the_gain_cycle() -> None:
    path = Path(RATE, 0.05)
    controller = BbrController(MSS, 0.0, MAX_CWND)
    now = run(controller, path, 3.0)
    gains = set()
    for _ in range(40):
        now = run(controller, path, 0.025, start=now)
        gains.add(round(controller.pacing_gain, 2))
    assert {1.25, 0.75, 1.0} <= gains
    assert controller.pacing_rate <= 1.3 * controller.btl_bw


def test_the_queue_stays_short() -> None:
    """p50 queueing delay under load well under half the path RTT (RTT <= 1.5x)."""
    path = Path(RATE, 0.05)
    controller = BbrController(MSS, 0.0, MAX_CWND)
    end = run(controller, path, 3.0)
    path.queue_delays.clear()
    run(controller, path, 5.0, start=end)
    delays = sorted(path.queue_delays)
    assert delays[len(delays) // 2] <= 0.5 * 0.05


class Reno:
    """A loss-based flow (Reno, as Chromium's SCTP): slow start, halving once per RTT."""

    def __init__(self) -> None:
        self.cwnd = 10.0 * MSS
        self.ssthresh = math.inf
        self.inflight = 0
        self.delivered = 0
        self.cut_at = -1.0

    def on_ack(self, ack: Ack) -> None:
        self.inflight -= MSS
        if ack.lost:
            # One reduction per window of data (the losses of one round trip).
            if ack.sent_at > self.cut_at:
                self.cwnd = max(self.cwnd / 2, 2.0 * MSS)
                self.ssthresh = self.cwnd
                self.cut_at = ack.at
            return
        self.delivered += MSS
        self.cwnd += MSS if self.cwnd < self.ssthresh else MSS * MSS / self.cwnd


def run_shared(controller: BbrController, reno: Reno, path: Path, seconds: float,
               start: float = 0.0) -> float:
    """The controller's flow and a Reno flow through one bottleneck."""
    now = start
    next_send = now
    end = start + seconds
    while now < end:
        while reno.inflight + MSS <= reno.cwnd:
            reno.inflight += MSS
            path.send(now, None, flow=1)
        can_send = path.inflight + MSS <= controller.cwnd
        if can_send and next_send <= now:
            next_send = send_one(controller, path, now, path.inflight)
            continue
        candidates = [end]
        if path.acks:
            candidates.append(path.acks[0].at)
        if can_send:
            candidates.append(next_send)
        now = max(now, min(candidates))
        while path.acks and path.acks[0].at <= now:
            ack = heapq.heappop(path.acks)
            if ack.flow == 1:
                reno.on_ack(ack)
                continue
            path.inflight -= MSS
            if not ack.lost:
                path.delivered += MSS
            acknowledge(controller, ack, path.inflight)
    return now


def reno_share(seconds: float = 30.0) -> tuple[float, BbrController]:
    path = Path(RATE, 0.05, seed=3)
    controller = BbrController(MSS, 0.0, MAX_CWND)
    reno = Reno()
    end = run_shared(controller, reno, path, 5.0)
    before = (path.delivered, reno.delivered)
    run_shared(controller, reno, path, seconds, start=end)
    ours = path.delivered - before[0]
    theirs = reno.delivered - before[1]
    return theirs / (ours + theirs), controller


def test_a_reno_flow_sharing_the_bottleneck_keeps_a_fair_part() -> None:
    """A loss-based flow (Reno, as Chromium's SCTP) that can fill the one-BDP drop-tail
    buffer is not starved: its queue makes the model-based flow window-limited (its
    window is its own BDP + 100 packets), which then gives way."""
    share, controller = reno_share()
    assert controller.mode is not Mode.STARTUP
    assert 0.25 <= share <= 0.75, share


def test_probe_rtt_ends_on_a_path_whose_half_bdp_is_below_the_minimum_window() -> None:
    """2 MB/s at 50 ms: half a BDP (50 KB) is below MIN_WINDOW, the window in force;
    PROBE_RTT must still end (it once waited for that little in flight for good)."""
    rate = 2e6
    path = Path(rate, 0.05)
    controller = BbrController(MSS, 0.0, MAX_CWND)
    now = run(controller, path, 3.0)
    assert controller.bdp(PROBE_RTT_CWND_GAIN) < MIN_WINDOW
    modes: list[Mode] = []
    for _ in range(int((MIN_RTT_WINDOW + 3) / 0.1)):
        now = run(controller, path, 0.1, start=now)
        modes.append(controller.mode)
    assert Mode.PROBE_RTT in modes
    assert modes[-1] is Mode.PROBE_BW
    assert modes.count(Mode.PROBE_RTT) <= 10  # 200 ms and a round trip, not seconds


def test_startup_pacing_starts_from_the_initial_window_and_only_rises() -> None:
    """The first samples come from small application messages (app-limited): STARTUP's
    pacing rate stays at least STARTUP_GAIN x the initial window per RTT, and never
    falls while the pipe is not full (as Linux's BBR)."""
    controller = BbrController(MSS, 0.0, MAX_CWND)
    floor = STARTUP_GAIN * INITIAL_CWND_PACKETS * MSS / 0.2
    stamp = controller.on_send(0.0, 0)
    controller.on_app_limited(300)
    controller.on_ack(0.2, 300, 0, 0, stamp, 0.0, 0.2)  # a 300-byte message, one RTT
    assert 0 < controller.btl_bw < 2000
    assert controller.pacing_rate >= floor
    rates = [controller.pacing_rate]
    now = 0.2
    delivered = 40 * MSS
    for _ in range(5):
        stamp = controller.on_send(now, 0)
        now += 0.2
        controller.on_ack(now, delivered, 0, 0, stamp, now - 0.2, 0.2)
        rates.append(controller.pacing_rate)
        delivered = delivered * 2 if len(rates) < 4 else MSS  # then a low sample
    assert controller.mode is Mode.STARTUP
    assert rates == sorted(rates)
    assert rates[-1] > floor


def run_two(rtt: float, second_start: float, seconds: float, seed: int
            ) -> tuple[float, float]:
    """Two controllers' flows through one bottleneck, the second starting later; the
    bytes each delivered from 5 s after the second started."""
    path = Path(RATE, rtt, seed=seed)
    flows: list[BbrController | None] = [BbrController(MSS, 0.0, MAX_CWND), None]
    inflight, delivered, next_send = [0, 0], [0, 0], [0.0, 0.0]
    now, mark = 0.0, [0, 0]
    measuring = second_start + 5.0
    while now < seconds:
        if flows[1] is None and now >= second_start:
            flows[1] = BbrController(MSS, now, MAX_CWND)
            next_send[1] = now
        sent = False
        for index, controller in enumerate(flows):
            if (controller is not None and inflight[index] + MSS <= controller.cwnd
                    and next_send[index] <= now):
                next_send[index] = send_one(controller, path, now, inflight[index], index)
                inflight[index] += MSS
                sent = True
        if sent:
            continue
        candidates = [seconds, second_start if flows[1] is None else seconds]
        if path.acks:
            candidates.append(path.acks[0].at)
        candidates += [next_send[index] for index, controller in enumerate(flows)
                       if controller is not None and inflight[index] + MSS <= controller.cwnd]
        before = now
        now = max(now, min(candidates))
        if before < measuring <= now:
            mark = list(delivered)
        while path.acks and path.acks[0].at <= now:
            ack = heapq.heappop(path.acks)
            controller = flows[ack.flow]
            assert controller is not None
            inflight[ack.flow] -= MSS
            if not ack.lost:
                delivered[ack.flow] += MSS
            acknowledge(controller, ack, inflight[ack.flow])
    return delivered[0] - mark[0], delivered[1] - mark[1]


def test_two_flows_converge_to_equal_shares() -> None:
    """Window-limited behind a shared queue, flows whose windows are proportional to
    their own estimates keep whatever split they reached; the additive part of the
    window (CWND_ADD_PACKETS, the same for every flow, as Vegas's alpha) makes the
    smaller flow gain until the shares are equal. The second flow starts during the
    first one's STARTUP overshoot, when the queue is full."""
    for rtt, seed in ((0.05, 1), (0.2, 2)):
        first, second = run_two(rtt, 2.0 + seed * 0.37, 25.0, seed)
        assert 0.8 <= second / first <= 1.25, (rtt, second / first)
        assert (first + second) / (25.0 - 7.0 - seed * 0.37) > 0.95 * RATE
