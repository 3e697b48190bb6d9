"""Offer loopback host candidates, so two peers on one machine always connect.

aioice leaves 127.0.0.1 and ::1 out of its host addresses, so in a network
namespace or container whose only interface is ``lo`` two local peers have no
candidate pair at all. rtcxfer adds the loopback addresses after the real ones
and gives their candidates the lowest host priority: between two machines the
loopback pairs simply fail their checks while real interfaces win; on one
machine they are a path that always exists.

aioice offers no hook for this, so :func:`install` wraps three of its functions
once per process. Nothing changes for relay-only gathering, which never asks
for host addresses. A loopback socket never asks a STUN server for its
server-reflexive address: no answer can come back to 127.0.0.1 from another
host, and aioice would wait its whole 5 s gathering timeout for it.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from typing import Any

import aioice.ice
from aioice.candidate import Candidate, candidate_priority

IPV4_LOOPBACK = "127.0.0.1"
IPV6_LOOPBACK = "::1"

# RFC 8445 local preference 0: below every address aioice found on a real interface.
LOOPBACK_LOCAL_PREFERENCE = 0

_installed = False


def loopback_addresses(*, use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """The loopback addresses this host can bind, IPv4 first."""
    addresses = []
    if use_ipv4:
        addresses.append(IPV4_LOOPBACK)
    if use_ipv6 and _ipv6_loopback_usable():
        addresses.append(IPV6_LOOPBACK)
    return addresses


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _ipv6_loopback_usable() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind((IPV6_LOOPBACK, 0))
    except OSError:
        return False
    return True


def _with_loopback(get_host_addresses: Any) -> Any:
    @functools.wraps(get_host_addresses)
    def wrapper(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = list(get_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6))
        for address in loopback_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6):
            if address not in addresses:
                addresses.append(address)
        return addresses

    return wrapper


def _demoting_loopback(get_component_candidates: Any) -> Any:
    @functools.wraps(get_component_candidates)
    async def wrapper(self: aioice.ice.Connection, *args: Any, **kwargs: Any) -> list[Candidate]:
        candidates: list[Candidate] = await get_component_candidates(self, *args, **kwargs)
        for candidate in candidates:
            if candidate.type == "host" and is_loopback(candidate.host):
                candidate.priority = candidate_priority(
                    candidate.component, "host", local_pref=LOOPBACK_LOCAL_PREFERENCE
                )
        return candidates

    return wrapper


def _no_stun_from_loopback(server_reflexive_candidate: Any) -> Any:
    @functools.wraps(server_reflexive_candidate)
    async def wrapper(protocol: Any, stun_server: tuple[str, int]) -> Any:
        local = getattr(protocol, "local_candidate", None)
        if local is not None and is_loopback(local.host):
            raise ConnectionError("no server-reflexive address for a loopback socket")
        return await server_reflexive_candidate(protocol, stun_server)

    return wrapper


def install() -> None:
    """Make every aioice connection in this process offer loopback host candidates."""
    global _installed
    if _installed:
        return
    aioice.ice.get_host_addresses = _with_loopback(aioice.ice.get_host_addresses)
    aioice.ice.Connection.get_component_candidates = _demoting_loopback(
        aioice.ice.Connection.get_component_candidates
    )
    aioice.ice.server_reflexive_candidate = _no_stun_from_loopback(
        aioice.ice.server_reflexive_candidate
    )
    _installed = True
