"""Helpers for the fast path tests: real aiortc peer connections on 127.0.0.1.

A pair is built in one process; which side gets the fast path is decided by enabling or
disabling ``rtcxfer.fastpath`` around the moment each side creates its transports
(``createDataChannel`` for the offerer, ``setRemoteDescription`` for the answerer), so
fast<->stock pairs test the wire against aiortc's own, independent SCTP/DTLS code.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from dataclasses import dataclass

from aiortc import RTCDataChannel, RTCPeerConnection

from rtcxfer import fastpath
from rtcxfer.fastpath.sctp import FastSctpTransport

OPEN_TIMEOUT = 20.0


def loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


@dataclass
class Pair:
    offerer: RTCPeerConnection
    answerer: RTCPeerConnection
    offerer_channel: RTCDataChannel
    answerer_channel: RTCDataChannel

    async def close(self) -> None:
        await self.offerer.close()
        await self.answerer.close()


def use_fast_path(fast: bool) -> None:
    if fast:
        fastpath.enable()
    else:
        fastpath.disable()


async def connect_pair(offerer_fast: bool, answerer_fast: bool) -> Pair:
    offerer = RTCPeerConnection()
    answerer = RTCPeerConnection()
    use_fast_path(offerer_fast)
    offerer_channel = offerer.createDataChannel("rtcxfer/1")
    await offerer.setLocalDescription(await offerer.createOffer())
    use_fast_path(answerer_fast)
    incoming: asyncio.Future[RTCDataChannel] = asyncio.get_running_loop().create_future()
    answerer.on("datachannel", incoming.set_result)
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)

    assert isinstance(offerer.sctp, FastSctpTransport) is offerer_fast
    assert isinstance(answerer.sctp, FastSctpTransport) is answerer_fast

    answerer_channel = await asyncio.wait_for(incoming, OPEN_TIMEOUT)
    if offerer_channel.readyState != "open":
        opened = asyncio.Event()
        offerer_channel.on("open", opened.set)
        await asyncio.wait_for(opened.wait(), OPEN_TIMEOUT)
    return Pair(offerer, answerer, offerer_channel, answerer_channel)


def random_messages(seed: int, count: int, max_size: int) -> list[bytes]:
    """Random-sized messages: one-byte, chunk-boundary sized, and multi-chunk large ones."""
    rng = random.Random(seed)
    boundaries = [1, 1159, 1160, 1161, 1172, 2320, 16384, 65536, max_size]
    sizes = boundaries + [rng.choice([rng.randint(1, 2000), rng.randint(1, max_size)])
                          for _ in range(count - len(boundaries))]
    rng.shuffle(sizes)
    return [os.urandom(size) for size in sizes]


def digest(messages: list[bytes]) -> str:
    """A hash that also covers message boundaries and order."""
    hasher = hashlib.sha256()
    for message in messages:
        hasher.update(len(message).to_bytes(4, "big"))
        hasher.update(message)
    return hasher.hexdigest()


async def send_all(channel: RTCDataChannel, messages: list[bytes],
                   high_water_mark: int = 1024 * 1024) -> None:
    """Send with bufferedAmount backpressure, as a real sender must."""
    drained = asyncio.Event()
    channel.bufferedAmountLowThreshold = high_water_mark // 4
    channel.on("bufferedamountlow", drained.set)
    for message in messages:
        if channel.bufferedAmount > high_water_mark:
            drained.clear()
            await drained.wait()
        channel.send(message)


def collect(channel: RTCDataChannel, count: int) -> tuple[list[bytes], asyncio.Future[None]]:
    received: list[bytes] = []
    complete: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @channel.on("message")
    def on_message(message: bytes | str) -> None:
        assert isinstance(message, bytes)
        received.append(message)
        if len(received) == count and not complete.done():
            complete.set_result(None)

    return received, complete
