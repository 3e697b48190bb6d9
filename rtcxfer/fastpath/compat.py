"""Every private name of aiortc, aioice, pyOpenSSL, cryptography and asyncio the fast path needs.

The fast path subclasses aiortc's transports and overrides private methods. If upstream
renames one of them, the override silently stops being called and everything still
works, only slower; if upstream renames an attribute, the fast path breaks at run time.
``REQUIRED`` lists each name with the kind it must have; ``problems()`` checks them all
(once per process) and ``rtcxfer.fastpath.enable()`` falls back to stock aiortc, with
one warning line, when any is missing. ``tests/fastpath/test_compat.py`` runs the same
check, so an upgrade that breaks the fast path fails the test suite instead of only
making it slower.

Kinds:

- ``coroutine``: an ``async def`` on the class or module (we override or await it);
- ``method``: a plain function on the class (we override or call it);
- ``attribute``: an instance attribute the class sets (``self.<name> =`` in the source
  of the module of a class in its MRO) or declares (a class annotation);
- ``constant``: a module or class attribute that exists (a value, a class, a function).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["coroutine", "method", "attribute", "constant"]

# The versions the fast path was written against and tested with (pinned in pyproject).
TESTED_VERSIONS = {
    "aiortc": "1.16.0",
    "aioice": "0.13.0",
    "pyOpenSSL": "26.4.0",
    "cryptography": "50.0.2",
}


@dataclass(frozen=True)
class Requirement:
    owner: str  # "module" or "module:Class"
    name: str
    kind: Kind

    def __str__(self) -> str:
        return f"{self.owner}.{self.name} ({self.kind})"


def _names(owner: str, kind: Kind, names: str) -> list[Requirement]:
    return [Requirement(owner, name, kind) for name in names.split()]


SCTP = "aiortc.rtcsctptransport:RTCSctpTransport"
DTLS = "aiortc.rtcdtlstransport:RTCDtlsTransport"
ICE = "aioice.ice:Connection"

REQUIRED: list[Requirement] = [
    # aiortc: the names RTCPeerConnection builds its transports from (enable() swaps them).
    *_names("aiortc.rtcpeerconnection", "constant", "RTCSctpTransport RTCDtlsTransport"),
    *_names("aiortc.rtcicetransport", "constant", "Connection"),
    *_names("aiortc.rtcicetransport:RTCIceTransport", "attribute", "_connection"),
    # aiortc SCTP (rtcxfer/fastpath/sctp.py)
    *_names("aiortc.rtcsctptransport", "constant",
            "SCTP_DATA_LAST_FRAG USERDATA_MAX_LENGTH DataChunk ForwardTsnChunk SackChunk "
            "RTCSctpTransport InboundStream"),
    *_names("aiortc.utils", "constant", "uint32_gt uint32_gte"),
    *_names(SCTP, "coroutine",
            "_receive_data_chunk _receive_forward_tsn_chunk _send_sack _receive_sack_chunk "
            "_transmit _data_channel_flush _reset_deferred_streams _receive _send_chunk "
            "_handle_data _init stop"),
    *_names(SCTP, "method",
            "_mark_received _get_inbound_stream _maybe_abandon _flight_size_decrease "
            "_flight_size_increase _update_rto _update_advanced_peer_ack_point _t3_start "
            "_t3_restart _t3_cancel _t3_expired"),
    *_names(SCTP, "attribute",
            "_last_received_tsn _sack_needed _sack_misordered _sack_duplicates "
            "_advertised_rwnd _reconfig_deferred _association_state _last_sacked_tsn "
            "_flight_size _cwnd _ssthresh _sent_queue _outbound_queue _fast_recovery_exit "
            "_fast_recovery_transmit _partial_bytes_acked _reconfig_queue _forward_tsn_chunk "
            "_t3_handle _rto _srtt _rttvar _loop _remote_max_message_size _inbound_streams "
            "_data_channel_queue"),
    *_names("aiortc.rtcsctptransport:DataChunk", "attribute",
            "_acked _abandoned _book_size _in_flight _misses _retransmit _sent_count "
            "_sent_time"),
    *_names("aiortc.rtcsctptransport:InboundStream", "attribute", "reassembly"),
    *_names("aiortc.rtcsctptransport:InboundStream", "method", "add_chunk pop_messages"),
    # aiortc DTLS (rtcxfer/fastpath/dtls.py)
    *_names("aiortc.rtcdtlstransport", "constant", "RTCDtlsTransport RTCCertificate State"),
    *_names(DTLS, "coroutine",
            "_RTCDtlsTransport__run _handle_rtcp_data _handle_rtp_data _write_ssl _send_data"),
    *_names(DTLS, "method", "_set_state"),
    *_names("aiortc.rtcrtpreceiver:RTCRtpReceiver", "method", "_handle_disconnect"),
    *_names(DTLS, "attribute",
            "_RTCDtlsTransport__rx_bytes _RTCDtlsTransport__rx_packets "
            "_RTCDtlsTransport__tx_bytes _RTCDtlsTransport__tx_packets _data_receiver _ssl "
            "_rtp_router _rx_srtp _state"),
    *_names("aiortc.rtp", "constant", "is_rtcp"),
    *_names("aiortc.clock", "constant", "current_ms"),
    # aioice (rtcxfer/fastpath/ice.py, dtls.py)
    *_names("aioice.ice", "constant", "CONSENT_INTERVAL CandidatePair StunProtocol Connection"),
    *_names(ICE, "coroutine", "query_consent close"),
    *_names(ICE, "method", "build_request"),
    *_names(ICE, "attribute", "_queue _nominated _query_consent_task remote_password"),
    *_names("aioice.ice:CandidatePair", "attribute", "protocol remote_addr"),
    *_names("aioice.ice:StunProtocol", "coroutine", "request send_data"),
    *_names("aioice.ice:StunProtocol", "method", "datagram_received error_received"),
    *_names("aioice.ice:StunProtocol", "attribute", "transport"),
    *_names("aioice.stun", "constant", "TransactionError"),
    # pyOpenSSL: the Connection's raw OpenSSL handles and DTLS timer.
    *_names("OpenSSL.SSL:Connection", "attribute", "_ssl _into_ssl _from_ssl"),
    *_names("OpenSSL.SSL:Connection", "method", "DTLSv1_get_timeout DTLSv1_handle_timeout"),
    # cryptography's cffi bindings (the ones pyOpenSSL calls).
    *_names("cryptography.hazmat.bindings.openssl.binding:Binding", "constant", "lib ffi"),
    *_names("cryptography.hazmat.bindings.openssl.binding:Binding.lib", "constant",
            "SSL_read SSL_write BIO_write BIO_read SSL_get_error ERR_clear_error "
            "SSL_ERROR_ZERO_RETURN SSL_ERROR_WANT_READ"),
    *_names("cryptography.hazmat.bindings.openssl.binding:Binding.ffi", "constant",
            "new buffer"),
    # asyncio: the selector loop's reader registry and the datagram transport's socket.
    *_names("asyncio.selector_events:BaseSelectorEventLoop", "method",
            "_add_reader _remove_reader"),
    *_names("asyncio.selector_events:_SelectorDatagramTransport", "method", "_read_ready"),
    *_names("asyncio.selector_events:_SelectorDatagramTransport", "attribute", "_sock"),
    *_names("asyncio.futures:Future", "attribute", "_asyncio_future_blocking"),
]


class Missing(Exception):
    pass


def _resolve(owner: str) -> Any:
    module_name, _, path = owner.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in filter(None, path.split(".")):
        target = getattr(target, part)
    return target


@functools.cache
def _module_source(klass: type) -> str:
    """The source of the module defining ``klass`` ("" if there is none, e.g. C code)."""
    try:
        filename = inspect.getsourcefile(klass)
    except TypeError:
        return ""
    if filename is None:
        return ""
    try:
        with open(filename, encoding="utf-8") as source:
            return source.read()
    except OSError:
        return ""


def _class_sets(cls: type, name: str) -> bool:
    """Whether a class in ``cls``'s MRO declares ``name`` or assigns ``self.<name>``.

    The assignment is looked for in the source of the module defining that class.
    """
    source_name = name
    for klass in cls.__mro__:
        if klass is object:
            continue
        if name in getattr(klass, "__annotations__", {}) or name in vars(klass):
            return True
        # Name-mangled private attributes read ``self.__x`` in their class's source.
        mangled_prefix = f"_{klass.__name__}__"
        if name.startswith(mangled_prefix):
            source_name = "__" + name[len(mangled_prefix):]
        source = _module_source(klass)
        if f"self.{source_name} =" in source or f"self.{source_name}:" in source:
            return True
    return False


def check(requirement: Requirement) -> str | None:
    """None if the requirement holds, else what is wrong, in words."""
    try:
        owner = _resolve(requirement.owner)
    except (ImportError, AttributeError) as error:
        return f"{requirement.owner} is missing ({error})"
    kind = requirement.kind
    if kind == "attribute":
        if not isinstance(owner, type):
            return f"{requirement.owner} is not a class"
        if _class_sets(owner, requirement.name):
            return None
        return f"{requirement} is never set"
    try:
        value = inspect.getattr_static(owner, requirement.name)
    except AttributeError:
        try:
            value = getattr(owner, requirement.name)
        except AttributeError:
            return f"{requirement} is missing"
    if kind == "constant":
        return None
    function = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
    if kind == "coroutine" and not inspect.iscoroutinefunction(function):
        return f"{requirement} is not a coroutine function"
    if kind == "method" and (not callable(function) or inspect.iscoroutinefunction(function)):
        return f"{requirement} is not a plain method"
    return None


@functools.cache
def problems() -> tuple[str, ...]:
    """What the installed libraries lack for the fast path (empty when all is there)."""
    found = []
    for requirement in REQUIRED:
        problem = check(requirement)
        if problem is not None:
            found.append(problem)
    return tuple(found)


def installed_versions() -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for package in TESTED_VERSIONS:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions
