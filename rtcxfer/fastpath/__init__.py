"""rtcxfer's fast data channel path: tuned aiortc SCTP, DTLS and ICE components.

``enable()`` makes every ``RTCPeerConnection`` created afterwards in this process use
them; ``disable()`` brings stock aiortc back. The tuned classes subclass aiortc's and
speak the same protocols (SCTP over DTLS over ICE/UDP, RFC 8831/8261/9260/7675), so a
fast peer interoperates with stock aiortc and with browsers. See docs/fast-path.md.
"""

from __future__ import annotations

import aiortc.rtcicetransport
import aiortc.rtcpeerconnection

from rtcxfer.fastpath.dtls import FastDtlsTransport
from rtcxfer.fastpath.ice import ConsentConnection
from rtcxfer.fastpath.sctp import FastSctpTransport

__all__ = ["disable", "enable", "is_enabled"]

# The names aiortc looks the classes up by when it builds a connection's transports.
_STOCK = {
    (aiortc.rtcpeerconnection, "RTCSctpTransport"): aiortc.rtcpeerconnection.RTCSctpTransport,
    (aiortc.rtcpeerconnection, "RTCDtlsTransport"): aiortc.rtcpeerconnection.RTCDtlsTransport,
    (aiortc.rtcicetransport, "Connection"): aiortc.rtcicetransport.Connection,
}
_FAST = {
    (aiortc.rtcpeerconnection, "RTCSctpTransport"): FastSctpTransport,
    (aiortc.rtcpeerconnection, "RTCDtlsTransport"): FastDtlsTransport,
    (aiortc.rtcicetransport, "Connection"): ConsentConnection,
}


def enable() -> None:
    """Use the fast path for every RTCPeerConnection created from now on (idempotent)."""
    for (module, name), cls in _FAST.items():
        setattr(module, name, cls)


def disable() -> None:
    """Use stock aiortc for every RTCPeerConnection created from now on (idempotent).

    Connections that already exist keep the components they were built with.
    """
    for (module, name), cls in _STOCK.items():
        setattr(module, name, cls)


def is_enabled() -> bool:
    return all(getattr(module, name) is cls for (module, name), cls in _FAST.items())
