"""rtcxfer's fast data channel path: tuned aiortc SCTP, DTLS and ICE components.

``enable()`` makes every ``RTCPeerConnection`` created afterwards in this process use
them; ``disable()`` brings stock aiortc back. The tuned classes subclass aiortc's and
speak the same protocols (SCTP over DTLS over ICE/UDP, RFC 8831/8261/9260/7675), so a
fast peer interoperates with stock aiortc and with browsers. See docs/fast-path.md.

The fast path overrides private names of aiortc, aioice, pyOpenSSL and asyncio.
``enable()`` first checks that every one of them is still there with the expected kind
(``rtcxfer.fastpath.compat``); if not, it logs one warning line and leaves stock aiortc
in place, so an upgrade can make a transfer slower but never break it.
"""

from __future__ import annotations

import logging
from typing import Any

import aiortc.rtcicetransport
import aiortc.rtcpeerconnection

from rtcxfer.fastpath import compat

__all__ = ["disable", "enable", "incompatibility", "is_enabled"]

logger = logging.getLogger(__name__)

# The names aiortc looks the classes up by when it builds a connection's transports.
_SLOTS = (
    (aiortc.rtcpeerconnection, "RTCSctpTransport"),
    (aiortc.rtcpeerconnection, "RTCDtlsTransport"),
    (aiortc.rtcicetransport, "Connection"),
)
_STOCK: dict[tuple[Any, str], type] = {slot: getattr(*slot) for slot in _SLOTS}
_fast: dict[tuple[Any, str], type] | None = None
_warned = False


def incompatibility() -> str | None:
    """Why the fast path cannot run with the installed libraries, or None if it can."""
    found = compat.problems()
    if not found:
        return None
    more = f" and {len(found) - 1} more" if len(found) > 1 else ""
    return f"{found[0]}{more}"


def _fast_classes() -> dict[tuple[Any, str], type] | None:
    global _fast
    if _fast is None and incompatibility() is None:
        try:
            from rtcxfer.fastpath.dtls import FastDtlsTransport
            from rtcxfer.fastpath.ice import ConsentConnection
            from rtcxfer.fastpath.sctp import FastSctpTransport
        except (ImportError, AttributeError) as error:  # pragma: no cover - upstream drift
            compat.problems.cache_clear()
            logger.debug("fast path import failed", exc_info=error)
            return None
        _fast = dict(zip(_SLOTS, (FastSctpTransport, FastDtlsTransport, ConsentConnection),
                         strict=True))
    return _fast


def enable() -> bool:
    """Use the fast path for every RTCPeerConnection created from now on (idempotent).

    Returns False, after one warning line, and keeps stock aiortc when the installed
    aiortc/aioice/pyOpenSSL/cryptography lack something the fast path needs.
    """
    global _warned
    fast = _fast_classes()
    if fast is None:
        if not _warned:
            _warned = True
            versions = ", ".join(f"{name} {version}"
                                 for name, version in compat.installed_versions().items())
            logger.warning(
                "fast path disabled, using stock aiortc: %s (installed %s; tested with %s)",
                incompatibility() or "the fast path modules failed to import", versions,
                ", ".join(f"{name} {v}" for name, v in compat.TESTED_VERSIONS.items()))
        disable()
        return False
    for (module, name), cls in fast.items():
        setattr(module, name, cls)
    return True


def disable() -> None:
    """Use stock aiortc for every RTCPeerConnection created from now on (idempotent).

    Connections that already exist keep the components they were built with.
    """
    for (module, name), cls in _STOCK.items():
        setattr(module, name, cls)


def is_enabled() -> bool:
    fast = _fast
    return fast is not None and all(
        getattr(module, name) is cls for (module, name), cls in fast.items())
