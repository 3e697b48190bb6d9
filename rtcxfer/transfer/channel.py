"""What both drivers need from an RTCDataChannel: events, sending, backpressure.

The drivers are typed for aiortc's ``RTCDataChannel`` but use only its W3C surface, so
anything that has it works: pyee-style ``on`` / ``remove_listener`` for the events ``open``,
``message``, ``close`` and ``bufferedamountlow``; ``send(str | bytes)``;
``bufferedAmount``, ``bufferedAmountLowThreshold``, ``readyState`` and ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiortc import RTCDataChannel
from aiortc.exceptions import InvalidStateError

from rtcxfer.protocol.transfer import Message, encode_message

# The sender stops writing above HIGH_WATER bytes queued in the channel and resumes on
# bufferedamountlow, which fires when the queue drains to LOW_WATER: enough in flight to
# keep the SCTP association busy, bounded whatever the file size.
HIGH_WATER = 1024 * 1024
LOW_WATER = 256 * 1024


class ChannelClosed(Exception):
    """The channel closed (or refused a frame) before the transfer finished."""


class ChannelLink:
    """Our listeners on one channel: closing, drain notifications, sending.

    ``on_message`` is registered at construction, synchronously, so a message that
    arrives before the driver's first ``await`` is not lost.
    """

    def __init__(self, channel: RTCDataChannel, on_message: Callable[[str | bytes], None]) -> None:
        self.channel = channel
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self._drained = asyncio.Event()
        self._on_close_callbacks: list[Callable[[], None]] = []
        self._listeners: list[tuple[str, Callable[..., None]]] = [
            ("message", on_message),
            ("open", self._handle_open),
            ("close", self._handle_close),
            ("bufferedamountlow", self._drained.set),
        ]
        for event, listener in self._listeners:
            channel.on(event, listener)
        if channel.readyState == "open":
            self.opened.set()
        elif channel.readyState in ("closing", "closed"):
            self.closed.set()

    def on_close(self, callback: Callable[[], None]) -> None:
        self._on_close_callbacks.append(callback)
        if self.closed.is_set():
            callback()

    async def wait_open(self) -> None:
        if self.opened.is_set():
            return
        await _first(self.opened.wait(), self.closed.wait())
        if not self.opened.is_set():
            raise ChannelClosed("the data channel closed before it opened")

    def send_message(self, message: Message) -> None:
        self.send(encode_message(message))

    def send(self, data: str | bytes) -> None:
        if self.closed.is_set():
            raise ChannelClosed("the data channel is closed")
        try:
            self.channel.send(data)
        except InvalidStateError:
            raise ChannelClosed("the data channel is closed") from None

    def try_send_message(self, message: Message) -> None:
        """Send if we still can: used for last words (``error``) on the way out."""
        with contextlib.suppress(ChannelClosed, ValueError):
            self.send_message(message)

    def over_high_water(self) -> bool:
        return self.channel.bufferedAmount > HIGH_WATER

    async def drain(self) -> None:
        """Wait until the channel's queue fell to LOW_WATER, or it closed."""
        self.channel.bufferedAmountLowThreshold = LOW_WATER
        while self.channel.bufferedAmount > LOW_WATER and not self.closed.is_set():
            self._drained.clear()
            # The event may have fired between the check and clear(): look again.
            if self.channel.bufferedAmount <= LOW_WATER:
                break
            await _first(self._drained.wait(), self.closed.wait())

    def close(self) -> None:
        if not self.closed.is_set():
            self.channel.close()

    def detach(self) -> None:
        for event, listener in self._listeners:
            # aiortc drops every listener itself when the channel closes.
            with contextlib.suppress(KeyError):
                self.channel.remove_listener(event, listener)

    def _handle_open(self) -> None:
        self.opened.set()

    def _handle_close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self._drained.set()
        for callback in self._on_close_callbacks:
            callback()


async def _first(*waits: Any) -> None:
    """Wait for the first of several event waits; cancel the others."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
