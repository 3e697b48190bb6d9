"""Issue 14: `rtcxfer serve` on a terminal shows the page's address as a QR code."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

from support import RTCXFER, cli_env

from rtcxfer.server.runner import phone_url, qr_code_text


def _serve_on_a_terminal(*args: str, until: str, timeout: float = 30.0) -> str:
    """Start `rtcxfer serve` with stdout on a real pty; the output up to ``until``."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([*RTCXFER, "serve", "--port", "0", *args], env=cli_env(),
                               stdin=subprocess.DEVNULL, stdout=follower,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(follower)
    output = b""
    try:
        deadline = time.monotonic() + timeout
        while until.encode() not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    output += os.read(leader, 65536)
                except OSError:
                    break
        # The QR code follows its heading; give it a moment to arrive whole.
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
    finally:
        process.terminate()
        process.wait(10)
        os.close(leader)
    return output.decode().replace("\r\n", "\n")


def test_serve_on_a_terminal_prints_a_qr_code_of_the_page() -> None:
    text = _serve_on_a_terminal("--host", "127.0.0.1", until="scan to open")
    page = next(line.split()[1] for line in text.splitlines() if line.startswith("open "))
    assert f"scan to open {page} on a phone:" in text
    # The very drawing of that address (rendered the same way), nothing else.
    assert qr_code_text(page) in text


def test_the_qr_code_carries_the_token_and_prefers_a_lan_address() -> None:
    pages = ["http://127.0.0.1:9090/", "http://192.168.7.20:9090/"]
    assert phone_url(pages, None) == "http://192.168.7.20:9090/"
    assert phone_url(pages, "s3 cret") == "http://192.168.7.20:9090/#token=s3%20cret"
    assert phone_url(pages[:1], None) == "http://127.0.0.1:9090/"
    text = _serve_on_a_terminal("--host", "127.0.0.1", "--token", "s3cret",
                                until="scan to open")
    page = next(line.split()[1] for line in text.splitlines() if line.startswith("open "))
    assert "(the code carries the access token)" in text
    assert qr_code_text(page + "#token=s3cret") in text


def test_no_qr_code_when_stdout_is_not_a_terminal() -> None:
    process = subprocess.Popen([*RTCXFER, "serve", "--port", "0"], env=cli_env(),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(2)]
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=10)
    assert lines[0].startswith("ws://") and lines[1].startswith("open ")
    assert "scan" not in rest and "█" not in rest
