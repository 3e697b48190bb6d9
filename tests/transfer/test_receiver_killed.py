"""Resume after the receiving process is killed (SIGKILL) in the middle of a file."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection
from transfer.peers import (
    CHANNEL_LABEL,
    WAIT_SECONDS,
    RecordingObserver,
    description_from_json,
    description_to_json,
    max_message_size,
    new_connection,
    wait_open,
)

from rtcxfer.errors import TransferFailed
from rtcxfer.transfer import TransferReport, collect_sources, send_files
from rtcxfer.transfer.storage import part_names

pytestmark = pytest.mark.usefixtures("loopback_ice")

RECEIVER = Path(__file__).with_name("receiver_process.py")


class ReceiverProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self) -> list[str]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), WAIT_SECONDS)
        assert raw, "the receiver process exited early"
        return raw.decode().split()


@contextlib.asynccontextmanager
async def receiver_process(download_dir: Path) -> AsyncIterator[ReceiverProcess]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(RECEIVER), str(download_dir),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        yield ReceiverProcess(process)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def sender_connection() -> AsyncIterator[RTCPeerConnection]:
    connection = new_connection()
    try:
        yield connection
    finally:
        await connection.close()


async def start_transfer(receiver: ReceiverProcess, connection: RTCPeerConnection,
                         source: Path) -> asyncio.Task[TransferReport]:
    channel = connection.createDataChannel(CHANNEL_LABEL)
    await connection.setLocalDescription(await connection.createOffer())
    assert receiver.process.stdin is not None
    receiver.process.stdin.write(description_to_json(connection.localDescription).encode()
                                 + b"\n")
    await receiver.process.stdin.drain()
    assert receiver.process.stdout is not None
    answer = await asyncio.wait_for(receiver.process.stdout.readline(), WAIT_SECONDS)
    await connection.setRemoteDescription(description_from_json(answer.decode()))
    await wait_open(channel)
    return asyncio.ensure_future(send_files(
        channel, collect_sources([source]),
        max_message_size=max_message_size(connection.remoteDescription.sdp),
        observer=RecordingObserver()))


@pytest.mark.slow
async def test_resume_after_the_receiver_is_killed(tmp_path: Path) -> None:
    source = tmp_path / "archive.bin"
    content = os.urandom(10 * 1024 * 1024)
    source.write_bytes(content)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    part = inbox / part_names("archive.bin")[0]

    async with receiver_process(inbox) as receiver, sender_connection() as connection:
        sending = await start_transfer(receiver, connection, source)
        assert await receiver.line() == ["offsets", "0"]
        while int((await receiver.line())[1]) < 2 * 1024 * 1024:
            pass
        receiver.process.kill()
        await receiver.process.wait()
        # Noticing a peer that vanished without a word is the connection's job
        # (ICE consent); the peer layer then stops send_files, as done here.
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, TransferFailed):
            await sending
    held = part.stat().st_size
    assert 2 * 1024 * 1024 <= held < len(content)
    assert not (inbox / "archive.bin").exists()

    async with receiver_process(inbox) as receiver, sender_connection() as connection:
        sending = await start_transfer(receiver, connection, source)
        assert await receiver.line() == ["offsets", str(held)]
        report = await asyncio.wait_for(sending, WAIT_SECONDS)
        while (words := await receiver.line())[0] != "report":
            pass
        assert words == ["report", "1", str(len(content) - held), str(held), "True"]
        assert await asyncio.wait_for(receiver.process.wait(), WAIT_SECONDS) == 0
    assert (report.resumed_bytes, report.bytes) == (held, len(content) - held)
    assert hashlib.sha256((inbox / "archive.bin").read_bytes()).digest() == hashlib.sha256(
        content).digest()
    assert sorted(path.name for path in inbox.iterdir()) == ["archive.bin"]
