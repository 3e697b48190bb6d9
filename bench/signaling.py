"""Signaling server load: a login storm, then paired candidate relays, against a real server.

The bench starts the server as a subprocess (``python -m rtcxfer serve --port 0``)
and drives it with N lean WebSocket clients spread over worker processes:

1. login storm: every client connects and logs in at once; the figure is the
   time until every client knows all N users (its ``userlist`` plus one
   ``updata`` per later login: N(N-1)/2 ``updata`` frames in all, each checked);
2. relay: clients are paired and send ``candidate`` messages to their partner
   at an offered total rate (open loop) for S seconds; the figures are relayed
   messages/s and the p50/p99 latency from send to receipt;
3. the server's peak RSS (VmHWM) and its RSS per connected client.

Baseline in the same run: a naive Python server (the tutorial design on the
same websockets library: one ``await send()`` per recipient, JSON encoded per
recipient), driven by the same clients. Runs alternate (naive, rtcxfer, ...)
so that the load of the shared machine hits both alike; the table shows medians
and rtcxfer/naive ratios. A login storm that takes longer than 300 s counts as
failed (the naive server needs about 220 s for 5,000 clients).

The clients are deliberately lean (raw asyncio protocol, no compression, a
zero masking key) because the load generator shares the machine's cores with
the server: read the CPU columns to see which side limits a figure.

    python bench/signaling.py                          # 2000 clients, 10 s relay, 1 run
    python bench/signaling.py --clients 5000 --rate 12000 --runs 3
    python bench/signaling.py --clients 10000 --duration 0 --no-baseline   # held clients

Comparisons in the same run (runs alternate between all of them):

    --baseline-tree /work/main      # also run `rtcxfer serve` from another checkout
    --instances 2 --redis           # also run N instances sharing a name space on a
                                    # redis-server started for the bench (no persistence);
                                    # clients alternate between instances, and every
                                    # relay pair spans two instances
    --room-size 50                  # clients log in to rooms of 50 ("room" ext field)

With --redis the table adds Redis's CPU; the server CPU columns sum all instances.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import multiprocessing.connection
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

LOGIN_TIMEOUT = 300.0
CONNECT_CONCURRENCY = 256  # handshakes in flight per worker
TICK = 0.005  # relay pacing interval, seconds
DRAIN = 2.0  # seconds to wait for relays in flight after sending stops
CANDIDATE = {"candidate": "candidate:1 1 UDP 2122260223 127.0.0.1 9 typ host",
             "sdpMid": "0", "sdpMLineIndex": 0}


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


# -- the naive baseline server -------------------------------------------------


async def naive_server() -> None:
    """The original tutorial's server design, on websockets: the baseline to beat."""
    from websockets.asyncio.server import serve

    users: dict[str, Any] = {}

    async def handler(websocket: Any) -> None:
        name = None
        try:
            async for frame in websocket:
                data = json.loads(frame)
                if data["type"] == "login":
                    if data["name"] in users:
                        await websocket.send(json.dumps({"type": "login", "success": False}))
                        continue
                    name = data["name"]
                    users[name] = websocket
                    await websocket.send(json.dumps({"type": "login", "success": True}))
                    await websocket.send(json.dumps({"type": "userlist", "users": list(users)}))
                    for other_name, other in list(users.items()):
                        if other_name != name:
                            await other.send(json.dumps(
                                {"type": "updata", "action": "login", "name": name}))
                elif data["othername"] in users:
                    relayed = {"type": data["type"], "name": name,
                               data["type"]: data.get(data["type"])}
                    if "session" in data:
                        relayed["session"] = data["session"]
                    await users[data["othername"]].send(json.dumps(relayed))
        finally:
            if name is not None:
                del users[name]
                for other in list(users.values()):
                    await other.send(json.dumps(
                        {"type": "updata", "action": "offline", "name": name}))

    async with serve(handler, "127.0.0.1", 0, max_size=65536, backlog=4096) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"ws://127.0.0.1:{port}", flush=True)
        await asyncio.Future()


# -- lean clients ---------------------------------------------------------------


def client_frame(payload: bytes) -> bytes:
    """A masked client text frame with a zero masking key (the payload is unchanged)."""
    length = len(payload)
    if length < 126:
        header = bytes((0x81, 0x80 | length))
    else:
        header = bytes((0x81, 0x80 | 126)) + length.to_bytes(2, "big")
    return header + b"\0\0\0\0" + payload


