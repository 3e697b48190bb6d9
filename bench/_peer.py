"""One side of a bench/transfer.py run: a data channel sender or receiver in its own process.

The parent relays the SDP offer and answer through stdin/stdout (one JSON line each), then
reads one JSON result line from each side. Candidates are restricted to 127.0.0.1 so the
figures measure the data channel, not the machine's network configuration.

Two transfer styles:

- ``baseline``: what aiortc's own ``datachannel-filexfer`` example does: 16 KiB messages,
  ``send()`` while ``bufferedAmount`` is at most ``bufferedAmountLowThreshold`` (0), more on
  ``bufferedamountlow``, an empty message marks the end; the receiver writes each message
  to a file. The receiver answers ``"done"`` so the sender can time the whole transfer.
- ``rtcxfer``: rtcxfer's real transfer path, the code ``rtcxfer send``/``listen`` run
  once connected: ``rtcxfer.transfer.send_files``/``receive_files`` (rtcxfer/1, 64 KiB
  frames when ``max-message-size`` allows, SHA-256 verified, part file moved into place).

The receiver's ``path`` is the file to write (baseline) or the download folder (rtcxfer).
With ``--fast-path`` the process runs ``rtcxfer.fastpath.enable()`` first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import aioice.ice
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from rtcxfer.transfer import (
    IncomingOffer,
    SilentObserver,
    collect_sources,
    receive_files,
    send_files,
)

BASELINE_MESSAGE_SIZE = 16 * 1024
LINGER_SECONDS = 30.0
BACKGROUND_TASKS: set[asyncio.Future[None]] = set()


def loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


def usage_snapshot() -> tuple[float, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def read_line() -> dict[str, Any]:
    line = sys.stdin.readline()
    if not line:
        raise SystemExit("parent closed the signaling pipe")
    message: dict[str, Any] = json.loads(line)
    return message


def write_line(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def read_signal() -> dict[str, Any]:
    return await asyncio.get_running_loop().run_in_executor(None, read_line)


async def run_sender(style: str, path: Path) -> dict[str, Any]:
    pc = RTCPeerConnection()
    channel = pc.createDataChannel("rtcxfer/1")
    # Listen before the answer is applied: the channel can open while it is.
    opened = asyncio.Event()
    channel.on("open", opened.set)
    await pc.setLocalDescription(await pc.createOffer())
    write_line({"sdp": pc.localDescription.sdp, "type": pc.localDescription.type})
    answer = await read_signal()
    await pc.setRemoteDescription(RTCSessionDescription(**answer))

    await opened.wait()
    cpu_start, _ = usage_snapshot()
    started = time.perf_counter()
    if style == "baseline":
        reply = await send_like_aiortc_example(channel, path)
    else:
        reply = await send_with_rtcxfer(pc, channel, path)
    elapsed = time.perf_counter() - started
    cpu_end, peak_rss = usage_snapshot()
    stats = getattr(pc.sctp, "stats", None)
    sctp_stats = stats() if callable(stats) else None
    await pc.close()
    return {
        "sctp": sctp_stats,
        "seconds": elapsed,
        "cpu_seconds": cpu_end - cpu_start,
        "peak_rss": peak_rss,
        "reply": reply,
    }


async def send_like_aiortc_example(channel: RTCDataChannel, path: Path) -> str:
    """The sending loop of aiortc's examples/datachannel-filexfer; the receiver's reply."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    @channel.on("message")
    def on_message(message: str | bytes) -> None:
        if not reply.done():
            reply.set_result(str(message))

    with path.open("rb") as source:
        done_reading = False

        def send_data() -> None:
            nonlocal done_reading
            while (
                channel.bufferedAmount <= channel.bufferedAmountLowThreshold and not done_reading
            ):
                data = source.read(BASELINE_MESSAGE_SIZE)
                channel.send(data)
                if not data:
                    done_reading = True
                    if not done.done():
                        done.set_result(None)

        channel.on("bufferedamountlow", send_data)
        send_data()
        await done
    return await reply


async def send_with_rtcxfer(pc: RTCPeerConnection, channel: RTCDataChannel, path: Path) -> str:
    """rtcxfer's own sending side (what ``rtcxfer send`` runs once connected)."""
    assert pc.sctp is not None
    await send_files(channel, collect_sources([path]),
                     max_message_size=pc.sctp._remote_max_message_size,
                     observer=SilentObserver())
    return "done"


