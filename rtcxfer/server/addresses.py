"""The addresses of this host's interfaces, for ``rtcxfer serve --host 0.0.0.0``.

A wildcard listener is reachable at every interface address; the server prints
one URL per address so people on other machines know what to type.
IPv4 addresses come from ``SIOCGIFADDR`` per interface, IPv6 ones from
``/proc/net/if_inet6`` (Linux); where neither works only loopback is listed.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import socket
import struct
from pathlib import Path

SIOCGIFADDR = 0x8915
WILDCARD_V4 = {"0.0.0.0", ""}
WILDCARD_V6 = {"::"}


def interface_addresses(*, ipv4: bool = True, ipv6: bool = False) -> list[str]:
    """Every unicast interface address (loopback first), without duplicates."""
    found: list[str] = []
    if ipv4:
        found += _ipv4_addresses()
    if ipv6:
        found += _ipv6_addresses()
    unique = list(dict.fromkeys(found))
    return sorted(unique, key=lambda a: (not ipaddress.ip_address(a).is_loopback,
                                         ":" in a, unique.index(a)))


def _ipv4_addresses() -> list[str]:
    addresses: list[str] = []
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                reply = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
            except OSError:  # no IPv4 address on this interface
                continue
            addresses.append(socket.inet_ntoa(reply[20:24]))
    return addresses or ["127.0.0.1"]


def _ipv6_addresses() -> list[str]:
    addresses: list[str] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            fields = line.split()
            if len(fields) < 6:
                continue
            address = ipaddress.IPv6Address(int(fields[0], 16))
            if not address.is_link_local:
                addresses.append(str(address))
    return addresses or ["::1"]


def listening_urls(host: str, port: int, *, tls: bool) -> list[str]:
    """``ws(s)://address:port`` for each address a listener on ``host`` answers on."""
    if host in WILDCARD_V4:
        hosts = interface_addresses(ipv4=True)
    elif host in WILDCARD_V6:
        hosts = interface_addresses(ipv4=True, ipv6=True)
    else:
        hosts = [host]
    scheme = "wss" if tls else "ws"
    return [f"{scheme}://{f'[{h}]' if ':' in h else h}:{port}" for h in hosts]