class LeanClient(asyncio.Protocol):
    """Just enough WebSocket client for the bench: handshake, frames, pongs."""

    def __init__(self, worker: Worker, name: str, partner: str, host: str, room: str | None,
                 expected: int) -> None:
        self.worker = worker
        self.name = name
        self.partner = partner
        self.host = host
        self.room = room
        self.expected = expected  # users this client must learn of (its room's size)
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.open = False
        self.known = 0  # users this client knows are online
        self.logged_in = asyncio.get_running_loop().create_future()
        self.all_known = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write((
            f"GET / HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode())

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.logged_in, self.all_known):
            if not future.done():
                future.set_exception(ConnectionError(f"{self.name}: connection lost ({exc})"))
        self.worker.lost += 1

    def send(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(client_frame(payload))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                raise ConnectionError(f"handshake refused: {bytes(buffer[:40])!r}")
            del buffer[:end + 4]
            self.open = True
            login = {"type": "login", "name": self.name}
            if self.room is not None:
                login["room"] = self.room
            self.send(json.dumps(login).encode())
        position = 0
        size = len(buffer)
        while size - position >= 2:
            length = buffer[position + 1] & 0x7F
            start = position + 2
            if length == 126:
                if size - position < 4:
                    break
                length = int.from_bytes(buffer[position + 2:position + 4], "big")
                start = position + 4
            elif length == 127:
                if size - position < 10:
                    break
                length = int.from_bytes(buffer[position + 2:position + 10], "big")
                start = position + 10
            end = start + length
            if end > size:
                break
            opcode = buffer[position] & 0x0F
            if opcode == 1:
                # Hot path of the login storm: count an updata without decoding it.
                if buffer.find(b"updata", start, start + 24) >= 0:
                    self.on_updata()
                else:
                    self.on_message(json.loads(buffer[start:end]))
            elif opcode == 9:
                pong = bytes(buffer[start:end])
                assert self.transport is not None
                self.transport.write(bytes((0x8A, 0x80 | len(pong))) + b"\0\0\0\0" + pong)
            position = end
        del buffer[:position]

    def on_updata(self) -> None:
        self.known += 1
        self.worker.updata += 1
        if self.known == self.expected and not self.all_known.done():
            self.all_known.set_result(None)

    def on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "candidate":
            self.worker.on_relay(message)
        elif kind == "login":
            if message.get("success") is not True:
                raise ConnectionError(f"{self.name}: login refused: {message}")
            self.logged_in.set_result(None)
        elif kind == "userlist":
            self.known += len(message["users"])
            if self.known == self.expected and not self.all_known.done():
                self.all_known.set_result(None)
        elif kind == "error":
            self.worker.errors += 1


@dataclass
class Worker:
    """One load-generating process: a slice of the clients, paired within the slice."""

    urls: list[str]
    first: int
    count: int
    total: int
    room_size: int = 0
    clients: list[LeanClient] = field(default_factory=list)
    updata: int = 0
    errors: int = 0
    lost: int = 0
    received: int = 0
    received_in_window: int = 0
    window_end: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def on_relay(self, message: dict[str, Any]) -> None:
        now = time.perf_counter()
        self.received += 1
        if now <= self.window_end:
            self.received_in_window += 1
        self.latencies.append(now - message["candidate"]["sentAt"])

    async def log_in_all(self) -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        room_size = self.room_size

        async def connect(index: int) -> None:
            partner = index ^ 1 if (index ^ 1) < self.total else index
            # Clients alternate between instances: partners are always on two of them.
            host_port = self.urls[index % len(self.urls)].removeprefix("ws://")
            host, port = host_port.rsplit(":", 1)
            if room_size:
                room: str | None = f"room{index // room_size}"
                expected = min(room_size, self.total - index // room_size * room_size)
            else:
                room, expected = None, self.total
            async with gate:
                _, client = await loop.create_connection(
                    lambda: LeanClient(self, f"u{index:06d}", f"u{partner:06d}", host_port,
                                       room, expected),
                    host, int(port))
                self.clients.append(client)
                await client.logged_in

        await asyncio.gather(*(connect(index)
                               for index in range(self.first, self.first + self.count)))
        await asyncio.gather(*(client.all_known for client in self.clients))

    async def relay(self, duration: float, rate: float) -> None:
        """Send ``rate`` candidates/s in total, round-robin over the clients, open loop."""
        clients = self.clients
        start = time.perf_counter()
        self.window_end = start + duration
        sent = 0
        turn = 0
        while (now := time.perf_counter()) < self.window_end:
            due = int((now - start) * rate) - sent
            for _ in range(due):
                client = clients[turn % len(clients)]
                turn += 1
                # The send time rides in the candidate object, which the server
                # forwards as given; one session per pair, as real clients have.
                client.send(json.dumps({
                    "type": "candidate", "othername": client.partner, "session": "bench",
                    "candidate": {**CANDIDATE, "sentAt": time.perf_counter()},
                }).encode())
            sent += due
            await asyncio.sleep(TICK)
        await asyncio.sleep(DRAIN)

    def close_all(self) -> None:
        for client in self.clients:
            if client.transport is not None:
                client.transport.close()


def worker_main(connection: multiprocessing.connection.Connection, urls: list[str],
                first: int, count: int, total: int, room_size: int) -> None:
    raise_file_limit()
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    worker = Worker(urls, first, count, total, room_size)
    connection.recv()  # go
    cpu = time.process_time()
    try:
        loop.run_until_complete(asyncio.wait_for(worker.log_in_all(), LOGIN_TIMEOUT))
    except (ConnectionError, OSError, TimeoutError) as error:
        connection.send({"error": f"login storm failed: {error!r}"})
        return
    connection.send({"updata": worker.updata, "cpu": time.process_time() - cpu})
    duration, rate = connection.recv()
    cpu = time.process_time()
    if duration > 0:
        loop.run_until_complete(worker.relay(duration, rate))
    latencies = worker.latencies
    step = max(1, len(latencies) // 50_000)
    connection.send({"received": worker.received_in_window, "errors": worker.errors,
                     "lost": worker.lost, "latencies": latencies[::step],
                     "cpu": time.process_time() - cpu})
    connection.recv()  # close
    worker.close_all()
    loop.run_until_complete(asyncio.sleep(0.5))
    loop.close()


# -- the coordinator ------------------------------------------------------------


def proc_status(pid: int, field_name: str) -> int:
    """A ``VmRSS``/``VmHWM`` style field of /proc/<pid>/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field_name)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class RunResult:
    server: str
    login_seconds: float
    relayed_per_second: float
    p50_ms: float
    p99_ms: float
    peak_rss: int
    rss_per_client: int
    server_cpu_login: float
    server_cpu_relay: float
    clients_cpu_relay: float
    redis_cpu_login: float = float("nan")
    redis_cpu_relay: float = float("nan")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Deployment:
    """The servers of one run: their URLs and PIDs, and redis-server's PID if any."""

    kind: str
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    redis: subprocess.Popen[bytes] | None = None

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(30)


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.sendall(b"PING\r\n")
                if probe.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


def start_deployment(kind: str, clients: int, args: argparse.Namespace) -> Deployment:
    deployment = Deployment(kind)
    serve = ["serve", "--host", "127.0.0.1", "--port", "0", "--max-users", str(clients + 16),
             "--log-level", "warning"]
    env = dict(os.environ)
    cwd = None
    if kind == "naive":
        commands = [[sys.executable, __file__, "--naive-server"]]
    elif kind == "main":
        # The same command from another checkout (its code first on the path).
        cwd = args.baseline_tree
        env["PYTHONPATH"] = str(args.baseline_tree)
        commands = [[args.baseline_python, "-m", "rtcxfer", *serve]]
    elif kind == "redis":
        deployment.redis, redis_url = start_redis()
        commands = [[sys.executable, "-m", "rtcxfer", *serve, "--redis", redis_url]
                    for _ in range(args.instances)]
    else:
        commands = [[sys.executable, "-m", "rtcxfer", *serve]]
    try:
        for command in commands:
            # The naive server prints a traceback per connection it loses at shutdown.
            stderr = subprocess.DEVNULL if kind == "naive" else None
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr,
                                       text=True, env=env, cwd=cwd)
            deployment.processes.append(process)
            assert process.stdout is not None
            deployment.urls.append(process.stdout.readline().split()[0])
    except BaseException:
        deployment.stop()
        raise
    return deployment


def run_once(kind: str, args: argparse.Namespace) -> RunResult:
    clients, workers, duration, rate = args.clients, args.workers, args.duration, args.rate
    deployment = start_deployment(kind, clients, args)
    pids = deployment.pids
    redis_pid = deployment.redis.pid if deployment.redis is not None else None
    try:
        idle_rss = sum(proc_status(pid, "VmRSS") for pid in pids)
        share = -(-clients // workers)
        share += share % 2  # partners stay in the same worker
        if args.room_size:
            share = -(-share // args.room_size) * args.room_size
        pipes, processes = [], []
        for first in range(0, clients, share):
            parent, child = multiprocessing.Pipe()
            process = multiprocessing.Process(
                target=worker_main, args=(child, deployment.urls, first,
                                          min(share, clients - first), clients,
                                          args.room_size))
            process.start()
            pipes.append(parent)
            processes.append(process)
        try:
            cpu = sum(cpu_seconds(pid) for pid in pids)
            redis_cpu = cpu_seconds(redis_pid) if redis_pid else 0.0
            start = time.perf_counter()
            for pipe in pipes:
                pipe.send("go")
            reports = [pipe.recv() for pipe in pipes]
            login_seconds = time.perf_counter() - start
            failures = [report["error"] for report in reports if "error" in report]
            if failures:
                raise RuntimeError(f"{kind}: {failures[0]}")
            updata = sum(report["updata"] for report in reports)
            expected = expected_updata(clients, args.room_size)
            if updata != expected:
                raise RuntimeError(f"{kind}: {updata} updata delivered, expected {expected}")
            server_cpu_login = sum(cpu_seconds(pid) for pid in pids) - cpu
            redis_cpu_login = (cpu_seconds(redis_pid) - redis_cpu) if redis_pid else float("nan")
            held_rss = sum(proc_status(pid, "VmRSS") for pid in pids)

            cpu = sum(cpu_seconds(pid) for pid in pids)
            redis_cpu = cpu_seconds(redis_pid) if redis_pid else 0.0
            for pipe in pipes:
                pipe.send((duration, rate / len(pipes)))
            reports = [pipe.recv() for pipe in pipes]
            server_cpu_relay = sum(cpu_seconds(pid) for pid in pids) - cpu
            redis_cpu_relay = (cpu_seconds(redis_pid) - redis_cpu) if redis_pid else float("nan")
            for pipe in pipes:
                pipe.send("close")
            peak_rss = sum(proc_status(pid, "VmHWM") for pid in pids)
        finally:
            for process in processes:
                process.join(30)
                if process.is_alive():
                    process.kill()
    finally:
        deployment.stop()
    if any(report["errors"] or report["lost"] for report in reports):
        raise RuntimeError(f"{kind}: clients got errors or lost connections: "
                           f"{[(r['errors'], r['lost']) for r in reports]}")
    latencies = sorted(latency for report in reports for latency in report["latencies"])
    received = sum(report["received"] for report in reports)

    def percentile(fraction: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] * 1000

    per_second = (lambda value: value / duration) if duration > 0 else (lambda _: float("nan"))
    return RunResult(
        server=kind,
        login_seconds=login_seconds,
        relayed_per_second=per_second(received),
        p50_ms=percentile(0.50),
        p99_ms=percentile(0.99),
        peak_rss=peak_rss,
        rss_per_client=(held_rss - idle_rss) // clients,
        server_cpu_login=server_cpu_login,
        server_cpu_relay=per_second(server_cpu_relay),
        clients_cpu_relay=per_second(sum(report["cpu"] for report in reports)),
        redis_cpu_login=redis_cpu_login,
        redis_cpu_relay=per_second(redis_cpu_relay) if redis_pid else float("nan"),
    )


def expected_updata(clients: int, room_size: int) -> int:
    """``updata`` frames a login storm delivers: n(n-1)/2 per room of n."""
    if not room_size:
        return clients * (clients - 1) // 2
    total = 0
    for first in range(0, clients, room_size):
        size = min(room_size, clients - first)
        total += size * (size - 1) // 2
    return total


COLUMNS = [
    ("login storm s", "login_seconds", "{:.1f}"),
    ("relayed msg/s", "relayed_per_second", "{:.0f}"),
    ("p50 ms", "p50_ms", "{:.1f}"),
    ("p99 ms", "p99_ms", "{:.1f}"),
    ("peak RSS MiB", "peak_rss", "{:.0f}"),
    ("RSS/client KiB", "rss_per_client", "{:.1f}"),
    ("server CPU s (login)", "server_cpu_login", "{:.1f}"),
    ("server CPU (relay)", "server_cpu_relay", "{:.0%}"),
    ("clients CPU (relay)", "clients_cpu_relay", "{:.0%}"),
    ("redis CPU s (login)", "redis_cpu_login", "{:.1f}"),
    ("redis CPU (relay)", "redis_cpu_relay", "{:.0%}"),
]
KIND_ORDER = ("naive", "main", "rtcxfer", "redis")


def report(results: list[RunResult], args: argparse.Namespace) -> None:
    kinds = [kind for kind in KIND_ORDER if any(r.server == kind for r in results)]
    titles = {"main": "baseline", "redis": f"redis x{args.instances}"}
    rooms = f", rooms of {args.room_size}" if args.room_size else ", one room"
    print(f"\n{args.clients} clients{rooms}, {args.workers} client processes, relay "
          f"{args.duration:g} s at {args.rate:g} msg/s offered, {args.runs} run(s), medians:")
    if "main" in kinds:
        print(f"baseline = rtcxfer serve from {args.baseline_tree}")
    header = f"{'':22}" + "".join(f"{titles.get(kind, kind):>13}" for kind in kinds)
    if "rtcxfer" in kinds and len(kinds) > 1:
        header += "   rtcxfer/" + "/".join(kind for kind in kinds if kind != "rtcxfer")
    print(header)
    for title, attribute, style in COLUMNS:
        medians = []
        for kind in kinds:
            values = [getattr(r, attribute) for r in results if r.server == kind]
            value = statistics.median(values)
            if attribute == "peak_rss":
                value /= 1024 * 1024
            elif attribute == "rss_per_client":
                value /= 1024
            medians.append(value)
        if all(value != value for value in medians):  # all NaN: not measured
            continue
        line = f"{title:22}" + "".join(f"{style.format(value):>13}" for value in medians)
        if "rtcxfer" in kinds and len(kinds) > 1:
            ours = medians[kinds.index("rtcxfer")]
            ratios = [ours / value if value else float("nan")
                      for kind, value in zip(kinds, medians, strict=True) if kind != "rtcxfer"]
            line += "   " + " ".join(f"{ratio:.2f}x" for ratio in ratios)
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=10.0,
                        help="relay phase seconds (0: login storm and memory only)")
    parser.add_argument("--rate", type=float, default=10_000.0,
                        help="offered candidate messages per second, all clients together")
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the naive server (it needs minutes for big login storms)")
    parser.add_argument("--baseline-tree", type=Path, default=None, metavar="DIR",
                        help="also run `rtcxfer serve` from this checkout (e.g. main)")
    parser.add_argument("--baseline-python", default=sys.executable, metavar="PYTHON",
                        help="the interpreter for --baseline-tree")
    parser.add_argument("--instances", type=int, default=2,
                        help="rtcxfer instances sharing Redis (with --redis)")
    parser.add_argument("--redis", action="store_true",
                        help="also run --instances instances on a fresh redis-server")
    parser.add_argument("--only-redis", action="store_true",
                        help="with --redis: skip the single in-memory instance")
    parser.add_argument("--room-size", type=int, default=0,
                        help="clients per room (0: everyone in the default room)")
    parser.add_argument("--naive-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_file_limit()
    if args.naive_server:
        asyncio.run(naive_server())
        return
    if args.clients < 2 or args.clients % 2:
        parser.error("--clients must be an even number of at least 2")
    if args.room_size % 2:
        parser.error("--room-size must be even (relay partners share a room)")
    kinds = [] if args.no_baseline or args.room_size else ["naive"]
    if args.baseline_tree is not None:
        kinds.append("main")
    if not (args.redis and args.only_redis):
        kinds.append("rtcxfer")
    if args.redis:
        kinds.append("redis")
    results = []
    for run in range(args.runs):
        for kind in kinds:
            try:
                result = run_once(kind, args)
            except RuntimeError as error:
                if kind != "naive":
                    raise
                # The baseline is allowed to collapse under load; that is a result too.
                print(f"run {run + 1} naive: failed: {error}", flush=True)
                continue
            print(f"run {run + 1} {kind}: {result}", flush=True)
            results.append(result)
    report(results, args)


if __name__ == "__main__":
    main()
