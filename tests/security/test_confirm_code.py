"""`send --confirm-code` on a real pseudo-terminal: nothing moves until the person says yes."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import RTCXFER, CliProcess, cli_env, json_events, running_server, wait_for_event

WAIT = 60.0


class Terminal:
    """A pty whose output is collected by a thread."""

    def __init__(self) -> None:
        self.controller, self.terminal = pty.openpty()
        self.output = b""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.controller, 4096)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self.output += chunk

    def wait_for(self, text: str, timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                seen = self.output.decode(errors="replace")
            if text in seen:
                return seen
            time.sleep(0.05)
        raise AssertionError(f"the terminal never showed {text!r}; it showed {seen!r}")

    def type(self, text: bytes) -> None:
        os.write(self.controller, text)

    def close(self) -> None:
        os.close(self.terminal)
        os.close(self.controller)


@pytest.fixture
def server() -> Iterator[str]:
    with running_server() as (url, _process):
        yield url


@pytest.mark.parametrize(("answer", "exit_code"), [(b"y\n", 0), (b"n\n", 9)])
def test_confirm_code_sends_nothing_until_confirmed(
        server: str, tmp_path: Path, answer: bytes, exit_code: int) -> None:
    source = tmp_path / "f.txt"
    source.write_text("hello")
    inbox = tmp_path / "in"
    listener = CliProcess(["listen", "--server", server, "--name", "bob", "--dir", str(inbox),
                           "--yes", "--json"])
    terminal = Terminal()
    sender: subprocess.Popen[str] | None = None
    try:
        wait_for_event(listener, "connected", timeout=WAIT)
        sender = subprocess.Popen(
            [*RTCXFER, "send", "--server", server, "--name", "alice", "--json",
             "--confirm-code", "bob", str(source)],
            stdin=terminal.terminal, stderr=terminal.terminal, stdout=subprocess.PIPE,
            env=cli_env(), text=True, start_new_session=True)
        shown = terminal.wait_for("[y/N]")
        receiver_code = wait_for_event(listener, "peer_connected", timeout=WAIT)["code"]
        assert f"Does bob see the verification code {receiver_code}?" in shown
        # The question is on the screen and the peers are connected: no hello yet.
        assert json_events(listener, "offer") == []
        assert not inbox.exists() or list(inbox.iterdir()) == []
        terminal.type(answer)
        stdout, _ = sender.communicate(timeout=WAIT)
        assert sender.returncode == exit_code, terminal.output
        events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        assert [e["code"] for e in events if e["event"] == "verification"] == [receiver_code]
        if exit_code == 0:
            assert (inbox / "f.txt").read_text() == "hello"
        else:
            assert "the verification code was not confirmed" in terminal.output.decode()
            assert json_events(listener, "offer") == []
            assert not inbox.exists() or list(inbox.iterdir()) == []
    finally:
        if sender is not None and sender.poll() is None:
            sender.kill()
            sender.wait(10)
        listener.stop()
        terminal.close()


def test_confirm_code_needs_a_terminal(server: str, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    result = subprocess.run(
        [*RTCXFER, "send", "--server", server, "--confirm-code", "bob", str(tmp_path / "f.txt")],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=cli_env(), timeout=60,
        check=False)
    assert result.returncode == 2
    assert "--confirm-code" in result.stderr
