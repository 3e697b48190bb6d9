"""Exit codes of the CLI, as docs/protocol.md lists them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from conformance.wire import signaling
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
