"""A userspace link emulator: a UDP relay with delay, a rate limit, loss and reordering.

This kernel has no netem qdisc, so wide-area paths are emulated in userspace, between two
peers on loopback. A :class:`Relay` owns two UDP sockets on 127.0.0.1: peer A talks to
the *a-side* socket (which stands for B), peer B to the *b-side* socket (which stands
for A). Each direction goes through a :class:`Link`:

1. random loss (``loss``, a probability per datagram);
2. a bottleneck of ``rate`` bits per second with a drop-tail queue of ``queue_bytes``
   (default: one bandwidth-delay product, the path's rate x its round trip);
3. a one-way ``delay``; with probability ``reorder`` a datagram is held
   ``reorder_delay`` longer, so later ones overtake it.

Rates count UDP payload bytes (DTLS records), not IP/UDP headers.

ICE is steered through the relay by rewriting the candidates the peers exchange
(:func:`route_candidates`): each side's SDP keeps one IPv4 UDP host candidate on
127.0.0.1 with its port replaced by the relay's socket for it, so each peer sees the
relay as the other peer and nothing else. (Put the peers' own host candidates on
127.0.0.1 only, e.g. with ``aioice.ice.get_host_addresses``.)

Cheap in CPU: a burst of datagrams is read per readiness event, departures are
computed arithmetically (no per-packet timer), and one timer per link fires when the
earliest datagram is due and sends everything due by then. Self-checks, so that a
figure measured through it is the path's and not the emulator's: how late datagrams
left compared with their due time, datagrams the kernel dropped on the relay's own
sockets (``SO_RXQ_OVFL``) and failed sends. :meth:`Relay.verdict` says whether the
emulator kept up.

Two relays can share one :class:`Link` per direction: two transfers through one
bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
import re
import socket
import statistics
import struct
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SOCKET_BUFFER = 4 * 1024 * 1024
BURST = 64
MAX_DATAGRAM = 65536
# Send everything due within this much of now in one timer callback.
TIMER_SLACK = 0.0002
# The emulator kept up if 99 % of datagrams left within this of their due time, or
# within LATE_SHARE of the path's round trip if that is more (a late departure adds
# jitter, not lost capacity: departures are computed from arrival times, so a late
# timer sends a burst and the link's average rate is kept).
LATE_LIMIT = 0.002
LATE_SHARE = 0.1

Send = Callable[[bytes], None]


@dataclass(frozen=True)
class Conditions:
    """One direction of a path (both directions usually get the same)."""

    rate: float | None = None  # bits per second; None: no rate limit
    delay: float = 0.0  # one-way, seconds
    loss: float = 0.0  # probability per datagram
    reorder: float = 0.0  # probability per datagram
    reorder_delay: float = 0.002  # extra delay of a reordered datagram, seconds
    queue_bytes: int | None = None  # drop-tail queue; None: one BDP (rate x 2 x delay)

    def queue_limit(self) -> float:
        if self.queue_bytes is not None:
            return float(self.queue_bytes)
        if self.rate is None:
            return float("inf")
        return max(self.rate / 8 * 2 * self.delay, 64 * 1500)

    def describe(self) -> str:
        parts = []
        if self.rate is not None:
            parts.append(f"{self.rate / 1e6:g} Mbit/s")
        parts.append(f"RTT {2 * self.delay * 1000:g} ms")
        if self.loss:
            parts.append(f"{self.loss * 100:g} % loss")
        if self.reorder:
            parts.append(f"{self.reorder * 100:g} % reordering")
        return ", ".join(parts)


class Link:
    """One direction: loss, rate limit with a drop-tail queue, delay, reordering."""

    def __init__(self, conditions: Conditions, seed: int | None = None) -> None:
        self.conditions = conditions
        self._random = random.Random(seed).random
        self._byte_time = 8 / conditions.rate if conditions.rate else 0.0
        self._queue_limit = conditions.queue_limit()
        self._busy_until = 0.0  # when the bottleneck finishes its last accepted datagram
        self._in_order: deque[tuple[float, bytes, Send]] = deque()
        self._late: list[tuple[float, int, bytes, Send]] = []  # reordered: a heap
        self._late_sequence = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        # Figures.
        self.received = 0
        self.lost = 0
        self.dropped = 0  # queue overflow
        self.delivered = 0
        self.delivered_bytes = 0
        self.send_failures = 0
        self.lateness = array("f")  # seconds past due, per delivered datagram
        self.queue_delay = array("f")  # seconds waited for the bottleneck, per datagram

    def submit(self, data: bytes, send: Send, now: float) -> None:
        """A datagram arrives at the link's input at ``now`` (loop time)."""
        self.received += 1
        conditions = self.conditions
        if conditions.loss and self._random() < conditions.loss:
            self.lost += 1
            return
        if self._byte_time:
            start = self._busy_until if self._busy_until > now else now
            backlog = (start - now) / self._byte_time
            if backlog + len(data) > self._queue_limit:
                self.dropped += 1
                return
            self._busy_until = start + len(data) * self._byte_time
            self.queue_delay.append(start - now)
            due = self._busy_until + conditions.delay
        else:
            due = now + conditions.delay
        if conditions.reorder and self._random() < conditions.reorder:
            self._late_sequence += 1
            heapq.heappush(self._late, (due + conditions.reorder_delay, self._late_sequence,
                                        data, send))
            self._arm(due + conditions.reorder_delay)
        else:
            self._in_order.append((due, data, send))
            if len(self._in_order) == 1:
                self._arm(due)

    def _arm(self, due: float) -> None:
        if self._timer is not None and self._timer_at <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = self._loop
        assert loop is not None
        self._timer_at = due
        self._timer = loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        limit = now + TIMER_SLACK
        in_order = self._in_order
        late = self._late
        lateness = self.lateness.append
        while True:
            if in_order and in_order[0][0] <= limit and (not late or in_order[0][0] <= late[0][0]):
                due, data, send = in_order.popleft()
            elif late and late[0][0] <= limit:
                due, _, data, send = heapq.heappop(late)
            else:
                break
            try:
                send(data)
            except OSError:
                self.send_failures += 1
                continue
            self.delivered += 1
            self.delivered_bytes += len(data)
            lateness(now - due if now > due else 0.0)
        following = min(in_order[0][0] if in_order else float("inf"),
                        late[0][0] if late else float("inf"))
        if following != float("inf"):
            self._arm(following)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._in_order.clear()
        self._late.clear()

    def late_p99(self) -> float:
        if not self.lateness:
            return 0.0
        ordered = sorted(self.lateness)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def late_p50(self) -> float:
        return statistics.median(self.lateness) if self.lateness else 0.0

    def queue_delay_p50(self) -> float:
        return statistics.median(self.queue_delay) if self.queue_delay else 0.0


