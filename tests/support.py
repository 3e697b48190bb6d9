"""Test helpers shared by every test area: real CLI subprocesses on loopback."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

RTCXFER = [sys.executable, "-m", "rtcxfer"]


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RTCXFER_SERVER", None)
    env.pop("RTCXFER_NAME", None)
    env.pop("RTCXFER_TOKEN", None)
    env.pop("RTCXFER_ROOM", None)
    env.pop("RTCXFER_REDIS", None)
    env["PYTHONUNBUFFERED"] = "1"
    # Never the developer's own ~/.config/rtcxfer/config.toml; a test names its own.
    env["RTCXFER_CONFIG"] = os.devnull
    env.update(extra)
    return env


class CliProcess:
    """A running ``rtcxfer`` subprocess (or ``command``: another program) whose
    stdout/stderr are collected line by line in threads."""

    def __init__(self, args: Sequence[str], *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, command: Sequence[str] = RTCXFER) -> None:
        self.args = list(args)
        self.popen = subprocess.Popen(
            [*command, *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env or cli_env(),
            cwd=cwd,
            text=True,
            start_new_session=True,
        )
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._line_ready = threading.Condition()
        self._readers = [
            threading.Thread(target=self._pump, args=(self.popen.stdout, self.stdout_lines),
                             daemon=True),
            threading.Thread(target=self._pump, args=(self.popen.stderr, self.stderr_lines),
                             daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, stream, sink: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            with self._line_ready:
                sink.append(line.rstrip("\n"))
                self._line_ready.notify_all()
        with self._line_ready:
            self._line_ready.notify_all()

    def wait_for_line(self, predicate, *, stream: str = "stdout", timeout: float = 20.0) -> str:  # type: ignore[no-untyped-def]
        """Block until a line of ``stream`` satisfies ``predicate``; return it."""
        sink = self.stdout_lines if stream == "stdout" else self.stderr_lines
        seen = 0
        with self._line_ready:
            deadline = _monotonic() + timeout
            while True:
                for line in sink[seen:]:
                    if predicate(line):
                        return line
                seen = len(sink)
                remaining = deadline - _monotonic()
                if remaining <= 0 or (self.popen.poll() is not None and seen == len(sink)
                                      and not any(r.is_alive() for r in self._readers)):
                    raise AssertionError(
                        f"no matching {stream} line from {' '.join(self.popen.args)}\n"
                        f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
                    )
                self._line_ready.wait(min(remaining, 0.2))

    @property
    def stdout(self) -> str:
        return "\n".join(self.stdout_lines)

    @property
    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    def wait(self, timeout: float = 60.0) -> int:
        code = self.popen.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    def send_signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def stop(self) -> None:
        """Terminate the process group (SIGTERM, then SIGKILL) and reap it."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        for reader in self._readers:
            reader.join(5)


def _monotonic() -> float:
    return time.monotonic()


@contextlib.contextmanager
def running_server(
    *extra_args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, CliProcess]]:
    """Run ``rtcxfer serve --port 0`` on loopback; yield its ws:// URL and the process."""
    process = CliProcess(["serve", "--host", "127.0.0.1", "--port", "0", *extra_args], env=env)
    try:
        first = process.wait_for_line(lambda line: line.startswith(("ws://", "wss://")))
        yield first.split()[0], process
    finally:
        process.stop()


def json_events(process: CliProcess, event: str | None = None) -> list[dict]:
    """The ``--json`` events a process printed so far (optionally only one kind)."""
    import json

    events = []
    for line in list(process.stdout_lines):
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and (event is None or parsed.get("event") == event):
            events.append(parsed)
    return events


def wait_for_event(process: CliProcess, event: str, *, timeout: float = 30.0,
                   **fields: object) -> dict:
    """Block until the process printed the ``--json`` event ``event`` with ``fields``."""
    import json

    def matches(line: str) -> bool:
        try:
            parsed = json.loads(line)
        except ValueError:
            return False
        return (isinstance(parsed, dict) and parsed.get("event") == event
                and all(parsed.get(key) == value for key, value in fields.items()))

    return json.loads(process.wait_for_line(matches, timeout=timeout))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_random_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        remaining = size
        while remaining:
            block = min(remaining, 1 << 20)
            file.write(os.urandom(block))
            remaining -= block
    return path


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files in ``folder``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