async def run_receiver(style: str, path: Path) -> dict[str, Any]:
    pc = RTCPeerConnection()
    result: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    sender_gone = asyncio.Event()

    @pc.on("datachannel")
    def on_datachannel(channel: RTCDataChannel) -> None:
        channel.on("close", sender_gone.set)
        handler = receive_like_aiortc_example if style == "baseline" else receive_with_rtcxfer
        handler(channel, path, result)

    offer = await read_signal()
    await pc.setRemoteDescription(RTCSessionDescription(**offer))
    await pc.setLocalDescription(await pc.createAnswer())
    write_line({"sdp": pc.localDescription.sdp, "type": pc.localDescription.type})
    outcome = await result
    cpu, peak_rss = usage_snapshot()
    # Stay until the sender hangs up: our last message may still need retransmitting.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(sender_gone.wait(), LINGER_SECONDS)
    await pc.close()
    return {**outcome, "cpu_seconds": cpu - outcome.pop("cpu_start"), "peak_rss": peak_rss}


def receive_like_aiortc_example(
    channel: RTCDataChannel, path: Path, result: asyncio.Future[dict[str, Any]]
) -> None:
    sink = path.open("wb")
    cpu_start, _ = usage_snapshot()
    received = 0

    @channel.on("message")
    def on_message(message: str | bytes) -> None:
        nonlocal received
        assert isinstance(message, bytes)
        if message:
            received += len(message)
            sink.write(message)
            return
        sink.close()
        channel.send("done")
        result.set_result({"bytes": received, "cpu_start": cpu_start})


def receive_with_rtcxfer(
    channel: RTCDataChannel, folder: Path, result: asyncio.Future[dict[str, Any]]
) -> None:
    """rtcxfer's own receiving side (what ``rtcxfer listen`` runs for an accepted offer)."""
    cpu_start, _ = usage_snapshot()

    async def accept(offer: IncomingOffer) -> None:
        return None

    # receive_files must be called from the datachannel event itself: it registers its
    # message listener before returning, so the sender's first frame cannot slip by.
    transfer = receive_files(channel, download_dir=folder, decide=accept, overwrite=True,
                             observer=SilentObserver())

    async def receive() -> None:
        report = await transfer
        result.set_result({"bytes": report.bytes, "cpu_start": cpu_start})

    task = asyncio.ensure_future(receive())
    # The event loop holds tasks weakly: keep this one alive until it finishes.
    BACKGROUND_TASKS.add(task)
    task.add_done_callback(BACKGROUND_TASKS.discard)


def stock_method(name: str) -> Any:
    from aiortc.rtcsctptransport import RTCSctpTransport

    return getattr(RTCSctpTransport, name)


def without_component(component: str) -> None:
    """Put one piece of the fast path back to stock aiortc, to measure what it buys."""
    import aiortc.rtcpeerconnection
    from aiortc.rtcdtlstransport import RTCDtlsTransport

    from rtcxfer.fastpath.ice import BurstReader
    from rtcxfer.fastpath.sctp import FastSctpTransport

    if component == "delayed-sack":
        FastSctpTransport._send_sack = stock_method("_send_sack")
    elif component == "sack-processing":
        stock_receive_sack = stock_method("_receive_sack_chunk")

        async def receive_sack(self: Any, chunk: Any) -> None:
            # Stock SACK handling marks retransmissions without telling the fast
            # _transmit, so let it scan the sent queue every time, as stock does.
            self._retransmit_pending = True
            await stock_receive_sack(self, chunk)

        FastSctpTransport._receive_sack_chunk = receive_sack
    elif component == "reassembly":
        FastSctpTransport._receive_data_chunk = stock_method("_receive_data_chunk")
    elif component == "t3-deadline":
        for name in ("_t3_start", "_t3_restart", "_t3_cancel"):
            setattr(FastSctpTransport, name, stock_method(name))
    elif component == "burst-read":
        BurstReader.install = classmethod(lambda cls, pair, on_dtls: None)  # type: ignore[assignment]
    elif component == "sync-dtls":
        aiortc.rtcpeerconnection.RTCDtlsTransport = RTCDtlsTransport
    else:
        raise SystemExit(f"unknown component {component!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=["sender", "receiver"])
    parser.add_argument("style", choices=["baseline", "rtcxfer"])
    parser.add_argument("path", type=Path, help="file to send, or where to write it")
    parser.add_argument("--fast-path", action="store_true", help="enable rtcxfer.fastpath")
    parser.add_argument("--profile", type=Path, help="write a cProfile dump here")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument("--without", action="append", default=[],
                        help="put this fast path component back to stock (repeatable)")
    args = parser.parse_args()

    aioice.ice.get_host_addresses = loopback_only
    if args.fast_path:
        from rtcxfer import fastpath

        fastpath.enable()
        for component in args.without:
            without_component(component)
    run = run_sender if args.role == "sender" else run_receiver
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    loop_factory = None
    if args.uvloop:
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        outcome = runner.run(run(args.style, args.path))
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    write_line({"result": outcome})


if __name__ == "__main__":
    main()
