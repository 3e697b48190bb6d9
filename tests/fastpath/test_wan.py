"""Transfers across emulated wide-area paths (rtcxfer/fastpath/linkemu.py), not timed.

Sender and receiver run rtcxfer's real transfer path in two processes
(tests/fastpath/peer_process.py); the test process runs the link emulator between them
and rewrites the candidates they exchange so that each sees the relay as the other.
Only completion and the bytes are checked: throughput is bench/wan.py's business.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rtcxfer.fastpath.linkemu import Conditions, Link, Relay, route_candidates, start_relay

PEER = Path(__file__).with_name("peer_process.py")
RUN_TIMEOUT = 170.0
MIB = 1024 * 1024


async def read_json(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    line = await process.stdout.readline()
    if not line:
        assert process.stderr is not None
        error = (await process.stderr.read()).decode(errors="replace")
        raise AssertionError(f"peer exited early:\n{error[-3000:]}")
    message: dict[str, Any] = json.loads(line)
    return message


async def write_json(process: asyncio.subprocess.Process, message: dict[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps(message).encode() + b"\n")
    await process.stdin.drain()


async def transfer_through(relay: Relay, source: Path, folder: Path, *,
                           sender_stock: bool = False,
                           receiver_stock: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    pipes: dict[str, Any] = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE,
                             "stderr": subprocess.PIPE}
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, str(PEER), "receive", str(folder),
        *(["--stock"] if receiver_stock else []), **pipes)
    sender = await asyncio.create_subprocess_exec(
        sys.executable, str(PEER), "send", str(source),
        *(["--stock"] if sender_stock else []), **pipes)
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            offer = await read_json(sender)
            offer["sdp"], address = route_candidates(offer["sdp"], relay.b_address)
            relay.set_peer_a(address)
            await write_json(receiver, offer)
            answer = await read_json(receiver)
            answer["sdp"], address = route_candidates(answer["sdp"], relay.a_address)
            relay.set_peer_b(address)
            await write_json(sender, answer)
            sent = (await read_json(sender))["result"]
            received = (await read_json(receiver))["result"]
            await sender.wait()
            await receiver.wait()
            return sent, received
    finally:
        for process in (sender, receiver):
            if process.returncode is None:
                process.kill()
                await process.wait()


def payload(tmp_path: Path, size: int) -> Path:
    source = tmp_path / "payload.bin"
    source.write_bytes(os.urandom(size))
    return source


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def check_transfer(tmp_path: Path, conditions: Conditions, size: int,
                         **sides: bool) -> Relay:
    source = payload(tmp_path, size)
    folder = tmp_path / "downloads"
    folder.mkdir()
    relay = await start_relay(conditions, seed=11)
    try:
        sent, received = await transfer_through(relay, source, folder, **sides)
    finally:
        relay.close()
    assert sent["ok"] and received["ok"], (sent, received)
    assert sent["bytes"] == received["bytes"] == size
    assert sha256(folder / source.name) == sha256(source)
    # The bytes really crossed the emulated link.
    assert relay.forward.delivered_bytes > size
    return relay


@pytest.mark.slow
async def test_fast_path_across_a_200ms_path(tmp_path: Path) -> None:
    relay = await check_transfer(tmp_path, Conditions(rate=100e6, delay=0.1), 16 * MIB)
    assert relay.forward.conditions.delay == 0.1


@pytest.mark.slow
async def test_fast_path_across_a_path_losing_2_percent(tmp_path: Path) -> None:
    relay = await check_transfer(
        tmp_path, Conditions(rate=100e6, delay=0.025, loss=0.02), 16 * MIB)
    # The loss was real: a few hundred datagrams of the transfer were dropped.
    assert relay.forward.lost > 100


async def test_fast_sender_to_stock_receiver_across_a_lossy_path(tmp_path: Path) -> None:
    relay = await check_transfer(
        tmp_path, Conditions(rate=100e6, delay=0.025, loss=0.005, reorder=0.01),
        4 * MIB, receiver_stock=True)
    assert relay.forward.lost > 0


async def test_stock_sender_to_fast_receiver_across_a_lossy_path(tmp_path: Path) -> None:
    relay = await check_transfer(
        tmp_path, Conditions(rate=100e6, delay=0.025, loss=0.005, reorder=0.01),
        2 * MIB, sender_stock=True)
    assert relay.forward.lost > 0


async def test_the_emulator_delays_limits_and_drops() -> None:
    """The emulator itself: one-way delay, rate, drop-tail queue and loss, on loopback."""
    loop = asyncio.get_running_loop()
    conditions = Conditions(rate=8e6, delay=0.05, queue_bytes=20_000)
    forward, backward = Link(conditions, 1), Link(conditions, 2)
    relay = await Relay(forward, backward).start()
    arrivals: list[tuple[float, bytes]] = []

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            arrivals.append((loop.time(), data))

    a_transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    b_transport, _ = await loop.create_datagram_endpoint(
        Receiver, local_addr=("127.0.0.1", 0))
    try:
        relay.set_peer_a(a_transport.get_extra_info("sockname"))
        relay.set_peer_b(b_transport.get_extra_info("sockname"))
        started = loop.time()
        # 100 datagrams of 1000 bytes at once: 1 ms each at 8 Mbit/s; the 20 kB queue
        # holds 20, the rest are dropped.
        for index in range(100):
            a_transport.sendto(index.to_bytes(4, "big") + bytes(996), relay.a_address)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(arrivals) >= 20 and loop.time() - arrivals[-1][0] > 0.05:
                break
    finally:
        a_transport.close()
        b_transport.close()
        relay.close()
    # About 20 fit the queue (more if this process was descheduled while sending and
    # the queue drained meanwhile); the rest were dropped at its tail, none lost.
    assert 19 <= len(arrivals) <= 40
    assert forward.dropped == 100 - len(arrivals)
    assert forward.lost == 0
    # Lower bounds only (a loaded machine can only make things later): the first came
    # after the one-way delay, the last after the delay plus the time to serialise
    # everything before it at 8 Mbit/s (1 ms per datagram).
    assert arrivals[0][0] - started >= 0.05
    assert arrivals[-1][0] - started >= 0.05 + 0.001 * (len(arrivals) - 1) - 0.001
    assert [int.from_bytes(data[:4], "big") for _, data in arrivals] == sorted(
        int.from_bytes(data[:4], "big") for _, data in arrivals)


def test_route_candidates_keeps_one_loopback_candidate() -> None:
    sdp = ("v=0\r\n"
           "a=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host\r\n"
           "a=candidate:2 1 udp 2130706431 127.0.0.1 40001 typ host\r\n"
           "a=candidate:3 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active\r\n"
           "a=candidate:4 1 udp 1694498815 192.0.2.1 40002 typ srflx raddr 0.0.0.0 rport 0\r\n"
           "a=end-of-candidates\r\n")
    rewritten, original = route_candidates(sdp, ("127.0.0.1", 5555))
    assert original == ("127.0.0.1", 40001)
    assert rewritten == ("v=0\r\n"
                         "a=candidate:2 1 udp 2130706431 127.0.0.1 5555 typ host\r\n"
                         "a=end-of-candidates\r\n")
    with pytest.raises(ValueError):
        route_candidates("v=0\r\n", ("127.0.0.1", 5555))


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-features=WebRtcHideLocalIpsWithMdns"]

# The page's side: answers an offer (non-trickle), hashes what it receives on the data
# channel until a text message, replies with the SHA-256, then sends `size` random
# bytes back, an empty message last.
PAGE_SCRIPT = """
window.peer = {
  chunks: [],
  async answer(sdp) {
    const pc = new RTCPeerConnection();
    this.pc = pc;
    this.done = new Promise(finished => {
      pc.ondatachannel = event => {
        const channel = event.channel;
        channel.binaryType = "arraybuffer";
        this.channel = channel;
        channel.onmessage = async message => {
          if (typeof message.data === "string") {
            const blob = new Blob(this.chunks);
            const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
            channel.send(Array.from(new Uint8Array(digest),
                                    b => b.toString(16).padStart(2, "0")).join(""));
            finished();
            return;
          }
          this.chunks.push(message.data);
        };
      };
    });
    await pc.setRemoteDescription({type: "offer", sdp});
    await pc.setLocalDescription(await pc.createAnswer());
    if (pc.iceGatheringState !== "complete") {
      await new Promise(ready => pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") ready();
      }));
    }
    return pc.localDescription.sdp;
  },
  async sendBack(size) {
    await this.done;
    const channel = this.channel;
    const block = new Uint8Array(60000);
    const parts = [];
    channel.bufferedAmountLowThreshold = 256 * 1024;
    for (let sent = 0; sent < size; sent += block.length) {
      const part = crypto.getRandomValues(new Uint8Array(Math.min(block.length, size - sent)));
      parts.push(part);
      if (channel.bufferedAmount > 1024 * 1024) {
        await new Promise(drained => channel.onbufferedamountlow = drained);
      }
      channel.send(part);
    }
    channel.send(new ArrayBuffer(0));
    const digest = await crypto.subtle.digest("SHA-256", await new Blob(parts).arrayBuffer());
    return Array.from(new Uint8Array(digest), b => b.toString(16).padStart(2, "0")).join("");
  },
  close() { this.pc.close(); },
};
"""


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed")
async def test_fast_path_and_chromium_across_a_lossy_path() -> None:
    """fast -> Chromium and Chromium -> fast through 50 ms RTT, 0.5 % loss, reordering."""
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from playwright.async_api import async_playwright

    from rtcxfer import fastpath
    from rtcxfer.fastpath.sctp import FastSctpTransport

    from .pairs import send_all

    fastpath.enable()
    relay = await start_relay(
        Conditions(rate=100e6, delay=0.025, loss=0.005, reorder=0.01), seed=5)
    outgoing = [os.urandom(60000) for _ in range(70)]  # 4 MB
    back_size = 2 * 1000 * 1000
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                               args=CHROMIUM_ARGS)
        pc = RTCPeerConnection()
        try:
            page = await browser.new_page()
            # crypto.subtle needs a secure context: http://localhost is one. Playwright
            # serves the page itself; nothing listens on port 80.
            await page.route("http://localhost/", lambda route: route.fulfill(
                body="<!doctype html><title>peer</title>", content_type="text/html"))
            await page.goto("http://localhost/")
            await page.evaluate(PAGE_SCRIPT)
            channel = pc.createDataChannel("rtcxfer/1")
            incoming: list[bytes] = []
            finished: asyncio.Future[str] = asyncio.get_running_loop().create_future()

            @channel.on("message")
            def on_message(message: bytes | str) -> None:
                if isinstance(message, str):
                    if not finished.done():
                        finished.set_result(message)
                elif message:
                    incoming.append(message)
                else:
                    back_done.set()

            back_done = asyncio.Event()
            opened = asyncio.Event()
            channel.on("open", opened.set)
            await pc.setLocalDescription(await pc.createOffer())
            offer, address = route_candidates(pc.localDescription.sdp, relay.b_address)
            relay.set_peer_a(address)
            answer = await page.evaluate("sdp => peer.answer(sdp)", offer)
            answer, address = route_candidates(answer, relay.a_address, host=None)
            relay.set_peer_b(address)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            assert isinstance(pc.sctp, FastSctpTransport)
            async with asyncio.timeout(RUN_TIMEOUT):
                await opened.wait()
                await send_all(channel, outgoing)
                channel.send("end")
                page_digest = await finished
                assert page_digest == hashlib.sha256(b"".join(outgoing)).hexdigest()
                sent_back = await page.evaluate("size => peer.sendBack(size)", back_size)
                await back_done.wait()
            data = b"".join(incoming)
            assert len(data) == back_size
            assert hashlib.sha256(data).hexdigest() == sent_back
            await page.evaluate("peer.close()")
        finally:
            await pc.close()
            await browser.close()
            relay.close()
    assert relay.forward.lost > 0 and relay.backward.lost > 0
