"""Minimal peers written only from PROTOCOL.md interoperating with the real CLI."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conformance.transfer_peers import ReceiverScript, answer_and_receive, write_file
from conformance.wire import signaling
from support import CliProcess

pytestmark = pytest.mark.slow


async def send_to_minimal_receiver(url: str, receiver: str, script: ReceiverScript,
                                   paths: list[Path], sender_name: str,
                                   processes: list[CliProcess]) -> CliProcess:
    """Run `rtcxfer send` to our own answerer; return the finished send process."""
    async with signaling(url, receiver) as client:
        receiving = asyncio.create_task(answer_and_receive(client, script))
        sender = CliProcess(["send", "--server", url, "--name", sender_name, receiver,
                             *map(str, paths)])
        processes.append(sender)
        try:
            await asyncio.to_thread(sender.wait, 120)
            # our receiver's own assertions (what the CLI sent it) fail the test here
            await asyncio.wait_for(receiving, 30)
        finally:
            receiving.cancel()
    return sender


async def test_cli_send_to_minimal_receiver(server_url: str, unique: Callable[[str], str],
                                            tmp_path: Path,
                                            processes: list[CliProcess]) -> None:
    # a folder with nested, empty and multi-chunk files arrives whole; send exits 0
    pack = tmp_path / "pack"
    contents = {"pack/a.txt": b"hello\n", "pack/sub/b.bin": os.urandom(200_000),
                "pack/empty.txt": b""}
    for name, data in contents.items():
        write_file(tmp_path / name, data)
    script = ReceiverScript()
    sender = await send_to_minimal_receiver(server_url, unique("carol"), script, [pack],
                                            unique("dave"), processes)
    assert sender.popen.returncode == 0, sender.stderr
    assert script.received == contents
    assert script.hello is not None
    assert script.hello["total"] == sum(len(data) for data in contents.values())
    for entry in script.hello["files"]:
        assert isinstance(entry["size"], int)
        assert "mtime" not in entry or isinstance(entry["mtime"], int | float), entry


async def test_cli_send_to_receiver_that_never_echoes_session(
        server_url: str, unique: Callable[[str], str], tmp_path: Path,
        processes: list[CliProcess]) -> None:
    # `session` is an extension: a receiver that never sends it must still work
    source = write_file(tmp_path / "plain.bin", os.urandom(50_000))
    script = ReceiverScript(echo_session=False)
    sender = await send_to_minimal_receiver(server_url, unique("plain"), script, [source],
                                            unique("dave"), processes)
    assert sender.popen.returncode == 0, sender.stderr
    assert script.received == {"plain.bin": source.read_bytes()}


async def test_cli_send_with_nack_exits_8_naming_file(server_url: str,
                                                      unique: Callable[[str], str],
                                                      tmp_path: Path,
                                                      processes: list[CliProcess]) -> None:
    source = write_file(tmp_path / "refused-by-ack.bin", os.urandom(30_000))
    script = ReceiverScript(nack_reason="disk on fire")
    sender = await send_to_minimal_receiver(server_url, unique("nacker"), script, [source],
                                            unique("dave"), processes)
    assert sender.popen.returncode == 8, (sender.popen.returncode, sender.stderr)
    assert "refused-by-ack.bin" in sender.stderr, sender.stderr


async def test_cli_send_declined_exits_6_with_reason(server_url: str,
                                                     unique: Callable[[str], str],
                                                     tmp_path: Path,
                                                     processes: list[CliProcess]) -> None:
    source = write_file(tmp_path / "unwanted.bin", b"x" * 1000)
    script = ReceiverScript(decline_reason="no thanks, conformance")
    sender = await send_to_minimal_receiver(server_url, unique("decliner"), script, [source],
                                            unique("dave"), processes)
    assert sender.popen.returncode == 6, (sender.popen.returncode, sender.stderr)
    assert "no thanks, conformance" in sender.stderr, sender.stderr


async def test_cli_send_receiver_error_exits_nonzero(server_url: str,
                                                     unique: Callable[[str], str],
                                                     tmp_path: Path,
                                                     processes: list[CliProcess]) -> None:
    source = write_file(tmp_path / "errored.bin", b"y" * 1000)
    script = ReceiverScript(error_message="receiver exploded politely")
    sender = await send_to_minimal_receiver(server_url, unique("errorer"), script, [source],
                                            unique("dave"), processes)
    assert sender.popen.returncode == 8, (sender.popen.returncode, sender.stderr)
    assert "receiver exploded politely" in sender.stderr, sender.stderr
