"""Transfers that must not stall: a receiver that stops reading, a 200 ms path.

Sender and receiver run rtcxfer's real transfer path in separate processes
(tests/fastpath/peer_process.py), so a stalled receiver really stops answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

PEER = Path(__file__).with_name("peer_process.py")
RUN_TIMEOUT = 150.0


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def read_json(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    line = await process.stdout.readline()
    if not line:
        assert process.stderr is not None
        error = (await process.stderr.read()).decode(errors="replace")
        raise AssertionError(f"peer exited early:\n{error[-3000:]}")
    message: dict[str, Any] = json.loads(line)
    return message


async def run_transfer(source: Path, folder: Path, *, sender_prefix: Sequence[str] = (),
                       receiver_prefix: Sequence[str] = (), sender_args: Sequence[str] = (),
                       receiver_args: Sequence[str] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run one transfer between two peer processes; their result lines."""
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    receiver = await asyncio.create_subprocess_exec(
        *receiver_prefix, sys.executable, str(PEER), "receive", str(folder), *receiver_args,
        **pipes)
    sender = await asyncio.create_subprocess_exec(
        *sender_prefix, sys.executable, str(PEER), "send", str(source), *sender_args, **pipes)
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            assert sender.stdin is not None and receiver.stdin is not None
            receiver.stdin.write(json.dumps(await read_json(sender)).encode() + b"\n")
            await receiver.stdin.drain()
            sender.stdin.write(json.dumps(await read_json(receiver)).encode() + b"\n")
            await sender.stdin.drain()
            sent = await read_json(sender)
            received = await read_json(receiver)
            await sender.wait()
            await receiver.wait()
            return sent["result"], received["result"]
    finally:
        for process in (sender, receiver):
            if process.returncode is None:
                process.kill()
                await process.wait()


@pytest.mark.slow
async def test_receiver_that_stops_reading_for_12_seconds(tmp_path: Path) -> None:
    source = tmp_path / "payload.bin"
    source.write_bytes(os.urandom(8 * 1024 * 1024))
    folder = tmp_path / "downloads"
    folder.mkdir()
    sent, received = await run_transfer(
        source, folder,
        receiver_args=["--stall-after", str(2 * 1024 * 1024), "--stall-seconds", "12"])
    assert received == {"bytes": source.stat().st_size, "ok": True}
    assert sent["ok"] and sent["seconds"] > 12
    assert sha256_file(folder / source.name) == sha256_file(source)


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def delayed_namespaces(delay_ms: int) -> Iterator[tuple[list[str], str, list[str], str]]:
    """Two network namespaces joined by a veth pair with ``delay_ms`` netem each way."""
    if sys.platform != "linux" or shutil.which("ip") is None or shutil.which("tc") is None:
        pytest.skip("needs Linux with iproute2 (ip, tc)")
    suffix = uuid.uuid4().hex[:6]
    left, right = f"rtx-l-{suffix}", f"rtx-r-{suffix}"
    veth_left, veth_right = f"rtxl{suffix}", f"rtxr{suffix}"
    try:
        run("ip", "netns", "add", left)
    except (subprocess.CalledProcessError, OSError) as error:
        pytest.skip(f"cannot create network namespaces here: {error}")
    try:
        run("ip", "netns", "add", right)
        run("ip", "link", "add", veth_left, "netns", left, "type", "veth",
            "peer", "name", veth_right, "netns", right)
        for namespace, device, address in ((left, veth_left, "10.77.0.1"),
                                           (right, veth_right, "10.77.0.2")):
            run("ip", "-n", namespace, "link", "set", "lo", "up")
            run("ip", "-n", namespace, "addr", "add", f"{address}/24", "dev", device)
            run("ip", "-n", namespace, "link", "set", device, "up")
            try:
                run("ip", "netns", "exec", namespace, "tc", "qdisc", "add", "dev", device,
                    "root", "netem", "delay", f"{delay_ms // 2}ms", "limit", "10000")
            except subprocess.CalledProcessError as error:
                pytest.skip(f"netem is not available: {error.stderr.decode().strip()}")
        yield (["ip", "netns", "exec", left], "10.77.0.1",
               ["ip", "netns", "exec", right], "10.77.0.2")
    finally:
        for namespace in (left, right):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("receiver_stock", [False, True], ids=["fast-to-fast", "fast-to-stock"])
async def test_transfer_over_a_200ms_round_trip(tmp_path: Path, receiver_stock: bool) -> None:
    source = tmp_path / "payload.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024))
    folder = tmp_path / "downloads"
    folder.mkdir()
    with delayed_namespaces(200) as (left, left_host, right, right_host):
        sent, received = await run_transfer(
            source, folder, sender_prefix=left, receiver_prefix=right,
            sender_args=["--host", left_host],
            receiver_args=["--host", right_host, *(["--stock"] if receiver_stock else [])])
    assert received == {"bytes": source.stat().st_size, "ok": True}
    assert sent["ok"]
    assert sha256_file(folder / source.name) == sha256_file(source)
