"""Data channel throughput: stock aiortc vs rtcxfer, side by side, on loopback.

Each run moves the same N MiB of random bytes between two processes (sender and
receiver, see bench/_peer.py) over a real RTCPeerConnection on 127.0.0.1:

- ``baseline``: stock aiortc, transferring as aiortc's datachannel-filexfer example does;
- ``rtcxfer``: rtcxfer's real transfer path (``rtcxfer.transfer.send_files`` /
  ``receive_files``, as ``rtcxfer send``/``listen`` run it: 64 KiB frames, SHA-256
  verified, part file moved into place) with ``rtcxfer.fastpath.enable()``.

Runs are interleaved (baseline, rtcxfer, baseline, ...) so that the load of a shared
machine hits both alike; the table shows medians and the rtcxfer/baseline ratio.

    python bench/transfer.py                # 256 MiB, 3 runs each
    python bench/transfer.py --size 64 --runs 5
    python bench/transfer.py --variants rtcxfer-main,rtcxfer   # against /work/main's code
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

PEER_SCRIPT = Path(__file__).with_name("_peer.py")
MIB = 1024 * 1024
RUN_TIMEOUT = 900.0


@dataclass(frozen=True)
class Variant:
    name: str
    style: str
    fast_path: bool
    uvloop: bool = False
    without: tuple[str, ...] = ()
    # Another source tree and interpreter (``rtcxfer-main``: --main, --main-python).
    main: bool = False


VARIANTS = {
    "baseline": Variant("baseline", "baseline", fast_path=False),
    "rtcxfer": Variant("rtcxfer", "rtcxfer", fast_path=True),
    # Diagnostics: rtcxfer's transfer code on stock aiortc (what --no-fast-path gives),
    # and aiortc's example on the fast path (what the tuned transports alone buy).
    "rtcxfer-stock": Variant("rtcxfer-stock", "rtcxfer", fast_path=False),
    "example-fast": Variant("example-fast", "baseline", fast_path=True),
    # rtcxfer on uvloop (the fast path's burst reads need asyncio's selector loop).
    "rtcxfer-uvloop": Variant("rtcxfer-uvloop", "rtcxfer", fast_path=True, uvloop=True),
    # rtcxfer from another source tree (--main, e.g. /work/main): before/after figures.
    "rtcxfer-main": Variant("rtcxfer-main", "rtcxfer", fast_path=True, main=True),
}
MAIN = {"tree": Path("/work/main"), "python": "/work/venv/bin/python"}
# Ablations: the fast path with one component put back to stock, to see what each buys.
FAST_PATH_COMPONENTS = ("delayed-sack", "sack-processing", "reassembly", "t3-deadline",
                        "burst-read", "sync-dtls")
for _component in FAST_PATH_COMPONENTS:
    VARIANTS[f"no-{_component}"] = Variant(f"no-{_component}", "rtcxfer", fast_path=True,
                                           without=(_component,))


@dataclass(frozen=True)
class RunResult:
    variant: str
    megabytes_per_second: float
    sender_cpu: float
    receiver_cpu: float
    sender_rss: int
    receiver_rss: int


class BenchError(RuntimeError):
    """A run did not complete: a peer crashed, hung, or delivered different bytes."""


def spawn_peer(role: str, variant: Variant, path: Path, profile_dir: Path | None,
               run_index: int) -> subprocess.Popen[str]:
    command = [sys.executable, str(PEER_SCRIPT), role, variant.style, str(path)]
    env = None
    if variant.main:
        command[:2] = [str(MAIN["python"]), str(Path(MAIN["tree"]) / "bench" / "_peer.py")]
        env = {**os.environ, "PYTHONPATH": str(MAIN["tree"])}
    if variant.fast_path:
        command.append("--fast-path")
    if variant.uvloop:
        command.append("--uvloop")
    for component in variant.without:
        command += ["--without", component]
    if profile_dir is not None:
        command += ["--profile", str(profile_dir / f"{variant.name}-{run_index}-{role}.prof")]
    return subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, bufsize=1, env=env,
    )


def read_json_line(stream: IO[str], who: str) -> dict[str, Any]:
    line = stream.readline()
    if not line:
        raise BenchError(f"{who} exited before answering")
    message: dict[str, Any] = json.loads(line)
    return message


def file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(MIB):
            hasher.update(block)
    return hasher.hexdigest()


def run_once(variant: Variant, source: Path, workdir: Path, profile_dir: Path | None,
             run_index: int) -> RunResult:
    if variant.style == "baseline":
        destination = workdir / f"received-{variant.name}.bin"
        target = destination
    else:
        target = workdir / f"downloads-{variant.name}"
        target.mkdir(exist_ok=True)
        destination = target / source.name
    receiver = spawn_peer("receiver", variant, target, profile_dir, run_index)
    sender = spawn_peer("sender", variant, source, profile_dir, run_index)
    peers = {"sender": sender, "receiver": receiver}
    watchdog = threading.Timer(RUN_TIMEOUT, lambda: [p.kill() for p in peers.values()])
    watchdog.start()
    try:
        assert sender.stdin and sender.stdout and receiver.stdin and receiver.stdout
        offer = read_json_line(sender.stdout, "sender")
        receiver.stdin.write(json.dumps(offer) + "\n")
        receiver.stdin.flush()
        answer = read_json_line(receiver.stdout, "receiver")
        sender.stdin.write(json.dumps(answer) + "\n")
        sender.stdin.flush()
        sent = read_json_line(sender.stdout, "sender")["result"]
        received = read_json_line(receiver.stdout, "receiver")["result"]
    except BenchError as error:
        details = {role: peer.stderr.read()[-2000:] if peer.stderr else ""
                   for role, peer in peers.items() if peer.poll() is not None}
        raise BenchError(f"{variant.name}: {error}; {details}") from error
    finally:
        watchdog.cancel()
        for peer in peers.values():
            if peer.stdin:
                peer.stdin.close()
            try:
                peer.wait(timeout=30)
            except subprocess.TimeoutExpired:
                peer.kill()
                peer.wait()
            if peer.stdout:
                peer.stdout.close()
            if peer.stderr:
                peer.stderr.close()

    size = source.stat().st_size
    if received["bytes"] != size or sent["reply"] != "done":
        raise BenchError(f"{variant.name}: received {received['bytes']} of {size} bytes, "
                         f"receiver said {sent['reply']!r}")
    if file_sha256(destination) != file_sha256(source):
        raise BenchError(f"{variant.name}: the received file differs from the sent one")
    destination.unlink()
    return RunResult(
        variant=variant.name,
        megabytes_per_second=size / 1e6 / sent["seconds"],
        sender_cpu=sent["cpu_seconds"],
        receiver_cpu=received["cpu_seconds"],
        sender_rss=sent["peak_rss"],
        receiver_rss=received["peak_rss"],
    )


def summarize(results: list[RunResult], names: list[str], size_mib: int) -> str:
    rows = []
    medians: dict[str, float] = {}
    for name in names:
        mine = [r for r in results if r.variant == name]
        speed = statistics.median(r.megabytes_per_second for r in mine)
        medians[name] = speed
        sender_cpu = statistics.median(r.sender_cpu for r in mine)
        receiver_cpu = statistics.median(r.receiver_cpu for r in mine)
        rows.append(
            f"{name:<20} {speed:>8.1f} "
            f"{sender_cpu:>9.1f} {receiver_cpu:>9.1f} "
            f"{sender_cpu / size_mib * 1000:>7.1f} {receiver_cpu / size_mib * 1000:>7.1f} "
            f"{max(r.sender_rss for r in mine) / MIB:>7.0f} "
            f"{max(r.receiver_rss for r in mine) / MIB:>7.0f}   "
            + " ".join(f"{r.megabytes_per_second:.1f}" for r in mine)
        )
    header = (f"{'variant':<20} {'MB/s':>8} {'cpu-s tx':>9} {'cpu-s rx':>9} "
              f"{'ms/MiB tx':>7} {'ms/MiB rx':>7} {'RSS tx':>7} {'RSS rx':>7}   runs (MB/s)")
    lines = [f"{size_mib} MiB per run, medians of {len(results) // len(names)} interleaved runs",
             header, *rows]
    if "baseline" in medians:
        for name in names:
            if name != "baseline":
                lines.append(f"ratio {name}/baseline: {medians[name] / medians['baseline']:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="MiB per transfer (default 256)")
    parser.add_argument("--runs", type=int, default=3, help="runs per variant (default 3)")
    parser.add_argument("--variants", default="baseline,rtcxfer",
                        help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--main", type=Path, default=MAIN["tree"],
                        help="source tree for the rtcxfer-main variant (default /work/main)")
    parser.add_argument("--main-python", default=MAIN["python"],
                        help="interpreter for rtcxfer-main (default /work/venv/bin/python)")
    parser.add_argument("--profile", type=Path,
                        help="directory for cProfile dumps of every process")
    args = parser.parse_args()
    names = [name.strip() for name in args.variants.split(",")]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or args.size < 1 or args.runs < 1:
        parser.error(f"unknown variants {unknown}" if unknown else "--size and --runs must be >= 1")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    MAIN["tree"] = args.main
    MAIN["python"] = args.main_python

    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="rtcxfer-bench-") as tmp:
        workdir = Path(tmp)
        source = workdir / "source.bin"
        with source.open("wb") as sink:
            for _ in range(args.size):
                sink.write(os.urandom(MIB))
        for run_index in range(args.runs):
            for name in names:
                result = run_once(VARIANTS[name], source, workdir, args.profile, run_index)
                print(f"run {run_index + 1}/{args.runs} {name}: "
                      f"{result.megabytes_per_second:.1f} MB/s", flush=True)
                results.append(result)
    print(summarize(results, names, args.size))


if __name__ == "__main__":
    try:
        main()
    except BenchError as error:
        sys.exit(f"bench failed: {error}")
