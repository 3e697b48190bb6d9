"""A DTLS transport that hands each datagram straight to SCTP.

In aiortc every received datagram goes aioice socket -> ``asyncio.Queue`` -> the DTLS
task (``await queue.get()``) -> pyOpenSSL (``bio_write``, ``recv``, a ``WantReadError``
raised per packet, ``bio_read``) -> ``await sctp._handle_data``. ``FastDtlsTransport``
keeps aiortc's handshake, certificate checks and SRTP setup untouched; once the handshake
is done it replaces the queue-and-task pump with a synchronous path: datagram in, OpenSSL
called directly through the same cffi bindings pyOpenSSL uses (return codes instead of
exceptions), SCTP stepped inline. The records on the wire are the same DTLS records.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aioice.ice import CandidatePair, StunProtocol
from aiortc import clock
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport, State
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtp import is_rtcp
from cryptography.hazmat.bindings.openssl.binding import Binding
from OpenSSL import SSL

from rtcxfer.fastpath.ice import BurstReader, enlarge_receive_buffer, is_dtls
from rtcxfer.fastpath.inline import InlineRunner

logger = logging.getLogger(__name__)

_lib: Any = Binding.lib
_ffi: Any = Binding.ffi

# Largest DTLS record plaintext (RFC 6347 section 4.1.1 / RFC 9147), and the largest
# datagram we let OpenSSL hand us per read, as aiortc does.
RECORD_BUFFER_SIZE = 16384 + 2048
DATAGRAM_SIZE = 1500


class DtlsClosed(ConnectionError):
    """The peer closed DTLS (close_notify) or the ICE connection under it went away."""


class _DatagramSink:
    """Stands in for aioice's receive queue once the fast pump runs.

    aioice delivers every datagram, and ``None`` when the connection is lost, with
    ``put_nowait``; both now land in the DTLS transport synchronously.
    """

    def __init__(self, transport: FastDtlsTransport) -> None:
        self._transport = transport

    def put_nowait(self, item: tuple[bytes, int] | None) -> None:
        if item is None:
            self._transport._connection_lost(DtlsClosed("ICE connection lost"))
        else:
            self._transport._datagram_received(item[0])


class FastDtlsTransport(RTCDtlsTransport):
    """aiortc's ``RTCDtlsTransport`` with a synchronous receive path after the handshake."""

    def __init__(self, transport: RTCIceTransport, certificates: list[RTCCertificate]) -> None:
        super().__init__(transport, certificates)
        self._read_buffer = _ffi.new("char[]", RECORD_BUFFER_SIZE)
        self._write_buffer = _ffi.new("char[]", DATAGRAM_SIZE)
        self._runner = InlineRunner(self._connection_lost)
        self._closed: asyncio.Future[None] | None = None
        # With DTLS 1.3 the handshake's last flight may still need retransmitting after
        # the handshake completed locally (aiortc's pump polls for this too).
        self._handshake_settled = False
        self._dtls_timer: asyncio.TimerHandle | None = None
        # Datagrams handled by the fast pump (not aiortc's): proof that it runs, for
        # tests and benchmarks (see tests/fastpath/test_compat.py).
        self.fast_datagrams = 0

    async def _RTCDtlsTransport__run(self) -> None:
        """Deliver datagrams synchronously until DTLS or ICE closes."""
        connection = self.transport._connection
        self._closed = asyncio.get_running_loop().create_future()
        stock_queue = connection._queue
        sink = _DatagramSink(self)
        # Datagrams that arrived during the handshake are still in aioice's queue.
        while not stock_queue.empty():
            sink.put_nowait(stock_queue.get_nowait())
        connection._queue = sink
        self._service_dtls_timer()
        pair = connection._nominated.get(1)
        reader = None
        if pair is not None:
            enlarge_receive_buffer(pair)
            reader = BurstReader.install(pair, self._datagram_received)
        try:
            await self._closed
        except ConnectionError:
            for receiver in self._rtp_router.receivers:
                receiver._handle_disconnect()
        finally:
            # Cancelled by stop(): later datagrams and losses must find the path closed.
            self._closed.cancel()
            self._runner.close()
            if self._dtls_timer is not None:
                self._dtls_timer.cancel()
            if reader is not None:
                reader.uninstall()
            connection._queue = stock_queue
            self._set_state(State.CLOSED)

    def _connection_lost(self, error: BaseException) -> None:
        if self._closed is not None and not self._closed.done():
            if isinstance(error, ConnectionError):
                self._closed.set_exception(error)
            else:
                logger.error("DTLS receive path failed", exc_info=error)
                self._closed.set_exception(DtlsClosed(f"receive path failed: {error!r}"))

    def _datagram_received(self, data: bytes) -> None:
        if not data or self._closed is None or self._closed.done():
            # An empty datagram is nobody's: dropping it keeps one stray packet from
            # failing the transport.
            return
        self._RTCDtlsTransport__rx_bytes += len(data)
        self._RTCDtlsTransport__rx_packets += 1
        self.fast_datagrams += 1
        if is_dtls(data):
            self._receive_records(data)
        elif 127 < data[0] < 192 and self._rx_srtp:
            self._runner.run(self._receive_srtp(data))

    def _receive_records(self, data: bytes) -> None:
        ssl = self._ssl._ssl
        _lib.BIO_write(self._ssl._into_ssl, data, len(data))
        # A datagram may carry several records (RFC 6347 section 4.1.1): read them all.
        records = 0
        while True:
            count = _lib.SSL_read(ssl, self._read_buffer, RECORD_BUFFER_SIZE)
            if count <= 0:
                break
            records += 1
            if self._data_receiver is not None:
                self._runner.run(self._data_receiver._handle_data(
                    _ffi.buffer(self._read_buffer, count)[:]
                ))
        error = _lib.SSL_get_error(ssl, count)
        if error == _lib.SSL_ERROR_ZERO_RETURN:
            self._flush_records()
            self._connection_lost(DtlsClosed("DTLS shut down by the remote party"))
            return
        if error != _lib.SSL_ERROR_WANT_READ:
            # A record that fails to authenticate is dropped, as aiortc does.
            _lib.ERR_clear_error()
        if not records or not self._handshake_settled:
            # A handshake retransmission, an alert or a DTLS 1.3 ACK may be waiting to go
            # out. Application data produces no output, and anything else that slipped
            # into the buffer leaves with the next packet we send.
            self._flush_records()
        if not self._handshake_settled:
            self._service_dtls_timer()

    def _service_dtls_timer(self) -> None:
        """Follow OpenSSL's handshake retransmission timer until it has none left."""
        if self._dtls_timer is not None:
            self._dtls_timer.cancel()
            self._dtls_timer = None
        timeout = self._ssl.DTLSv1_get_timeout()
        if timeout is None:
            self._handshake_settled = True
        else:
            self._dtls_timer = asyncio.get_running_loop().call_later(
                timeout, self._dtls_timer_expired
            )

    def _dtls_timer_expired(self) -> None:
        self._dtls_timer = None
        if self._closed is None or self._closed.done():
            return
        try:
            self._ssl.DTLSv1_handle_timeout()
        except SSL.Error as error:
            self._connection_lost(DtlsClosed(f"DTLS retransmission failed: {error}"))
            return
        self._flush_records()
        self._service_dtls_timer()

    async def _receive_srtp(self, data: bytes) -> None:
        arrival_time_ms = clock.current_ms()
        if is_rtcp(data):
            await self._handle_rtcp_data(self._rx_srtp.unprotect_rtcp(data))
        else:
            await self._handle_rtp_data(
                self._rx_srtp.unprotect(data), arrival_time_ms=arrival_time_ms
            )

    async def _send_data(self, data: bytes) -> None:
        if self._state != State.CONNECTED:
            raise ConnectionError("Cannot send encrypted data, not connected")
        pair = self.transport._connection._nominated.get(1)
        if pair is None:
            raise ConnectionError("Cannot send data, not connected")
        if _lib.SSL_write(self._ssl._ssl, data, len(data)) <= 0:
            _lib.ERR_clear_error()
            raise ConnectionError("DTLS refused to encrypt the packet")
        if type(pair.protocol) is StunProtocol:
            self._flush_records(pair)
        else:
            # TURN wraps datagrams itself: keep aiortc's path for it.
            await self._write_ssl()

    def _flush_records(self, pair: CandidatePair | None = None) -> None:
        """Send what OpenSSL wrote to its memory BIO, one datagram per read, as aiortc."""
        if pair is None:
            pair = self.transport._connection._nominated.get(1)
            if pair is None:
                return
        while True:
            count = _lib.BIO_read(self._ssl._from_ssl, self._write_buffer, DATAGRAM_SIZE)
            if count <= 0:
                return
            datagram = _ffi.buffer(self._write_buffer, count)[:]
            if type(pair.protocol) is StunProtocol:
                pair.protocol.transport.sendto(datagram, pair.remote_addr)
            else:
                self._runner.run(pair.protocol.send_data(datagram, pair.remote_addr))
            self._RTCDtlsTransport__tx_bytes += count
            self._RTCDtlsTransport__tx_packets += 1
