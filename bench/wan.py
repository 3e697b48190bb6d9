"""Throughput over emulated wide-area paths: stock aiortc, rtcxfer and Chromium, one run.

Every transfer crosses a userspace link emulator (rtcxfer/fastpath/linkemu.py: a UDP
relay on 127.0.0.1 with one-way delay, a rate limit with a drop-tail queue of one
bandwidth-delay product, random loss and optional reordering) run by this process; the
peers see the relay as each other because the candidates they exchange are rewritten.
Per condition, in this order, interleaved so a shared machine's load hits all alike:

- ``aiortc``: stock aiortc on both sides, sending as aiortc's datachannel-filexfer
  example does (bench/_peer.py ``baseline``);
- ``rtcxfer``: rtcxfer's real transfer path with the fast path (bench/_peer.py
  ``rtcxfer``: send_files/receive_files, SHA-256 verified);
- ``rtcxfer-main`` (with ``--main DIR``): the same with the code in DIR and its
  interpreter (``--main-python``), e.g. today's main branch, for before/after figures;
- ``chromium`` (with ``--chromium``): two pages of one headless Chromium
  (/usr/bin/chromium via playwright), one sending to the other over a data channel.

Printed per condition and variant: MB/s (median of the runs), % of the link's rate,
the p50 queueing delay the emulator saw (p50 RTT under load is the path RTT plus it),
and the emulator's self-check (p99 lateness of its departures, drops on its own
sockets), which must say "ok" for a figure to be the path's. Rates count UDP payload.

    python bench/wan.py                                  # all conditions, 1 run
    python bench/wan.py --conditions rtt50,loss0.5 --runs 3 --chromium
    python bench/wan.py --conditions rtt200 --variants rtcxfer --size 1024   # memory
    python bench/wan.py --share        # two rtcxfer flows, then rtcxfer + Chromium
    python bench/wan.py --share --share-delay 2 --share-path rtt200   # a late joiner

Conditions: loopback (no emulator), rtt20, rtt50, rtt100, rtt200 (100 Mbit/s),
loss0.1, loss0.5, loss2 (50 ms, 100 Mbit/s), reorder1 (50 ms, 1 % reordering),
sat300 (10 Mbit/s, 300 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rtcxfer.fastpath.linkemu import Conditions, Link, Relay, route_candidates

PEER_SCRIPT = Path(__file__).with_name("_peer.py")
MIB = 1024 * 1024
RUN_TIMEOUT = 900.0
MBIT = 1e6
EMULATOR_NICENESS = -10

CONDITIONS: dict[str, Conditions | None] = {
    "loopback": None,
    "rtt20": Conditions(rate=100 * MBIT, delay=0.010),
    "rtt50": Conditions(rate=100 * MBIT, delay=0.025),
    "rtt100": Conditions(rate=100 * MBIT, delay=0.050),
    "rtt200": Conditions(rate=100 * MBIT, delay=0.100),
    "loss0.1": Conditions(rate=100 * MBIT, delay=0.025, loss=0.001),
    "loss0.5": Conditions(rate=100 * MBIT, delay=0.025, loss=0.005),
    "loss2": Conditions(rate=100 * MBIT, delay=0.025, loss=0.02),
    "reorder1": Conditions(rate=100 * MBIT, delay=0.025, reorder=0.01),
    "sat300": Conditions(rate=10 * MBIT, delay=0.150),
}
VARIANTS = ("aiortc", "rtcxfer", "rtcxfer-main", "chromium")


class BenchError(RuntimeError):
    """A run did not complete: its figure would be meaningless."""


@dataclass
class Result:
    seconds: float
    size: int
    sender_rss: int = 0
    receiver_rss: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    emulator_ok: bool = True
    emulator_text: str = ""
    cpu: tuple[float, float] = (0.0, 0.0)  # seconds, sender and receiver
    sender: dict[str, Any] = field(default_factory=dict)  # the fast path's sender state

    @property
    def rate(self) -> float:
        return self.size / 1e6 / self.seconds


# ---------------------------------------------------------------- python peers


async def read_json(process: asyncio.subprocess.Process, who: str) -> dict[str, Any]:
    assert process.stdout is not None
    line = await process.stdout.readline()
    if not line:
        assert process.stderr is not None
        error = (await process.stderr.read()).decode(errors="replace")
        raise BenchError(f"{who} exited early:\n{error[-2000:]}")
    message: dict[str, Any] = json.loads(line)
    return message


async def write_json(process: asyncio.subprocess.Process, message: dict[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps(message).encode() + b"\n")
    await process.stdin.drain()


def peer_command(variant: str, role: str, path: Path, args: argparse.Namespace) -> list[str]:
    style = "baseline" if variant == "aiortc" else "rtcxfer"
    python = sys.executable
    script = PEER_SCRIPT
    if variant == "rtcxfer-main":
        python = args.main_python
        script = Path(args.main) / "bench" / "_peer.py"
    # --peer-nice runs the peers at a lower priority than this process (the emulator):
    # then the emulator gets the CPU when a datagram is due, but the peers lose it to any
    # other load on the machine. Default 0; the emulator's self-check flags bad runs.
    command = ["nice", "-n", str(args.peer_nice), python, str(script), role, style, str(path)]
    if variant != "aiortc":
        command.append("--fast-path")
    return command


async def python_transfer(variant: str, source: Path, workdir: Path,
                          relays: list[Relay] | None, args: argparse.Namespace) -> Result:
    """One transfer between two bench/_peer.py processes, through ``relays[0]`` if any."""
    if variant == "aiortc":
        target = workdir / "received.bin"
        destination = target
    else:
        target = workdir / f"downloads-{variant}"
        target.mkdir(exist_ok=True)
        destination = target / source.name
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if variant == "rtcxfer-main":
        env["PYTHONPATH"] = str(args.main)
    pipes: dict[str, Any] = {"stdin": asyncio.subprocess.PIPE,
                             "stdout": asyncio.subprocess.PIPE,
                             "stderr": asyncio.subprocess.PIPE}
    receiver = await asyncio.create_subprocess_exec(
        *peer_command(variant, "receiver", target, args), env=env, **pipes)
    sender = await asyncio.create_subprocess_exec(
        *peer_command(variant, "sender", source, args), env=env, **pipes)
    relay = relays[0] if relays else None
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            offer = await read_json(sender, "sender")
            if relay is not None:
                offer["sdp"], address = route_candidates(offer["sdp"], relay.b_address)
                relay.set_peer_a(address)
            await write_json(receiver, offer)
            answer = await read_json(receiver, "receiver")
            if relay is not None:
                answer["sdp"], address = route_candidates(answer["sdp"], relay.a_address)
                relay.set_peer_b(address)
            await write_json(sender, answer)
            sent = (await read_json(sender, "sender"))["result"]
            received = (await read_json(receiver, "receiver"))["result"]
            await sender.wait()
            await receiver.wait()
    finally:
        for process in (sender, receiver):
            if process.returncode is None:
                process.kill()
                await process.wait()
    size = source_size(source)
    if received["bytes"] != size or sent["reply"] != "done":
        raise BenchError(f"{variant}: received {received['bytes']} of {size} bytes")
    if variant != "aiortc" and not same_file(source, destination):
        raise BenchError(f"{variant}: the received file differs from the sent one")
    destination.unlink()
    return Result(sent["seconds"], size, sent["peak_rss"], received["peak_rss"],
                  cpu=(sent["cpu_seconds"], received["cpu_seconds"]),
                  sender=sent.get("sctp") or {})


def source_size(path: Path) -> int:
    return path.stat().st_size


def same_file(left: Path, right: Path) -> bool:
    with left.open("rb") as one, right.open("rb") as other:
        while True:
            a, b = one.read(MIB), other.read(MIB)
            if a != b:
                return False
            if not a:
                return True


# ---------------------------------------------------------------- chromium

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--allow-loopback-in-peer-connection",
                 "--disable-features=WebRtcHideLocalIpsWithMdns"]

# Runs in each page: one RTCPeerConnection, non-trickle SDP (gathering completed).
PAGE_SCRIPT = """
window.rtc = {
  async gathered(pc) {
    if (pc.iceGatheringState !== "complete") {
      await new Promise(done => pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") done();
      }));
    }
    return pc.localDescription.sdp;
  },
  async offer() {
    const pc = new RTCPeerConnection();
    this.pc = pc;
    this.channel = pc.createDataChannel("bench");
    this.channel.binaryType = "arraybuffer";
    this.opened = new Promise(done => this.channel.onopen = done);
    await pc.setLocalDescription(await pc.createOffer());
    return this.gathered(pc);
  },
  async answer(sdp) {
    const pc = new RTCPeerConnection();
    this.pc = pc;
    this.received = 0;
    pc.ondatachannel = event => {
      const channel = event.channel;
      channel.binaryType = "arraybuffer";
      channel.onmessage = message => {
        if (message.data.byteLength === 0) { channel.send("done"); return; }
        this.received += message.data.byteLength;
      };
    };
    await pc.setRemoteDescription({type: "offer", sdp});
    await pc.setLocalDescription(await pc.createAnswer());
    return this.gathered(pc);
  },
  async accept(sdp) { await this.pc.setRemoteDescription({type: "answer", sdp}); },
  async send(size) {
    await this.opened;
    const channel = this.channel;
    const block = new Uint8Array(65536);
    crypto.getRandomValues(block);
    channel.bufferedAmountLowThreshold = 256 * 1024;
    const reply = new Promise(done => channel.onmessage = () => done());
    const started = performance.now();
    let sent = 0;
    while (sent < size) {
      if (channel.bufferedAmount > 1024 * 1024) {
        await new Promise(done => channel.onbufferedamountlow = done);
      }
      const length = Math.min(block.length, size - sent);
      channel.send(length === block.length ? block : block.subarray(0, length));
      sent += length;
    }
    channel.send(new ArrayBuffer(0));
    await reply;
    return (performance.now() - started) / 1000;
  },
  close() { if (this.pc) this.pc.close(); this.pc = null; },
};
"""


class Chromium:
    """Two pages in one headless Chromium; page 0 sends to page 1."""

    def __init__(self) -> None:
        self._playwright: Any = None
        self._browser: Any = None
        self.pages: list[Any] = []

    async def start(self) -> Chromium:
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for _ in range(2):
            page = await (await self._browser.new_context()).new_page()
            await page.goto("about:blank")
            await page.evaluate(PAGE_SCRIPT)
            self.pages.append(page)
        return self

    async def transfer(self, size: int, relay: Relay | None) -> Result:
        sender, receiver = self.pages
        offer = await sender.evaluate("rtc.offer()")
        if relay is not None:
            offer, address = route_candidates(offer, relay.b_address, host=None)
            relay.set_peer_a(address)
        answer = await receiver.evaluate("sdp => rtc.answer(sdp)", offer)
        if relay is not None:
            answer, address = route_candidates(answer, relay.a_address, host=None)
            relay.set_peer_b(address)
        await sender.evaluate("sdp => rtc.accept(sdp)", answer)
        try:
            seconds = await asyncio.wait_for(
                sender.evaluate("size => rtc.send(size)", size), RUN_TIMEOUT)
            received = await receiver.evaluate("rtc.received")
        finally:
            for page in self.pages:
                await page.evaluate("rtc.close()")
        if received != size:
            raise BenchError(f"chromium: received {received} of {size} bytes")
        return Result(float(seconds), size)

    async def close(self) -> None:
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()


# ---------------------------------------------------------------- runs


async def run_one(variant: str, condition: Conditions | None, source: Path, size: int,
                  workdir: Path, chromium: Chromium | None, args: argparse.Namespace,
                  seed: int) -> Result:
    relay = None
    if condition is not None:
        relay = await Relay(Link(condition, seed), Link(condition, seed + 1)).start()
    try:
        if variant == "chromium":
            assert chromium is not None
            result = await chromium.transfer(size, relay)
        else:
            result = await python_transfer(variant, source, workdir,
                                           [relay] if relay else None, args)
    finally:
        if relay is not None:
            relay.close()
    if relay is not None:
        result.emulator_ok, result.emulator_text = relay.verdict()
        result.emulator_text += f", bench process CPU {relay.cpu_share() * 100:.0f} %"
        result.figures = {
            "queue_p50_ms": relay.forward.queue_delay_p50() * 1000,
            "queue_drops": relay.forward.dropped,
            "random_losses": relay.forward.lost,
        }
    return result


def format_sender(stats: dict[str, Any]) -> str:
    return (f"{stats['mode']} bw {stats['btl_bw'] / 1e6:.2f} MB/s, min RTT "
            f"{stats['min_rtt'] * 1000:.1f} ms, cwnd {stats['cwnd'] / 1e6:.2f} MB, "
            f"{stats['rounds']} rounds, {stats['retransmissions']} retransmissions, "
            f"{stats['timeouts']} T3 timeouts")


def variant_size(variant: str, condition_name: str, args: argparse.Namespace) -> int:
    """Smaller transfers where a variant is known to crawl, so a round ends in minutes."""
    if variant != "rtcxfer" and condition_name.startswith(("loss", "reorder")):
        return min(args.size, args.slow_size) * MIB
    if condition_name == "sat300":
        return min(args.size, 2 * args.slow_size) * MIB
    return args.size * MIB


def make_source(workdir: Path, size_mib: int) -> Path:
    source = workdir / f"payload-{size_mib}.bin"
    if not source.exists():
        with source.open("wb") as sink:
            for _ in range(size_mib):
                sink.write(os.urandom(MIB))
    return source


def link_rate(condition: Conditions | None) -> float | None:
    if condition is None or condition.rate is None:
        return None
    return condition.rate / 8 / 1e6


def report(results: dict[tuple[str, str], list[Result]], conditions: list[str],
           variants: list[str]) -> str:
    lines = ["", f"{'condition':<10} {'variant':<13} {'MB/s':>7} {'% link':>7} "
             f"{'vs aiortc':>9} {'queue p50':>10} {'RSS tx/rx MB':>13}   runs (MB/s)   emulator"]
    for name in conditions:
        rate = link_rate(CONDITIONS[name])
        medians = {variant: statistics.median(r.rate for r in results[(name, variant)])
                   for variant in variants if results.get((name, variant))}
        for variant in variants:
            runs = results.get((name, variant))
            if not runs:
                continue
            median = medians[variant]
            share = f"{median / rate * 100:.0f} %" if rate else "-"
            ratio = f"{median / medians['aiortc']:.2f}x" if "aiortc" in medians else "-"
            queue = statistics.median(r.figures.get("queue_p50_ms", 0.0) for r in runs)
            queue_text = f"{queue:.1f} ms" if CONDITIONS[name] else "-"
            rss = (f"{max(r.sender_rss for r in runs) / MIB:.0f}/"
                   f"{max(r.receiver_rss for r in runs) / MIB:.0f}"
                   if runs[0].sender_rss else "-")
            emulator = "ok" if all(r.emulator_ok for r in runs) else "CHECK"
            lines.append(
                f"{name:<10} {variant:<13} {median:>7.2f} {share:>7} {ratio:>9} "
                f"{queue_text:>10} {rss:>13}   "
                + " ".join(f"{r.rate:.2f}" for r in runs) + f"   {emulator}")
    return "\n".join(lines)


async def share(args: argparse.Namespace, workdir: Path, chromium: Chromium | None) -> None:
    """Two flows through one bottleneck (100 Mbit/s, 50 ms unless --share-path):
    rtcxfer+rtcxfer, rtcxfer+Chromium; the second starts --share-delay s after the first."""
    condition = CONDITIONS[args.share_path]
    assert condition is not None
    source = make_source(workdir, args.size)
    pairs = [("rtcxfer", "rtcxfer")]
    if chromium is not None:
        pairs.append(("rtcxfer", "chromium"))
    for first, second in pairs:
        forward, backward = Link(condition, 1), Link(condition, 2)
        relays = [await Relay(forward, backward).start() for _ in range(2)]
        try:
            one_dir = workdir / "one"
            two_dir = workdir / "two"
            one_dir.mkdir(exist_ok=True)
            two_dir.mkdir(exist_ok=True)
            async def later(task: Awaitable[Result]) -> Result:
                await asyncio.sleep(args.share_delay)
                return await task

            tasks = [
                python_transfer(first, source, one_dir, [relays[0]], args),
                later(chromium.transfer(args.size * MIB, relays[1]) if second == "chromium"
                      else python_transfer(second, source, two_dir, [relays[1]], args)),
            ]
            started = time.monotonic()
            running = [asyncio.ensure_future(task) for task in tasks]
            # The share is measured while both flows run: from the second one's first
            # byte on the link to the first one's end.
            for _ in range(int((args.share_delay + 60) / 0.01)):  # at most a minute late
                if relays[1].delivered_to_b or running[0].done():
                    break
                await asyncio.sleep(0.01)
            both = time.monotonic()
            counts_before = [relay.delivered_to_b for relay in relays]
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            overlap = time.monotonic() - both
            counts = [relay.delivered_to_b - before
                      for relay, before in zip(relays, counts_before, strict=True)]
            one, two = await asyncio.gather(*running)
            wall = time.monotonic() - started
        finally:
            for relay in relays:
                relay.close()
        _ok, text = relays[0].verdict()
        first_rate, second_rate = (count / 1e6 / overlap for count in counts)
        print(f"share {first}+{second} through one bottleneck ({args.share_path}, the "
              f"second {args.share_delay:g} s later), while both "
              f"ran ({overlap:.1f} s): {first_rate:.2f} and {second_rate:.2f} MB/s on the "
              f"link (ratio {first_rate / second_rate:.2f}, {second} "
              f"{second_rate / (first_rate + second_rate) * 100:.0f} % of the sum); whole "
              f"transfers {one.rate:.2f} and {two.rate:.2f} MB/s in {wall:.1f} s; {text}",
              flush=True)


async def main_async(args: argparse.Namespace) -> None:
    # The emulator runs in this process: ask for a higher priority than the peers (and
    # the other load on a shared machine) so its departures are on time. Needs root.
    try:
        os.setpriority(os.PRIO_PROCESS, 0, EMULATOR_NICENESS)
        print(f"emulator process niceness {EMULATOR_NICENESS}", flush=True)
    except OSError:
        print("emulator process at normal priority (not allowed to raise it)", flush=True)
    conditions = [name.strip() for name in args.conditions.split(",")]
    variants = [name.strip() for name in args.variants.split(",")]
    if args.main:
        variants.append("rtcxfer-main")
    if args.chromium:
        variants.append("chromium")
    results: dict[tuple[str, str], list[Result]] = {}
    with tempfile.TemporaryDirectory(prefix="rtcxfer-bench-wan-") as tmp:
        workdir = Path(tmp)
        chromium = await Chromium().start() if args.chromium else None
        try:
            if args.share:
                await share(args, workdir, chromium)
                return
            seed = 1
            for run in range(args.runs):
                for name in conditions:
                    for variant in variants:
                        size = variant_size(variant, name, args)
                        source = make_source(workdir, size // MIB)
                        seed += 2
                        result = await run_one(variant, CONDITIONS[name], source, size,
                                               workdir, chromium, args, seed)
                        results.setdefault((name, variant), []).append(result)
                        rate = link_rate(CONDITIONS[name])
                        share_text = f" ({result.rate / rate * 100:.0f} % of link)" if rate else ""
                        print(f"run {run + 1}/{args.runs} {name} {variant}: "
                              f"{result.rate:.2f} MB/s{share_text}, {size // MIB} MiB, "
                              f"CPU tx/rx {result.cpu[0] / result.seconds * 100:.0f}/"
                              f"{result.cpu[1] / result.seconds * 100:.0f} %; "
                              f"{result.emulator_text or 'no emulator'}; {result.figures}"
                              + (f"; sender {format_sender(result.sender)}"
                                 if result.sender else ""),
                              flush=True)
        finally:
            if chromium is not None:
                await chromium.close()
    print(report(results, conditions, variants))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conditions", default=",".join(CONDITIONS),
                        help="comma-separated, from: " + ", ".join(CONDITIONS))
    parser.add_argument("--variants", default="aiortc,rtcxfer",
                        help="comma-separated, from aiortc, rtcxfer")
    parser.add_argument("--chromium", action="store_true",
                        help="also two Chromium pages through the same path")
    parser.add_argument("--main", type=Path,
                        help="also rtcxfer from this source tree (e.g. /work/main)")
    parser.add_argument("--main-python", default="/work/venv/bin/python",
                        help="interpreter for --main (default /work/venv/bin/python)")
    parser.add_argument("--size", type=int, default=64, help="MiB per transfer (default 64)")
    parser.add_argument("--slow-size", type=int, default=8,
                        help="MiB for the variants other than rtcxfer on lossy and "
                             "reordering paths, twice that for everyone at 10 Mbit/s "
                             "(default 8)")
    parser.add_argument("--runs", type=int, default=1, help="rounds (default 1)")
    parser.add_argument("--peer-nice", type=int, default=0,
                        help="niceness of the peer processes (default 0)")
    parser.add_argument("--share-path", default="rtt50", choices=[
                            name for name, condition in CONDITIONS.items() if condition],
                        help="the bottleneck for --share (default rtt50)")
    parser.add_argument("--share-delay", type=float, default=0.0,
                        help="seconds between the two flows' starts for --share")
    parser.add_argument("--share", action="store_true",
                        help="instead: two flows sharing one bottleneck")
    args = parser.parse_args()
    unknown = [name for name in args.conditions.split(",") if name.strip() not in CONDITIONS]
    bad = [name for name in args.variants.split(",") if name.strip() not in ("aiortc", "rtcxfer")]
    if unknown or bad:
        parser.error(f"unknown conditions {unknown} or variants {bad}")
    if args.chromium and not Path(CHROMIUM).exists():
        parser.error(f"{CHROMIUM} is missing: apt-get install chromium")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_async(args))


if __name__ == "__main__":
    try:
        main()
    except BenchError as error:
        sys.exit(f"bench failed: {error}")
