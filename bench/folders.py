"""Folders of many small files: rtcxfer/2 against magic-wormhole, in the same run.

Builds a tree of N files of 1 KiB (every 50th empty), 40 to a folder, the folders nested
up to 20 deep, then moves it on loopback:

- ``rtcxfer``: ``rtcxfer serve``, ``rtcxfer listen --yes --once`` and ``rtcxfer send``
  as separate processes (the fast path on, as by default);
- ``wormhole``: ``magic-wormhole`` with its own mailbox server and transit relay on
  loopback ports (``twist wormhole-mailbox`` / ``twist transitrelay``), ``wormhole send
  DIR`` and ``wormhole receive --accept-file`` (install with ``pip install .[bench]``).

- ``cp -r``: the floor, a plain copy of the tree on the same filesystem (no network, no
  hashing, nothing flushed): what creating these files costs this machine.

For each: wall time from starting the sender to both ends exiting, files/s, MB/s and the
peak RSS of the sending and the receiving process (``wait4`` rusage). ``--memory-only``
runs rtcxfer alone (e.g. for 1,000,000 files, where the aim is the RSS).

    python bench/folders.py                       # 10,000 files, both tools
    python bench/folders.py --files 10000 100000
    python bench/folders.py --files 1000000 --memory-only
    python bench/folders.py --state 1000000       # the machines' state per file, no I/O
    python bench/folders.py --large 256           # one large file: v2 drivers vs v1 drivers
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

RTCXFER = [sys.executable, "-m", "rtcxfer"]
BIN = Path(sys.executable).parent
FILE_BYTES = 1024
MAX_DEPTH = 20
FILES_PER_FOLDER = 40
RUN_TIMEOUT = 3600.0
# ext4 passes over inodes freed less than dirty_expire_centisecs (30 s) ago when it
# allocates new ones; after deleting a tree the bench waits this long before the next.
FORGET_DELETED_SECONDS = 35.0


@dataclass(frozen=True)
class Result:
    tool: str
    files: int
    seconds: float
    total_bytes: int
    sender_rss_mb: float
    receiver_rss_mb: float
    ok: bool
    sender_cpu: float = 0.0  # seconds of CPU (user + system) of the process
    receiver_cpu: float = 0.0

    @property
    def cpu_per_file_us(self) -> float:
        return (self.sender_cpu + self.receiver_cpu) / self.files * 1e6 if self.files else 0.0

    def row(self) -> str:
        rate = self.files / self.seconds if self.seconds else 0.0
        mbs = self.total_bytes / 1e6 / self.seconds if self.seconds else 0.0
        return (f"{self.tool:9} {self.files:>9,} {self.seconds:9.1f} {rate:10,.0f} "
                f"{mbs:7.2f} {self.sender_rss_mb:9.0f} {self.receiver_rss_mb:9.0f} "
                f"{self.sender_cpu:9.1f} {self.receiver_cpu:9.1f}  "
                f"{'ok' if self.ok else 'FAILED'}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def build_tree(root: Path, count: int) -> int:
    """``count`` files under ``root``; returns their total size."""
    block = os.urandom(FILE_BYTES)
    total = 0
    for number in range(count):
        # FILES_PER_FOLDER files a folder; folders nested 0 to MAX_DEPTH deep.
        group = number // FILES_PER_FOLDER
        depth = group % (MAX_DEPTH + 1)
        parts = [f"l{level}-{(group >> level) % 3}" for level in range(depth)]
        folder = root.joinpath(*parts) if parts else root
        folder.mkdir(parents=True, exist_ok=True)
        data = b"" if number % 50 == 0 else number.to_bytes(8, "big") + block[8:]
        (folder / f"f{number}.bin").write_bytes(data)
        total += len(data)
    return total


def wait_rss(process: subprocess.Popen[bytes], deadline: float
             ) -> tuple[int, float, float]:
    """Exit code, peak RSS (MB) and CPU seconds (user + system) of ``process``, waiting
    at most until ``deadline``. CPU time says what a run cost even when other work on
    the machine stretched its wall time."""
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return (process.returncode, usage.ru_maxrss / 1024,
                    usage.ru_utime + usage.ru_stime)
        time.sleep(0.05)
    process.kill()
    _, status, usage = os.wait4(process.pid, 0)
    return -9, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def _median(rows: list[Result]) -> Result:
    """The run of median wall time (its other figures with it)."""
    ordered = sorted(rows, key=lambda row: row.seconds)
    return ordered[len(ordered) // 2]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def run_rtcxfer(tree: Path, work: Path, files: int, total: int) -> Result:
    inbox = work / "rtcxfer-in"
    inbox.mkdir()
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    server = subprocess.Popen([*RTCXFER, "serve", "--port", str(port)], **quiet)
    background = [server]
    try:
        wait_for_port(port, time.monotonic() + 30)
        listener = subprocess.Popen([*RTCXFER, "listen", "--server", url, "--name", "bench-rx",
                                     "--dir", str(inbox), "--yes", "--once", "--quiet"],
                                    stdin=subprocess.DEVNULL, **quiet)
        background.append(listener)
        time.sleep(3)  # logged in
        started = time.monotonic()
        sender = subprocess.Popen([*RTCXFER, "send", "--server", url, "--name", "bench-tx",
                                   "--quiet", "bench-rx", str(tree)], **quiet)
        deadline = started + RUN_TIMEOUT
        send_code, send_rss, send_cpu = wait_rss(sender, deadline)
        listen_code, listen_rss, listen_cpu = wait_rss(listener, deadline)
        seconds = time.monotonic() - started
        ok = send_code == 0 and listen_code == 0 and count_files(inbox) == files
        return Result("rtcxfer", files, seconds, total, send_rss, listen_rss, ok,
                      send_cpu, listen_cpu)
    finally:
        stop(background)


def run_copy(tree: Path, work: Path, files: int, total: int) -> Result:
    """The floor: ``cp -r`` of the tree on the same filesystem (C, one process, no
    network, no hashing, nothing flushed). Whatever receives these files must create
    them, and on a virtual disk that alone can take most of a run."""
    target = work / "copy"
    started = time.monotonic()
    process = subprocess.Popen(["cp", "-r", "--preserve=timestamps", str(tree), str(target)])
    code, rss, cpu = wait_rss(process, started + RUN_TIMEOUT)
    seconds = time.monotonic() - started
    ok = code == 0 and count_files(target) == files
    return Result("cp -r", files, seconds, total, rss, rss, ok, cpu, 0.0)


def run_wormhole(tree: Path, work: Path, files: int, total: int) -> Result:
    inbox = work / "wormhole-in"
    inbox.mkdir()
    mailbox, relay = free_port(), free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    servers = [
        subprocess.Popen([str(BIN / "twist"), "wormhole-mailbox",
                          f"--port=tcp:{mailbox}:interface=127.0.0.1"], cwd=work, **quiet),
        subprocess.Popen([str(BIN / "twist"), "transitrelay",
                          f"--port=tcp:{relay}:interface=127.0.0.1"], cwd=work, **quiet),
    ]
    try:
        for port in (mailbox, relay):
            wait_for_port(port, time.monotonic() + 60)
        common = [str(BIN / "wormhole"), "--relay-url", f"ws://127.0.0.1:{mailbox}/v1",
                  "--transit-helper", f"tcp:127.0.0.1:{relay}"]
        code = "7-bench-folders"
        started = time.monotonic()
        sender = subprocess.Popen([*common, "send", "--hide-progress", "--code", code,
                                   str(tree)], stdin=subprocess.DEVNULL, **quiet)
        receiver = subprocess.Popen([*common, "receive", "--hide-progress", "--accept-file",
                                     "-o", str(inbox / tree.name), code],
                                    stdin=subprocess.DEVNULL, **quiet)
        deadline = started + RUN_TIMEOUT
        send_code, send_rss, send_cpu = wait_rss(sender, deadline)
        receive_code, receive_rss, receive_cpu = wait_rss(receiver, deadline)
        seconds = time.monotonic() - started
        ok = send_code == 0 and receive_code == 0 and count_files(inbox) == files
        return Result("wormhole", files, seconds, total, send_rss, receive_rss, ok,
                      send_cpu, receive_cpu)
    finally:
        stop(servers)


def state_per_file(count: int) -> None:
    """Drive both rtcxfer/2 machines (and the receiver's name guard) through ``count``
    entries in this process, no network or disk: the RSS they add, per file."""
    import resource

    from rtcxfer.protocol.transfer import Done, FileStart
    from rtcxfer.protocol.transfer2 import (
        LIST_AHEAD,
        Accept2,
        Acks,
        Entry,
        Eof2,
        Have,
        Hello2,
        ListBatch,
    )
    from rtcxfer.transfer.machines2 import ListMore, ReceiverMachine2, Send, SenderMachine2

    def entries(first: int, number: int) -> list[Entry]:
        return [Entry(f"tree/l{i // 40 % 20}/d{i // 40}/f{i}.bin", 1024, 1.0)
                for i in range(first, first + number)]

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    batch = 1000
    sender, receiver = SenderMachine2(count, count * 1024), ReceiverMachine2()
    first = entries(0, min(batch, count))
    receiver.receive_message(Hello2(2, count, count * 1024, tuple(first)))
    sender.start(first, compatible=False)
    pending = list(sender.receive_message(Accept2(
        next(a.message.offsets for a in receiver.decide(None, [0] * len(first))
              if isinstance(a, Send)), 2)))
    digest = "ab" * 32
    while sender.state.value != "done":
        if not pending:
            raise RuntimeError("the machines stalled")
        action = pending.pop(0)
        if isinstance(action, ListMore):
            listed = sender.listed
            more = entries(listed, min(action.limit, batch))
            pending += sender.list_batch(more)
            receiver.receive_message(ListBatch(listed, tuple(more)))
            (answer,) = receiver.offsets_found(listed, [0] * len(more))
            assert isinstance(answer, Send) and isinstance(answer.message, Have)
            pending += sender.receive_message(answer.message)
        elif isinstance(action, Send) and isinstance(action.message, FileStart):
            index = action.message.index
            receiver.receive_message(action.message)
            receiver.receive_chunk(1024)
            receiver.receive_message(Eof2(index, digest, None))
            acks = receiver.file_settled(index, None)
            pending += sender.file_sent(index, digest, 1024)
            for ack in acks:
                if isinstance(ack, Send) and isinstance(ack.message, Acks):
                    pending += sender.receive_message(ack.message)
        elif isinstance(action, Send) and isinstance(action.message, Done):
            for reply in receiver.receive_message(Done()):
                if isinstance(reply, Send):
                    pending += sender.receive_message(reply.message)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    grown = (after - before) * 1024
    print(f"state of both machines for {count:,} files (LIST_AHEAD {LIST_AHEAD}): "
          f"peak RSS +{grown / 1e6:.1f} MB = {grown / count:.0f} bytes per file "
          f"({count / seconds:,.0f} files/s through the machines)")


def large_file(size_mib: int, runs: int) -> None:
    """One large file through the rtcxfer/1 drivers and the rtcxfer/2 drivers, interleaved,
    in one process over a real loopback peer connection (the fast path on): MB/s."""
    import asyncio
    import statistics

    import aioice.ice
    from aiortc import RTCConfiguration, RTCPeerConnection

    from rtcxfer import fastpath
    from rtcxfer.transfer import SilentObserver, collect_sources, receive_files, send_files
    from rtcxfer.transfer.receiver2 import receive_any
    from rtcxfer.transfer.sender2 import plan_paths, send_outgoing

    fastpath.enable()
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

    async def accept(offer: object) -> None:
        return None

    async def once(version: int, source: Path, inbox: Path) -> float:
        offerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        received: list[asyncio.Future[object]] = []

        def on_datachannel(channel: object) -> None:
            work = (receive_files if version == 1 else receive_any)(
                channel, download_dir=inbox, decide=accept, overwrite=True,  # type: ignore[arg-type]
                observer=SilentObserver())
            received.append(asyncio.ensure_future(work))

        answerer.on("datachannel", on_datachannel)
        channel = offerer.createDataChannel("rtcxfer/1")
        opened = asyncio.Event()
        channel.on("open", opened.set)
        try:
            await offerer.setLocalDescription(await offerer.createOffer())
            await answerer.setRemoteDescription(offerer.localDescription)
            await answerer.setLocalDescription(await answerer.createAnswer())
            await offerer.setRemoteDescription(answerer.localDescription)
            await asyncio.wait_for(opened.wait(), 60)
            started = time.monotonic()
            if version == 1:
                await send_files(channel, collect_sources([source]), max_message_size=262144,
                                 observer=SilentObserver())
            else:
                await send_outgoing(channel, plan_paths([source]), max_message_size=262144,
                                    observer=SilentObserver())
            await asyncio.wait_for(received[0], 600)
            return time.monotonic() - started
        finally:
            await offerer.close()
            await answerer.close()

    work = Path(tempfile.mkdtemp(prefix="rtcxfer-bench-large-"))
    try:
        source = work / "big.bin"
        with source.open("wb") as output:
            for _ in range(size_mib):
                output.write(os.urandom(1024 * 1024))
        seconds: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(runs):
            for version in (1, 2):
                # A fresh folder each time: a copy already in place would be skipped.
                inbox = work / "in"
                inbox.mkdir()
                seconds[version].append(asyncio.run(once(version, source, inbox)))
                shutil.rmtree(inbox)
        rates = {v: size_mib * 1.048576 / statistics.median(s) for v, s in seconds.items()}
        print(f"one {size_mib} MiB file, median of {runs}: rtcxfer/1 drivers "
              f"{rates[1]:.1f} MB/s, rtcxfer/2 drivers {rates[2]:.1f} MB/s "
              f"(v2/v1 {rates[2] / rates[1]:.2f}x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[10_000])
    parser.add_argument("--memory-only", action="store_true",
                        help="rtcxfer only (no magic-wormhole baseline)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--large", type=int, metavar="MIB",
                        help="only compare one MIB-sized file through the v1 and v2 drivers")
    parser.add_argument("--runs", type=int, default=None,
                        help="runs per size, tools alternating; medians printed "
                             "(default 1 for folders, 3 for --large)")
    parser.add_argument("--state", type=int, metavar="N",
                        help="only measure the machines' state for N files (no network)")
    args = parser.parse_args()
    if args.state:
        state_per_file(args.state)
        return
    if args.large:
        large_file(args.large, args.runs or 3)
        return
    tools = [run_rtcxfer] if args.memory_only else [run_copy, run_wormhole, run_rtcxfer]
    header = (f"{'tool':9} {'files':>9} {'seconds':>9} {'files/s':>10} {'MB/s':>7} "
              f"{'tx RSS MB':>9} {'rx RSS MB':>9} {'tx CPU s':>9} {'rx CPU s':>9}")
    print(header)
    runs = args.runs or 1
    for files in args.files:
        work = Path(tempfile.mkdtemp(prefix="rtcxfer-bench-folders-"))
        try:
            tree = work / "tree"
            total = build_tree(tree, files)
            results: dict[str, list[Result]] = {}
            for run in range(runs):
                for tool in tools:
                    run_dir = work / f"run{run}"
                    run_dir.mkdir(exist_ok=True)
                    result = tool(tree, run_dir, files, total)
                    results.setdefault(result.tool, []).append(result)
                    print(result.row(), flush=True)
                    # Received trees stay until this size is done: ext4 skips inodes
                    # freed in the last ~30 s when it allocates (recently_deleted()), so
                    # a deletion here would slow whichever tool runs next.
            medians = {tool: _median(rows) for tool, rows in results.items()}
            if runs > 1:
                print(f"medians of {runs} runs:\n{header}")
                for row in medians.values():
                    print(row.row(), flush=True)
            if len(medians) == 3 and all(r.ok for rows in results.values() for r in rows):
                rtc, worm, copy = medians["rtcxfer"], medians["wormhole"], medians["cp -r"]
                print(f"rtcxfer/wormhole files/s: {worm.seconds / rtc.seconds:.2f}x; "
                      f"CPU per file, both ends: rtcxfer "
                      f"{(rtc.sender_cpu + rtc.receiver_cpu) / files * 1e6:.0f} us, wormhole "
                      f"{(worm.sender_cpu + worm.receiver_cpu) / files * 1e6:.0f} us; "
                      f"floor (cp -r): {copy.seconds:.1f} s, {copy.cpu_per_file_us:.0f} us "
                      f"CPU per file (2x wormhole would need {worm.seconds / 2:.1f} s)",
                      flush=True)
        finally:
            if args.keep:
                print(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
                if files != args.files[-1]:
                    os.sync()
                    time.sleep(FORGET_DELETED_SECONDS)


if __name__ == "__main__":
    main()
