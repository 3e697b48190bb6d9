"""ICE-level pieces of the fast path: consent freshness per RFC 7675, burst reads.

aioice sends each consent check once with a 0.5 s timeout and gives up after 6 failures
in a row. Behind a full socket buffer or a busy receiver a check's answer can take longer
than 0.5 s for minutes, so a healthy but slow transfer got "Consent to send expired"
and stalled. ``ConsentConnection`` retransmits each check with the usual STUN timers
and lets consent expire only when no check has been answered for 30 s (RFC 7675
section 5.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Callable
from typing import Any

from aioice import Connection, stun
from aioice.ice import CONSENT_INTERVAL, CandidatePair, StunProtocol

logger = logging.getLogger(__name__)

# RFC 7675 section 5.1: consent expires 30 s after the last successful check.
CONSENT_TIMEOUT = 30.0

# Datagrams read per readiness event: one select() wakeup then moves a whole burst.
BURST_SIZE = 64
MAX_DATAGRAM = 65536

# aioice asks for 256 KiB; Linux caps requests at net.core.rmem_max, and a 1.2 KB
# datagram costs a few KiB of buffer accounting, so a full congestion window could
# overflow it while the receiving process waits for a CPU.
RECEIVE_BUFFER_SIZE = 2 * 1024 * 1024


def is_dtls(data: bytes) -> bool:
    # RFC 7983 demultiplexing: DTLS records start with a byte in 20..63.
    return 19 < data[0] < 64


class ConsentConnection(Connection):
    """aioice's ``Connection`` with RFC 7675 consent expiry instead of 6 quick failures."""

    async def query_consent(self) -> None:
        assert self.remote_password is not None
        loop = asyncio.get_running_loop()
        last_answer = loop.time()
        checks: dict[int, asyncio.Task[None]] = {}

        def answered() -> None:
            nonlocal last_answer
            last_answer = loop.time()

        try:
            while True:
                await asyncio.sleep(CONSENT_INTERVAL * (0.8 + 0.4 * random.random()))
                if loop.time() - last_answer >= CONSENT_TIMEOUT:
                    logger.info("Consent to send expired: no answer for %.0f s", CONSENT_TIMEOUT)
                    self._query_consent_task = None
                    await self.close()
                    return
                for component, pair in self._nominated.items():
                    # One check in flight per pair: its retransmissions cover the gap.
                    check = checks.get(component)
                    if check is None or check.done():
                        checks[component] = asyncio.create_task(
                            self._check_consent(pair, answered)
                        )
        finally:
            for check in checks.values():
                check.cancel()

    async def _check_consent(self, pair: CandidatePair, answered: Callable[[], None]) -> None:
        assert self.remote_password is not None
        request = self.build_request(pair, nominate=False)
        with contextlib.suppress(stun.TransactionError):
            await pair.protocol.request(
                request, pair.remote_addr, integrity_key=self.remote_password.encode("utf8")
            )
            answered()


def enlarge_receive_buffer(pair: CandidatePair) -> None:
    """Ask for a bigger receive buffer on the pair's socket (best effort, capped by the OS)."""
    transport: Any = getattr(pair.protocol, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_SIZE)


class BurstReader:
    """Reads up to BURST_SIZE datagrams per readiness event from one selector socket.

    asyncio's datagram transport reads one datagram per event-loop iteration; at tens of
    thousands of packets per second that iteration is a large part of the cost. DTLS
    records go straight to ``on_dtls`` (RFC 7983 demultiplexing); everything else (STUN,
    SRTP) goes through the protocol as before.
    """

    def __init__(self, protocol: StunProtocol, on_dtls: Callable[[bytes], None]) -> None:
        self._protocol = protocol
        self._on_dtls = on_dtls
        transport: Any = protocol.transport
        self._socket: socket.socket = transport._sock
        self._fd = self._socket.fileno()
        self._loop: Any = asyncio.get_running_loop()

    @classmethod
    def install(
        cls, pair: CandidatePair, on_dtls: Callable[[bytes], None]
    ) -> BurstReader | None:
        """Take over reading the pair's socket, or return None where that is not possible.

        Only a plain UDP host socket on asyncio's selector loop qualifies (not TURN, not
        uvloop, whose transports keep their own readers).
        """
        protocol = pair.protocol
        transport: Any = getattr(protocol, "transport", None)
        loop = asyncio.get_running_loop()
        if (
            type(protocol) is not StunProtocol
            or not isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop)
            or not isinstance(getattr(transport, "_sock", None), socket.socket)
            or transport.is_closing()
        ):
            return None
        reader = cls(protocol, on_dtls)
        reader._loop._remove_reader(reader._fd)
        reader._loop._add_reader(reader._fd, reader._read_ready)
        return reader

    def uninstall(self) -> None:
        """Hand the socket back to the asyncio transport's own reader."""
        transport: Any = self._protocol.transport
        if not transport.is_closing():
            self._loop._remove_reader(self._fd)
            self._loop._add_reader(self._fd, transport._read_ready)

    def _read_ready(self) -> None:
        receive = self._socket.recvfrom
        for _ in range(BURST_SIZE):
            try:
                data, addr = receive(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                self._protocol.error_received(error)
                return
            if data and is_dtls(data):
                self._on_dtls(data)
            else:
                self._protocol.datagram_received(data, addr)
