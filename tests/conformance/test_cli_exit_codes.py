"""Exit codes of the CLI, as docs/protocol.md lists them."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCSessionDescription
from conformance.wire import SignalingClient, description, new_peer_connection, signaling
from support import CliProcess, free_port, wait_for_event

pytestmark = pytest.mark.slow


def run_to_end(processes: list[CliProcess], *args: str, seconds: float = 90) -> CliProcess:
    process = CliProcess(list(args))
    processes.append(process)
    process.wait(seconds)
    return process


def assert_clear_failure(process: CliProcess, code: int) -> None:
    """The documented code, a message on stderr, and no traceback."""
    assert process.popen.returncode == code, (process.popen.returncode, process.stderr)
    assert process.stderr.strip(), "no message on stderr"
    assert "Traceback" not in process.stderr, process.stderr


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "payload.txt"
    path.write_text("exit code probe\n")
    return path


@pytest.mark.parametrize("command", ["send", "listen"])
def test_server_unreachable_exits_3(processes: list[CliProcess], payload: Path,
                                    tmp_path: Path, command: str) -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    args = ["send", "--server", url, "--name", "nobody", "bob", str(payload)] \
        if command == "send" else ["listen", "--server", url, "--name", "nobody", "--yes",
                                   "--dir", str(tmp_path)]
    assert_clear_failure(run_to_end(processes, *args), 3)


def test_peer_offline_exits_5(server_url: str, unique: Callable[[str], str],
                              processes: list[CliProcess], payload: Path) -> None:
    ghost = unique("ghost")
    process = run_to_end(processes, "send", "--server", server_url, "--name", unique("s"),
                         ghost, str(payload))
    assert_clear_failure(process, 5)
    assert ghost in process.stderr


async def test_explicit_name_taken_exits_4(server_url: str, unique: Callable[[str], str],
                                           processes: list[CliProcess], payload: Path,
                                           tmp_path: Path) -> None:
    taken = unique("taken")
    async with signaling(server_url, taken), signaling(server_url, unique("target")) as target:
        send = await asyncio.to_thread(run_to_end, processes, "send", "--server", server_url,
                                       "--name", taken, target.name, str(payload))
        listen = await asyncio.to_thread(run_to_end, processes, "listen", "--server",
                                         server_url, "--name", taken, "--yes", "--dir",
                                         str(tmp_path))
    assert_clear_failure(send, 4)
    assert_clear_failure(listen, 4)


def test_declined_by_from_filter_exits_6(server_url: str, unique: Callable[[str], str],
                                         processes: list[CliProcess], payload: Path,
                                         tmp_path: Path) -> None:
    receiver, sender = unique("picky"), unique("stranger")
    (tmp_path / "in").mkdir()
    listener = CliProcess(["listen", "--server", server_url, "--name", receiver, "--yes",
                           "--from", "someoneelse", "--dir", str(tmp_path / "in"), "--json"])
    processes.append(listener)
    wait_for_event(listener, "connected", timeout=60)
    process = run_to_end(processes, "send", "--server", server_url, "--name", sender,
                         receiver, str(payload))
    assert_clear_failure(process, 6)
    assert sender in process.stderr, process.stderr
    assert not any((tmp_path / "in").iterdir())
    assert listener.popen.poll() is None


def test_missing_source_exits_1(server_url: str, unique: Callable[[str], str],
                                processes: list[CliProcess], tmp_path: Path) -> None:
    process = run_to_end(processes, "send", "--server", server_url, "--name", unique("s"),
                         "bob", str(tmp_path / "does-not-exist"))
    assert_clear_failure(process, 1)


def test_usage_error_exits_2(processes: list[CliProcess]) -> None:
    assert_clear_failure(run_to_end(processes, "send"), 2)


async def next_offer(client: SignalingClient) -> dict[str, Any]:
    while (message := await client.receive(60))["type"] != "offer":
        assert message["type"] in {"updata", "candidate"}, message
    return message


async def test_send_interrupted_exits_130_and_sends_leave(
        server_url: str, unique: Callable[[str], str], processes: list[CliProcess],
        payload: Path) -> None:
    # Ctrl-C while the receiver has not answered: exit 130, and the peer gets `leave`
    async with signaling(server_url, unique("silent")) as silent:
        sender = CliProcess(["send", "--server", server_url, "--name", unique("impatient"),
                             silent.name, str(payload)])
        processes.append(sender)
        offer = await next_offer(silent)
        sender.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(sender.wait, 30)
        assert code == 130, (code, sender.stderr)
        assert "Traceback" not in sender.stderr, sender.stderr
        while (message := await silent.receive(15))["type"] != "leave":
            assert message["type"] in {"candidate", "updata"}, message
        assert message["name"] == offer["name"]
        assert message.get("session") == offer.get("session"), (message, offer)


async def test_unreachable_peer_exits_7(server_url: str, unique: Callable[[str], str],
                                        processes: list[CliProcess], payload: Path) -> None:
    # the receiver answers, then its connection is gone: no ICE path within the timeout
    async with signaling(server_url, unique("phantom")) as phantom:
        sender = CliProcess(["send", "--server", server_url, "--name", unique("hopeful"),
                             "--connect-timeout", "3", phantom.name, str(payload)])
        processes.append(sender)
        offer = await next_offer(phantom)
        connection = new_peer_connection()
        await connection.setRemoteDescription(
            RTCSessionDescription(sdp=offer["offer"]["sdp"], type="offer"))
        await connection.setLocalDescription(await connection.createAnswer())
        answer = description(connection.localDescription)
        await connection.close()
        extra = {"session": offer["session"]} if "session" in offer else {}
        await phantom.relay("answer", offer["name"], answer, **extra)
        code = await asyncio.to_thread(sender.wait, 60)
    assert_clear_failure(sender, 7)
    assert code == 7


@pytest.mark.parametrize(("signum", "expected"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_listen_signals(server_url: str, unique: Callable[[str], str],
                        processes: list[CliProcess], tmp_path: Path, signum: int,
                        expected: int) -> None:
    # docs/peer.md: listen exits 130 on SIGINT, 0 on SIGTERM, without a traceback
    listener = CliProcess(["listen", "--server", server_url, "--name", unique("sig"), "--yes",
                           "--dir", str(tmp_path), "--json"])
    processes.append(listener)
    wait_for_event(listener, "connected", timeout=60)
    listener.send_signal(signum)
    assert listener.wait(30) == expected, listener.stderr
    assert "Traceback" not in listener.stderr, listener.stderr