class _Side:
    """One relay socket: reads bursts, counts kernel drops, passes datagrams on."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_datagram: Callable[[bytes, float], None], host: str) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setblocking(False)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        self.count_drops = True
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        except OSError:
            self.count_drops = False
        # Kernel receive timestamps: a datagram's arrival time is when the kernel got
        # it, not when this process found time to read it.
        self.timestamps = True
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            self.timestamps = False
        self.read_lag = array("f")
        self.socket.bind((host, 0))
        self.address: tuple[str, int] = self.socket.getsockname()
        self.peer: tuple[str, int] | None = None
        self.kernel_drops = 0
        self._on_datagram = on_datagram
        self._loop = loop
        loop.add_reader(self.socket.fileno(), self._read_ready)

    def _read_ready(self) -> None:
        receive = self.socket.recvmsg
        space = socket.CMSG_SPACE(4) + socket.CMSG_SPACE(16)
        now = self._loop.time()
        # Kernel timestamps are wall-clock: convert them to the loop's clock.
        offset = now - time.time()
        lag = self.read_lag.append
        for _ in range(BURST):
            try:
                data, ancillary, _flags, _source = receive(MAX_DATAGRAM, space)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            arrival = now
            for level, kind, value in ancillary:
                if level != socket.SOL_SOCKET:
                    continue
                if kind == SO_TIMESTAMPNS and len(value) >= 16:
                    seconds, nanoseconds = struct.unpack("qq", value[:16])
                    stamped = seconds + nanoseconds * 1e-9 + offset
                    if stamped < now:
                        arrival = stamped
                elif kind == SO_RXQ_OVFL and len(value) >= 4:
                    self.kernel_drops = struct.unpack("I", value[:4])[0]
            lag(now - arrival)
            # Whatever the source: a browser may check from several local sockets.
            self._on_datagram(data, arrival)

    def sender(self) -> Send:
        def send(data: bytes) -> None:
            if self.peer is not None:
                self.socket.sendto(data, self.peer)

        return send

    def close(self) -> None:
        self._loop.remove_reader(self.socket.fileno())
        self.socket.close()


class Relay:
    """Peer A <-> a-side socket ~~link~~ b-side socket <-> peer B."""

    def __init__(self, forward: Link, backward: Link, host: str = "127.0.0.1") -> None:
        """``forward`` carries A -> B, ``backward`` B -> A; both may be shared."""
        self.forward = forward
        self.backward = backward
        self._host = host
        self._a: _Side | None = None
        self._b: _Side | None = None
        self._started_cpu = 0.0
        self._started_wall = 0.0
        # Bytes this relay delivered to B (its own flow, when links are shared).
        self.delivered_to_b = 0

    async def start(self) -> Relay:
        loop = asyncio.get_running_loop()
        for link in (self.forward, self.backward):
            link._loop = loop
        forward, backward = self.forward, self.backward
        # Created before the sides so the callbacks can reach the other side's sender.
        sends: dict[str, Send] = {}
        self._a = _Side(loop, lambda data, at: forward.submit(data, sends["to_b"], at),
                        self._host)
        self._b = _Side(loop, lambda data, at: backward.submit(data, sends["to_a"], at),
                        self._host)
        to_b = self._b.sender()

        def count_to_b(data: bytes) -> None:
            to_b(data)
            self.delivered_to_b += len(data)

        sends["to_b"] = count_to_b
        sends["to_a"] = self._a.sender()
        self._started_cpu = time.process_time()
        self._started_wall = time.monotonic()
        return self

    @property
    def a_address(self) -> tuple[str, int]:
        """Where peer A sends (A's view of B)."""
        assert self._a is not None
        return self._a.address

    @property
    def b_address(self) -> tuple[str, int]:
        """Where peer B sends (B's view of A)."""
        assert self._b is not None
        return self._b.address

    def set_peer_a(self, address: tuple[str, int]) -> None:
        assert self._a is not None
        self._a.peer = address

    def set_peer_b(self, address: tuple[str, int]) -> None:
        assert self._b is not None
        self._b.peer = address

    def kernel_drops(self) -> int:
        return sum(side.kernel_drops for side in (self._a, self._b) if side is not None)

    def cpu_share(self) -> float:
        """Process CPU over wall time since start (the whole process, an upper bound)."""
        wall = time.monotonic() - self._started_wall
        return (time.process_time() - self._started_cpu) / wall if wall > 0 else 0.0

    def read_lag_p99(self) -> float:
        lags = sorted(lag for side in (self._a, self._b) if side is not None
                      for lag in side.read_lag)
        return lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else 0.0

    def verdict(self) -> tuple[bool, str]:
        """Whether the emulator kept up, and its own figures in one line."""
        late = max(self.forward.late_p99(), self.backward.late_p99())
        lag = self.read_lag_p99()
        drops = self.kernel_drops()
        failures = self.forward.send_failures + self.backward.send_failures
        limit = max(LATE_LIMIT, LATE_SHARE * 2 * self.forward.conditions.delay)
        ok = late <= limit and drops == 0 and failures == 0
        median = max(self.forward.late_p50(), self.backward.late_p50())
        text = (f"emulator {'ok' if ok else 'LATE'}: departures late by p50 "
                f"{median * 1000:.2f} ms, p99 {late * 1000:.2f} ms (limit {limit * 1000:.1f}), "
                f"p99 read lag "
                f"{lag * 1000:.2f} ms, relay socket drops {drops}, send failures {failures}")
        return ok, text

    def close(self) -> None:
        for side in (self._a, self._b):
            if side is not None:
                side.close()
        self._a = self._b = None


async def start_relay(conditions: Conditions, seed: int | None = None,
                      forward: Link | None = None, backward: Link | None = None) -> Relay:
    """A relay with the same conditions both ways (or the given, possibly shared, links)."""
    forward = forward or Link(conditions, seed)
    backward = backward or Link(conditions, None if seed is None else seed + 1)
    return await Relay(forward, backward).start()


_CANDIDATE = re.compile(
    r"^a=candidate:(?P<foundation>\S+) (?P<component>\d+) (?P<transport>\S+) "
    r"(?P<priority>\d+) (?P<address>\S+) (?P<port>\d+) typ (?P<type>\S+)(?P<rest>.*)$")


def route_candidates(sdp: str, relay_address: tuple[str, int],
                     host: str | None = "127.0.0.1") -> tuple[str, tuple[str, int]]:
    """Make ``sdp``'s only candidate the relay's; return it and the peer's real address.

    Keeps one UDP host candidate on ``host`` (or, with ``host=None``, the first IPv4
    UDP host candidate: Chromium gathers none on 127.0.0.1, only on the machine's own
    interface addresses, which are delivered locally like loopback) with its address
    and port replaced by ``relay_address``, and drops every other candidate line.
    Raises ValueError if there is none.
    """
    lines = sdp.splitlines()
    kept: list[str] = []
    original: tuple[str, int] | None = None
    for line in lines:
        match = _CANDIDATE.match(line)
        if match is None:
            kept.append(line)
            continue
        address = match["address"]
        wanted = address == host if host is not None else (
            address.count(".") == 3 and not address.endswith(".local"))
        if (original is None and match["transport"].lower() == "udp"
                and match["type"] == "host" and wanted):
            original = (address, int(match["port"]))
            kept.append(
                f"a=candidate:{match['foundation']} {match['component']} {match['transport']} "
                f"{match['priority']} {relay_address[0]} {relay_address[1]} typ host"
                f"{match['rest']}")
    if original is None:
        raise ValueError(f"no UDP host candidate on {host or 'IPv4'} in the SDP")
    text = "\r\n".join(kept)
    return (text + "\r\n" if sdp.endswith(("\n", "\r\n")) else text), original


def path_figures(relay: Relay) -> dict[str, Any]:
    """What the relay saw of the data direction (A -> B), for reports."""
    link = relay.forward
    return {
        "received": link.received,
        "lost": link.lost,
        "queue_drops": link.dropped,
        "delivered_bytes": link.delivered_bytes,
        "queue_delay_p50": link.queue_delay_p50(),
        "late_p99": max(link.late_p99(), relay.backward.late_p99()),
        "kernel_drops": relay.kernel_drops(),
    }
