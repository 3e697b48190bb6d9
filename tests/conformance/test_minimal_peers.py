"""Minimal peers written only from PROTOCOL.md interoperating with the real CLI."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conformance.transfer_peers import ReceiverScript, answer_and_receive, write_file
from conformance.wire import signaling, verification_code
from support import CliProcess, json_events

pytestmark = pytest.mark.slow


async def send_to_minimal_receiver(url: str, receiver: str, script: ReceiverScript,
                                   paths: list[Path], sender_name: str,
                                   processes: list[CliProcess],
                                   *options: str) -> CliProcess:
    """Run `rtcxfer send` to our own answerer; return the finished send process."""
    async with signaling(url, receiver) as client:
        receiving = asyncio.create_task(answer_and_receive(client, script))
        sender = CliProcess(["send", "--server", url, "--name", sender_name, *options,
                             receiver, *map(str, paths)])
        processes.append(sender)
        try:
            await asyncio.to_thread(sender.wait, 120)
            # our receiver's own assertions (what the CLI sent it) fail the test here
            await asyncio.wait_for(receiving, 30)
        except (AssertionError, TimeoutError) as failure:
            raise AssertionError(
                f"minimal receiver failed: {failure!r}; rtcxfer send exited "
                f"{sender.popen.returncode}\nstdout:\n{sender.stdout}\nstderr:\n{sender.stderr}"
            ) from failure
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
                                            unique("dave"), processes,
                                            "--connect-timeout", "10")
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


async def test_cli_send_honours_accept_offsets(server_url: str, unique: Callable[[str], str],
                                               tmp_path: Path,
                                               processes: list[CliProcess]) -> None:
    # resume: the sender starts at the offset we accepted; sha256 covers the whole file
    data = os.urandom(100_000)
    source = write_file(tmp_path / "resumed.bin", data)
    script = ReceiverScript(held={"resumed.bin": data[:40_000]})
    sender = await send_to_minimal_receiver(server_url, unique("resumer"), script, [source],
                                            unique("dave"), processes)
    assert sender.popen.returncode == 0, sender.stderr
    assert script.received == {"resumed.bin": data}


HOSTILE_ACCEPTS: dict[str, dict[str, object] | str] = {
    "offsets-too-few": {"type": "accept", "offsets": []},
    "offsets-too-many": {"type": "accept", "offsets": [0, 0, 0]},
    "offset-past-size": {"type": "accept", "offsets": [10**9]},
    "offset-negative": {"type": "accept", "offsets": [-1]},
    "offset-not-int": {"type": "accept", "offsets": ["0"]},
    "offsets-missing": {"type": "accept"},
    "non-json": "definitely not json",
    "unknown-type": {"type": "teleport"},
    "ack-instead": {"type": "ack", "index": 0, "ok": True},
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ACCEPTS))
async def test_cli_send_against_hostile_reply_to_hello(server_url: str,
                                                       unique: Callable[[str], str],
                                                       tmp_path: Path,
                                                       processes: list[CliProcess],
                                                       case: str) -> None:
    # a broken reply to hello is a transfer failure (8) with a message, never a success
    source = write_file(tmp_path / "probe.bin", os.urandom(5000))
    script = ReceiverScript(reply_to_hello=HOSTILE_ACCEPTS[case])
    sender = await send_to_minimal_receiver(server_url, unique("hostile"), script, [source],
                                            unique("dave"), processes)
    assert sender.popen.returncode == 8, (sender.popen.returncode, sender.stderr)
    assert "Traceback" not in sender.stderr, sender.stderr


async def test_cli_send_file_already_held_whole(server_url: str, unique: Callable[[str], str],
                                                tmp_path: Path,
                                                processes: list[CliProcess]) -> None:
    # offset == size: a `file` with no binary frame, then `eof` with the whole-file hash
    data = os.urandom(20_000)
    source = write_file(tmp_path / "held.bin", data)
    script = ReceiverScript(held={"held.bin": data})
    sender = await send_to_minimal_receiver(server_url, unique("holder"), script, [source],
                                            unique("dave"), processes)
    assert sender.popen.returncode == 0, sender.stderr
    assert script.received == {"held.bin": data}
    assert script.largest_frame == 0


@pytest.mark.parametrize("limit", [16384, 65536])
async def test_cli_send_frames_fit_remote_max_message_size(server_url: str,
                                                           unique: Callable[[str], str],
                                                           tmp_path: Path,
                                                           processes: list[CliProcess],
                                                           limit: int) -> None:
    # frames larger than 16 KiB only when the remote SDP's a=max-message-size allows
    data = os.urandom(300_000)
    source = write_file(tmp_path / "framed.bin", data)
    script = ReceiverScript(max_message_size=limit)
    sender = await send_to_minimal_receiver(server_url, unique("framer"), script, [source],
                                            unique("dave"), processes)
    assert sender.popen.returncode == 0, sender.stderr
    assert script.received == {"framed.bin": data}
    assert 0 < script.largest_frame <= limit


async def test_cli_send_verification_code_matches_docs_formula(
        server_url: str, unique: Callable[[str], str], tmp_path: Path,
        processes: list[CliProcess]) -> None:
    # docs/protocol.md "Verification code": same code from the offer and answer SDPs
    source = write_file(tmp_path / "verified.bin", b"v" * 1000)
    script = ReceiverScript()
    sender = await send_to_minimal_receiver(server_url, unique("verifier"), script, [source],
                                            unique("dave"), processes, "--json")
    assert sender.popen.returncode == 0, sender.stderr
    expected = verification_code(script.offer_sdp, script.answer_sdp)
    assert [event["code"] for event in json_events(sender, "verification")] == [expected]


async def test_cli_send_succeeds_when_receiver_closes_right_after_done(
        server_url: str, unique: Callable[[str], str], tmp_path: Path,
        processes: list[CliProcess]) -> None:
    # every file acked and `done` sent: the receiver hanging up at once is not a failure
    data = os.urandom(70_000)
    source = write_file(tmp_path / "quick.bin", data)
    script = ReceiverScript(linger_after_done=False)
    sender = await send_to_minimal_receiver(server_url, unique("abrupt"), script, [source],
                                            unique("dave"), processes)
    assert sender.popen.returncode == 0, sender.stderr
    assert script.received == {"quick.bin": data}
