"""ICE consent freshness (RFC 7675) on the fast path.

aioice gives up after 6 consent checks that each got no answer within 0.5 s, so answers
merely delayed behind a full buffer killed healthy connections. The fast path retransmits
checks and expires consent only after CONSENT_TIMEOUT without any answer. The intervals
are shortened here so the tests take seconds, not minutes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aioice.ice
import pytest
from aioice import stun
from aiortc import RTCPeerConnection

import rtcxfer.fastpath.ice

from .pairs import Pair, collect, connect_pair

CHECK_INTERVAL = 0.2
ANSWER_DELAY = 1.0
# aiortc reports a lost ICE connection as "failed", then closes the peer connection.
LOST = ("failed", "closed")


@pytest.fixture
def quick_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", CHECK_INTERVAL)
    monkeypatch.setattr(rtcxfer.fastpath.ice, "CONSENT_INTERVAL", CHECK_INTERVAL)
    monkeypatch.setattr(rtcxfer.fastpath.ice, "CONSENT_TIMEOUT", 3.0)


def answer_consent_checks(pc: RTCPeerConnection, delay: float | None) -> None:
    """Delay (or, with None, drop) the STUN answers ``pc`` sends to consent checks."""
    protocol = pc.sctp.transport.transport._connection._nominated[1].protocol
    send_stun = protocol.send_stun
    loop = asyncio.get_running_loop()

    def delayed_send_stun(message: stun.Message, addr: Any) -> None:
        if message.message_class != stun.Class.RESPONSE:
            send_stun(message, addr)
        elif delay is not None:
            loop.call_later(delay, send_stun, message, addr)

    protocol.send_stun = delayed_send_stun


async def still_delivers(pair: Pair) -> bool:
    if pair.offerer_channel.readyState != "open":
        return False
    received, done = collect(pair.answerer_channel, 1)
    pair.offerer_channel.send(b"still there?")
    await asyncio.wait_for(done, 10)
    return received == [b"still there?"]


async def test_late_answers_keep_consent(pairs: list[Pair], quick_consent: None) -> None:
    pair = await connect_pair(True, True)
    pairs.append(pair)
    answer_consent_checks(pair.answerer, ANSWER_DELAY)
    # Long enough for stock aioice to count its 6 failures several times over.
    await asyncio.sleep(6.0)
    assert pair.offerer.iceConnectionState == "completed"
    assert await still_delivers(pair)


async def test_stock_aioice_drops_a_connection_with_late_answers(
    pairs: list[Pair], quick_consent: None
) -> None:
    """The failure the fast path fixes, reproduced on stock aiortc under the same delay."""
    pair = await connect_pair(False, False)
    pairs.append(pair)
    answer_consent_checks(pair.answerer, ANSWER_DELAY)
    for _ in range(60):
        if pair.offerer.iceConnectionState in LOST:
            break
        await asyncio.sleep(0.25)
    assert pair.offerer.iceConnectionState in LOST


async def test_consent_expires_without_answers(pairs: list[Pair], quick_consent: None) -> None:
    pair = await connect_pair(True, True)
    pairs.append(pair)
    answer_consent_checks(pair.answerer, None)
    for _ in range(60):
        if pair.offerer.iceConnectionState in LOST:
            break
        await asyncio.sleep(0.25)
    assert pair.offerer.iceConnectionState in LOST
