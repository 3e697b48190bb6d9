"""Two aiortc peers in one process (or across processes), joined without a server.

aioice leaves 127.0.0.1 out of its host candidates, so :func:`use_loopback_ice`
makes it gather loopback only: the tests never touch another interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from rtcxfer.protocol.transfer import FileEntry, Message, encode_message, parse_message

CHANNEL_LABEL = "rtcxfer/1"
# Upper bound for any single wait in these tests (the machine is shared and slow).
WAIT_SECONDS = 60


def loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


def use_loopback_ice(setattr_: Callable[[Any, str, Any], None]) -> None:
    setattr_(aioice.ice, "get_host_addresses", loopback_addresses)


def max_message_size(sdp: str) -> int:
    match = re.search(r"a=max-message-size:(\d+)", sdp)
    return int(match.group(1)) if match else 65536


def new_connection() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def wait_open(channel: RTCDataChannel) -> None:
    if channel.readyState == "open":
        return
    opened = asyncio.Event()
    channel.on("open", opened.set)
    await asyncio.wait_for(opened.wait(), WAIT_SECONDS)


@dataclass
class Link:
    """The sender's end of a connected pair."""

    channel: RTCDataChannel
    max_message_size: int
    offerer: RTCPeerConnection


@contextlib.asynccontextmanager
async def connected_pair(
    on_datachannel: Callable[[RTCDataChannel], None],
) -> AsyncIterator[Link]:
    """An offerer whose ``rtcxfer/1`` channel is open to an answerer in this process.

    ``on_datachannel`` runs synchronously in the answerer's ``datachannel`` event.
    """
    offerer, answerer = new_connection(), new_connection()
    try:
        answerer.on("datachannel", on_datachannel)
        channel = offerer.createDataChannel(CHANNEL_LABEL)
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())
        await offerer.setRemoteDescription(answerer.localDescription)
        await wait_open(channel)
        yield Link(channel, max_message_size(answerer.localDescription.sdp), offerer)
    finally:
        await offerer.close()
        await answerer.close()


def description_to_json(description: RTCSessionDescription) -> str:
    return json.dumps({"type": description.type, "sdp": description.sdp})


def description_from_json(text: str) -> RTCSessionDescription:
    raw = json.loads(text)
    return RTCSessionDescription(sdp=raw["sdp"], type=raw["type"])


@dataclass
class RecordingObserver:
    """A TransferObserver that keeps every event, for assertions."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    # Set once some file_progress reports at least ``progress_mark`` bytes.
    progress_mark: int | None = None
    progress_reached: asyncio.Event = field(default_factory=asyncio.Event)

    def transfer_started(self, files: Sequence[FileEntry], offsets: Sequence[int], *,
                         total: int | None = None) -> None:
        self.events.append(("transfer_started", tuple(files), tuple(offsets)))

    def file_started(self, index: int, entry: FileEntry, offset: int) -> None:
        self.events.append(("file_started", index, entry.name, offset))

    def file_progress(self, index: int, done: int) -> None:
        self.events.append(("file_progress", index, done))
        if self.progress_mark is not None and done >= self.progress_mark:
            self.progress_reached.set()

    def file_finished(self, index: int, entry: FileEntry, ok: bool, reason: str | None,
                      path: Path | None, *, saved_as: str | None = None,
                      resumed_from: int | None = None) -> None:
        self.events.append(("file_finished", index, entry.name, ok, reason, path))

    def transfer_finished(self, ok: bool) -> None:
        self.events.append(("transfer_finished", ok))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [event for event in self.events if event[0] == kind]


class RawPeer:
    """A hand-driven rtcxfer/1 sender: sends exactly what a test tells it to."""

    def __init__(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.closed = asyncio.Event()
        channel.on("message", self._on_message)
        channel.on("close", self.closed.set)

    def _on_message(self, data: str | bytes) -> None:
        assert isinstance(data, str), "a receiver never sends binary frames"
        self.inbox.put_nowait(parse_message(data))

    def send(self, message: Message) -> None:
        self.channel.send(encode_message(message))

    def send_raw(self, data: str | bytes) -> None:
        self.channel.send(data)

    async def receive(self) -> Message:
        return await asyncio.wait_for(self.inbox.get(), WAIT_SECONDS)
