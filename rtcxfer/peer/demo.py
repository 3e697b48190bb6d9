"""``rtcxfer demo``: the whole README story on one machine with nothing to set up.

A signaling server on a free loopback port, a listener receiving into a
temporary folder, a sender sending a generated file (or the given paths), and a
final check that every received file has the sender's sha256.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rtcxfer.errors import TransferFailed
from rtcxfer.peer.client import ClientOptions
from rtcxfer.peer.config import IceOptions
from rtcxfer.peer.listener import Listener, ListenOptions
from rtcxfer.peer.sender import send
from rtcxfer.peer.trust import TrustStore
from rtcxfer.progress import Output, OutputMode, format_size
from rtcxfer.server.server import ServerConfig, SignalingServer
from rtcxfer.transfer import collect_sources

RECEIVER = "demo-receiver"
SENDER = "demo-sender"
GENERATED_NAME = "demo.bin"
HASH_BLOCK = 1024 * 1024
LISTENER_READY_TIMEOUT = 30.0


async def run_demo(paths: Sequence[Path], *, size_mib: int, keep: bool, ice: IceOptions,
                   output: Output) -> None:
    workspace = Path(tempfile.mkdtemp(prefix="rtcxfer-demo-"))
    try:
        if not paths:
            generated = workspace / "source" / GENERATED_NAME
            await asyncio.to_thread(_write_random_file, generated, size_mib * 1024 * 1024)
            output.say(f"generated {generated} ({format_size(size_mib * 1024 * 1024)})")
            paths = [generated]
        received = workspace / "received"
        await _transfer(paths, received, ice, output)
        await _verify(paths, received, output)
    finally:
        if keep:
            output.report("kept", f"kept {workspace}", path=str(workspace))
        else:
            await asyncio.to_thread(shutil.rmtree, workspace, True)


async def _transfer(paths: Sequence[Path], received: Path, ice: IceOptions,
                    output: Output) -> None:
    async with SignalingServer(ServerConfig(host="127.0.0.1", port=0)) as server:
        host, port = server.addresses[0]
        url = f"ws://{host}:{port}"
        output.report("server", f"signaling server on {url}", url=url)
        # Pins of a throw-away server stay in the throw-away folder, not the user's.
        pins = TrustStore(received.parent / "pins")
        listener = Listener(
            ClientOptions(server=url, name=RECEIVER, ice=ice),
            ListenOptions(download_dir=received, assume_yes=True),
            # The sender reports the transfer; the listener's own bars would repeat it.
            Output(OutputMode.QUIET),
            trust=pins,
        )
        listening = asyncio.create_task(listener.run())
        try:
            await asyncio.wait_for(listener.ready.wait(), LISTENER_READY_TIMEOUT)
            output.say(f"{RECEIVER} is listening into {received}")
            await send(RECEIVER, paths, ClientOptions(server=url, name=SENDER, ice=ice), output,
                       trust=pins)
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening


async def _verify(paths: Sequence[Path], received: Path, output: Output) -> None:
    for source in await asyncio.to_thread(collect_sources, paths):
        landed = received / source.entry.name
        expected = await asyncio.to_thread(_sha256, source.path)
        actual = await asyncio.to_thread(_sha256, landed) if landed.is_file() else None
        if actual != expected:
            raise TransferFailed(f"{source.entry.name} did not arrive intact")
        output.report("verified", f"verified {source.entry.name} sha256 {expected}",
                      name=source.entry.name, sha256=expected)


def _write_random_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        remaining = size
        while remaining:
            block = min(remaining, HASH_BLOCK)
            file.write(os.urandom(block))
            remaining -= block


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()
