"""A sending or receiving rtcxfer peer in its own process, for the fast path tests.

Runs rtcxfer's real transfer path (``send_files``/``receive_files``) over an
RTCPeerConnection whose only host candidate is ``--host``. SDP travels through stdin and
stdout, one JSON line each way, then the process prints one ``{"result": ...}`` line.

``--stall-after N --stall-seconds S`` makes the receiver stop reading for S seconds once
N bytes have arrived, by blocking its event loop: nothing is read from the socket, no
SACK and no STUN answer goes out, as with a receiver stuck on a slow disk.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aioice.ice
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from rtcxfer import fastpath
from rtcxfer.transfer import (
    IncomingOffer,
    SilentObserver,
    TransferReport,
    collect_sources,
    receive_files,
    send_files,
)

LINGER_SECONDS = 30.0


async def read_description() -> RTCSessionDescription:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line:
        raise SystemExit("the test closed the signaling pipe")
    return RTCSessionDescription(**json.loads(line))


def write_line(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def write_description(pc: RTCPeerConnection) -> None:
    write_line({"sdp": pc.localDescription.sdp, "type": pc.localDescription.type})


async def send(path: Path) -> dict[str, Any]:
    pc = RTCPeerConnection()
    channel = pc.createDataChannel("rtcxfer/1")
    await pc.setLocalDescription(await pc.createOffer())
    write_description(pc)
    await pc.setRemoteDescription(await read_description())
    started = time.monotonic()
    try:
        assert pc.sctp is not None
        report = await send_files(channel, collect_sources([path]),
                                  max_message_size=pc.sctp._remote_max_message_size,
                                  observer=SilentObserver())
    finally:
        await pc.close()
    return {"bytes": report.bytes, "ok": report.ok, "seconds": time.monotonic() - started}


async def receive(folder: Path, stall_after: int | None, stall_seconds: float) -> dict[str, Any]:
    pc = RTCPeerConnection()
    await pc.setRemoteDescription(await read_description())
    await pc.setLocalDescription(await pc.createAnswer())
    write_description(pc)
    outcome: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    # The event loop holds tasks weakly: this set keeps the receiving task alive.
    tasks: set[asyncio.Future[None]] = set()

    async def accept(offer: IncomingOffer) -> None:
        return None

    async def run(transfer: Coroutine[Any, Any, TransferReport]) -> None:
        try:
            report = await transfer
            outcome.set_result({"bytes": report.bytes, "ok": report.ok})
        except Exception as error:  # reported to the test, which fails with it
            outcome.set_result({"error": repr(error)})

    sender_gone = asyncio.Event()

    @pc.on("datachannel")
    def on_datachannel(channel: RTCDataChannel) -> None:
        channel.on("close", sender_gone.set)
        if stall_after is not None:
            stall_once(channel, stall_after, stall_seconds)
        # Called right here so its message listener is in place before the first frame.
        transfer = receive_files(channel, download_dir=folder, decide=accept, overwrite=True,
                                 observer=SilentObserver())
        tasks.add(asyncio.ensure_future(run(transfer)))

    try:
        return await outcome
    finally:
        # Stay until the sender hangs up: our "done" may still need retransmitting.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sender_gone.wait(), LINGER_SECONDS)
        await pc.close()


def stall_once(channel: RTCDataChannel, after: int, seconds: float) -> None:
    received = 0

    @channel.on("message")
    def on_message(message: bytes | str) -> None:
        nonlocal received
        if isinstance(message, bytes) and received < after <= received + len(message):
            time.sleep(seconds)
        if isinstance(message, bytes):
            received += len(message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=["send", "receive"])
    parser.add_argument("path", type=Path, help="file to send, or download folder")
    parser.add_argument("--host", default="127.0.0.1", help="the only host candidate address")
    parser.add_argument("--stock", action="store_true", help="stock aiortc, no fast path")
    parser.add_argument("--stall-after", type=int)
    parser.add_argument("--stall-seconds", type=float, default=0.0)
    args = parser.parse_args()

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [args.host]
    if args.stock:
        fastpath.disable()
    else:
        fastpath.enable()
    if args.role == "send":
        result = asyncio.run(send(args.path))
    else:
        result = asyncio.run(receive(args.path, args.stall_after, args.stall_seconds))
    write_line({"result": result})


if __name__ == "__main__":
    main()