def sha256_of(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class PtyTerminal:
    """The person's side of a pty: what the program wrote to it, and typing into it.

    A thread reads the pty; a subclass may look at each chunk as it arrives by
    overriding :meth:`on_output` (called with the lock held)."""

    def __init__(self, controller: int, *, timeout: float = 90.0) -> None:
        self.controller = controller
        self.timeout = timeout
        self.output = b""
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def on_output(self, chunk: bytes) -> None:
        """Each chunk read, after it was added to :attr:`output`."""

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.controller, 65536)
            except OSError:
                chunk = b""
            with self._changed:
                if not chunk:
                    self._changed.notify_all()
                    return
                self.output += chunk
                self.on_output(chunk)
                self._changed.notify_all()

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def wait_for(self, needle: str, *, after: int = 0, timeout: float | None = None) -> int:
        """Block until ``needle`` appears past byte ``after``; where it ends."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        encoded = needle.encode()
        with self._changed:
            while True:
                found = self.output.find(encoded, after)
                if found != -1:
                    return found + len(encoded)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._reader.is_alive():
                    raise AssertionError(f"{needle!r} never appeared; terminal:\n{self.text}")
                self._changed.wait(min(remaining, 0.2))

    def type(self, keys: bytes) -> None:
        os.write(self.controller, keys)


@contextlib.contextmanager
def listen_on_pty(server: str, folder: Path, *extra: str,
                  terminal: Callable[[int], PtyTerminal] = PtyTerminal,
                  size: tuple[int, int] | None = None,
                  env: dict[str, str] | None = None,
                  preexec_fn: Callable[[], None] | None = None,
                  ) -> Iterator[tuple[subprocess.Popen[bytes], PtyTerminal]]:
    """``rtcxfer listen`` as ``bob`` on a new pty (``size``: rows, columns), once it is
    receiving; stopped (its process group) at the end."""
    controller, pty_side = pty.openpty()
    if size is not None:
        rows, columns = size
        fcntl.ioctl(pty_side, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    process = subprocess.Popen(
        [*RTCXFER, "listen", "--server", server, "--name", "bob", "--dir", str(folder),
         *extra],
        stdin=pty_side, stdout=pty_side, stderr=pty_side, env=env or cli_env(),
        start_new_session=True, preexec_fn=preexec_fn)
    screen = terminal(controller)
    try:
        screen.wait_for("receiving into")
        yield process, screen
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        os.close(pty_side)
        os.close(controller)


@contextlib.contextmanager
def slow_relay(upstream: str, delayed: Callable[[str], bool],
               delay: float) -> Iterator[str]:
    """A WebSocket hop in front of the server at ``upstream`` that holds each frame a
    client sends for ``delay`` seconds when ``delayed(frame)``; frames stay in order.

    A far-away (or busy) signaling server: its relays come later than the peers'
    direct path. Yields the ws:// URL to give the client instead of ``upstream``.
    """
    import asyncio

    from websockets.asyncio.client import connect
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    async def pump(source, target, hold: bool) -> None:  # type: ignore[no-untyped-def]
        with contextlib.suppress(ConnectionClosed):
            async for frame in source:
                if hold and isinstance(frame, str) and delayed(frame):
                    await asyncio.sleep(delay)
                await target.send(frame)
        await target.close()

    async def hop(client: ServerConnection) -> None:
        async with connect(upstream, max_size=None) as server:
            await asyncio.gather(pump(client, server, True), pump(server, client, False))

    loop = asyncio.new_event_loop()
    ready: list[str] = []
    started = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        async with serve(hop, "127.0.0.1", 0, max_size=None) as relay:
            port = relay.sockets[0].getsockname()[1]
            ready.append(f"ws://127.0.0.1:{port}")
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        if not started.wait(10):
            raise RuntimeError("the slow relay did not start")
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
