"""Login latency of `rtcxfer serve --redis` when Redis is far away (docs/scaling.md).

A login is one claim script at Redis, so its floor is one round trip to Redis.
The bench starts a redis-server (no persistence) and, for each delay, a TCP hop
in front of it that makes Redis's answers arrive that late (tests/redis_support.py,
``LateLink``: the delay is the instance-to-Redis round trip). One `rtcxfer serve
--redis` subprocess per measurement; fresh clients log in one after another to
one room; the figures are the first login of the room (it also subscribes to the
room's channel) and the median of the later ones, in seconds and in round trips.

    python bench/redis_login.py                              # delays 10 and 100 ms
    python bench/redis_login.py --baseline-tree /tmp/old     # also an older checkout

Runs alternate between the trees (this one, then the baseline), so that the
machine's load hits both alike; the table shows medians over --runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from redis_support import LateLink, RedisServer  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

START_TIMEOUT = 30.0


async def wait_ready(http_url: str) -> None:
    """Until /healthz answers 200: the instance holds its Redis lease."""
    host, port = http_url.removeprefix("http://").rstrip("/").split(":")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status = await reader.readline()
            writer.close()
            if b" 200 " in status:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the instance never became ready")


async def measure(tree: Path, python: str, redis: RedisServer, delay: float,
                  logins: int) -> tuple[float, float]:
    """(first login, median later login) in seconds, for one server from ``tree``."""
    redis.flush()
    link = LateLink(redis.port, delay)
    url = await link.start()
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONUNBUFFERED="1",
               RTCXFER_CONFIG=os.devnull)
    process = await asyncio.create_subprocess_exec(
        python, "-m", "rtcxfer", "serve", "--host", "127.0.0.1", "--port", "0",
        "--redis", url, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        cwd=tree)  # `-m` puts the working directory first on the path
    try:
        assert process.stdout is not None
        async with asyncio.timeout(START_TIMEOUT):
            while not (line := (await process.stdout.readline()).decode()).startswith("ws"):
                if not line:
                    raise RuntimeError(f"rtcxfer serve from {tree} did not start")
        ws_url = line.split()[0]
        await wait_ready("http" + ws_url.removeprefix("ws"))
        times: list[float] = []
        clients = []
        for index in range(logins):
            # Unread updata frames must not stop a client from reading its close frame.
            client = await connect(ws_url, max_queue=None)
            clients.append(client)
            started = time.monotonic()
            await client.send(json.dumps({"type": "login", "name": f"user{index}"}))
            reply = json.loads(await client.recv())
            if reply.get("success") is not True:
                raise RuntimeError(f"login refused: {reply}")
            await client.recv()  # userlist
            times.append(time.monotonic() - started)
        for client in clients:
            await client.close()
        return times[0], statistics.median(times[1:])
    finally:
        process.terminate()
        await process.wait()
        await link.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", type=float, nargs="+", default=[10.0, 100.0],
                        metavar="MS", help="round trips to Redis to emulate")
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-tree", type=Path, default=None, metavar="DIR")
    parser.add_argument("--baseline-python", default=sys.executable, metavar="PYTHON")
    args = parser.parse_args()
    trees = [("rtcxfer", ROOT, sys.executable)]
    if args.baseline_tree is not None:
        trees.append(("baseline", args.baseline_tree.resolve(), args.baseline_python))
    results: dict[tuple[str, float], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        redis = RedisServer(Path(folder))
        redis.start()
        try:
            for _ in range(args.runs):
                for delay in args.delays:
                    for label, tree, python in trees:
                        figures = await measure(tree, python, redis, delay / 1000, args.logins)
                        results.setdefault((label, delay), []).append(figures)
        finally:
            redis.stop()
    print(f"{'tree':10} {'RTT ms':>7} {'first s':>8} {'login s':>8} {'RTTs':>5}  (medians of "
          f"{args.runs} runs, {args.logins} logins each)")
    for (label, delay), runs in results.items():
        first = statistics.median(run[0] for run in runs)
        later = statistics.median(run[1] for run in runs)
        print(f"{label:10} {delay:7.0f} {first:8.3f} {later:8.3f} "
              f"{later / (delay / 1000):5.1f}")


if __name__ == "__main__":
    asyncio.run(main())
