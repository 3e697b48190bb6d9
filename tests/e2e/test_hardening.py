"""Issue 8 with the real CLI: the listener's folder and names, hostile and idle peers,
busy listeners, escaped output, and the warning when a listener's name is taken.

The peers written in the test use rtcxfer's own signaling client and sessions,
so what they do differently from the CLI is exactly what the test is about.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from support import CliProcess, cli_env, free_port, json_events, wait_for_event

from rtcxfer.errors import PeerBusy
from rtcxfer.peer.config import IceOptions, rtc_configuration
from rtcxfer.peer.session import PeerSession, Role, new_session_id
from rtcxfer.peer.signaling import Signal, SignalingClient
from rtcxfer.transfer import IncomingOffer, SilentObserver, collect_sources, receive_files
from rtcxfer.transfer import send_files as send_files_on

Start = Callable[..., CliProcess]
TIMEOUT = 90.0
EVIL = "\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J\x1b]0;owned\x07\r\x1b[32mverified\u202e"


@contextlib.asynccontextmanager
async def logged_in(url: str, name: str) -> AsyncIterator[SignalingClient]:
    client = SignalingClient(url, name)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def raw_receiver(url: str, name: str, decide: Callable[[IncomingOffer], object],
                       folder: Path) -> AsyncIterator[None]:
    """A receiver that answers every offer and runs rtcxfer/1 with ``decide``."""
    sessions: list[PeerSession] = []
    tasks: list[asyncio.Future] = []
    async with logged_in(url, name) as client:
        def on_offer(signal: Signal) -> None:
            session = PeerSession(client, signal.peer, signal.session,
                                  rtc_configuration(IceOptions()), role=Role.ANSWERER)

            def on_datachannel(channel) -> None:  # type: ignore[no-untyped-def]
                tasks.append(asyncio.ensure_future(receive_files(
                    channel, download_dir=folder, decide=decide,  # type: ignore[arg-type]
                    overwrite=False, observer=SilentObserver())))

            session.on_datachannel = on_datachannel
            session.deliver(signal)
            sessions.append(session)

        client.on_new_offer = on_offer
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for session in sessions:
                await session.close()


def start(processes: list[CliProcess], *args: str, env: dict[str, str] | None = None,
          ) -> CliProcess:
    process = CliProcess(list(args), env=env)
    processes.append(process)
    return process


# The listener's folder and hidden names ---------------------------------------------------


def test_listen_defaults_to_a_private_downloads_folder_and_refuses_hidden_names(
        tmp_path: Path, server: str, processes: list[CliProcess], send: Start) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = cli_env(HOME=str(home))
    env.pop("XDG_DOWNLOAD_DIR", None)
    listener = start(processes, "listen", "--server", server, "--name", "bob", "--yes",
                     env=env)
    folder = home / "Downloads" / "rtcxfer"
    listener.wait_for_line(lambda line: line == f"receiving into {folder}", stream="stderr",
                           timeout=TIMEOUT)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700

    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA attacker")
    (tmp_path / ".bash_aliases").write_text("alias ls='rm -rf ~'")
    for path in (tmp_path / ".ssh", tmp_path / ".bash_aliases"):
        sender = send("mallory", "bob", path)
        assert sender.wait(TIMEOUT) == 6, sender.stderr
        assert "hidden file names are refused" in sender.stderr
        assert "--allow-hidden" in sender.stderr
    assert list(folder.iterdir()) == []
    assert not (home / ".ssh").exists() and not (home / ".bash_aliases").exists()

    (tmp_path / "fine.txt").write_text("fine")
    sender = send("alice", "bob", tmp_path / "fine.txt")
    assert sender.wait(TIMEOUT) == 0, sender.stderr
    assert (folder / "fine.txt").read_text() == "fine"


def test_allow_hidden_accepts_hidden_names(tmp_path: Path, listen: Start, send: Start) -> None:
    (tmp_path / ".config").mkdir()
    (tmp_path / ".config" / "x.conf").write_text("x")
    inbox = tmp_path / "in"
    listen("bob", inbox, "--yes", "--allow-hidden")
    sender = send("alice", "bob", tmp_path / ".config")
    assert sender.wait(TIMEOUT) == 0, sender.stderr
    assert (inbox / ".config" / "x.conf").read_text() == "x"


# Terminal injection: whatever a peer says is escaped --------------------------------------


async def test_a_peers_decline_reason_reaches_the_terminal_escaped(
        tmp_path: Path, server: str, processes: list[CliProcess]) -> None:
    async def evil(offer: IncomingOffer) -> str:
        return EVIL

    (tmp_path / "f.txt").write_text("x")
    async with raw_receiver(server, "bob", evil, tmp_path):
        sender = start(processes, "send", "--server", server, "--name", "alice", "bob",
                       str(tmp_path / "f.txt"))
        code = await asyncio.to_thread(sender.wait, TIMEOUT)
    assert code == 6, sender.stderr
    assert "\x1b" not in sender.stderr and "\x07" not in sender.stderr
    assert "\u202e" not in sender.stderr and "\r" not in sender.stderr
    assert "\\x1b]52;c;" in sender.stderr and "\\u202e" in sender.stderr


async def test_send_reports_busy_with_its_own_exit_code(tmp_path: Path, server: str,
                                                     processes: list[CliProcess]) -> None:
    async def busy(offer: IncomingOffer) -> str:
        return "busy: the receiver has too many transfers open; try again later"

    (tmp_path / "f.txt").write_text("x")
    async with raw_receiver(server, "bob", busy, tmp_path):
        sender = start(processes, "send", "--server", server, "--name", "alice", "--json",
                       "bob", str(tmp_path / "f.txt"))
        code = await asyncio.to_thread(sender.wait, TIMEOUT)
    assert code == 10, sender.stderr
    assert "bob is busy, try again later" in sender.stderr
    (error,) = json_events(sender, "error")
    assert error["exit_code"] == 10


# Idle peers: a receiver that never answers, a sender that never says hello ---------------


async def test_send_gives_up_on_a_silent_receiver(tmp_path: Path, server: str,
                                                  processes: list[CliProcess]) -> None:
    async def never(offer: IncomingOffer) -> None:
        await asyncio.sleep(3600)

    (tmp_path / "f.txt").write_text("x")
    async with raw_receiver(server, "bob", never, tmp_path):
        sender = start(processes, "send", "--server", server, "--name", "alice",
                       "--idle-timeout", "2", "bob", str(tmp_path / "f.txt"))
        code = await asyncio.to_thread(sender.wait, TIMEOUT)
    assert code == 8, sender.stderr
    assert "sent nothing for 2 s while we waited for an answer to the offer" in sender.stderr


@contextlib.asynccontextmanager
async def silent_sessions(client: SignalingClient, peer: str,
                          count: int) -> AsyncIterator[list[PeerSession]]:
    """``count`` sessions that open their data channel and never send hello."""
    sessions = [PeerSession(client, peer, new_session_id(), rtc_configuration(IceOptions()),
                            role=Role.OFFERER) for _ in range(count)]
    try:
        await asyncio.gather(*(session.open_channel() for session in sessions))
        yield sessions
    finally:
        for session in sessions:
            await session.close()


async def test_listener_closes_a_session_that_never_says_hello(
        tmp_path: Path, listen: Start, server: str) -> None:
    listener = listen("bob", tmp_path / "in", "--yes", "--idle-timeout", "2")
    async with logged_in(server, "mallory") as mallory, \
            silent_sessions(mallory, "bob", 1) as (session,):
        failed = await asyncio.to_thread(
            wait_for_event, listener, "transfer_failed", peer="mallory", timeout=TIMEOUT)
        assert "sent no hello" in failed["message"]
        assert failed["session"] == session.session_id


async def test_one_peer_cannot_take_every_slot_and_is_told_busy(
        tmp_path: Path, listen: Start, send: Start, server: str) -> None:
    listener = listen("bob", tmp_path / "in", "--yes")
    (tmp_path / "f.txt").write_text("hello")
    async with logged_in(server, "mallory") as mallory, silent_sessions(mallory, "bob", 8):
        # A ninth session from the same name is turned away, with a reason.
        extra = PeerSession(mallory, "bob", new_session_id(), rtc_configuration(IceOptions()),
                            role=Role.OFFERER)
        try:
            channel = await extra.open_channel()
            try:
                await asyncio.wait_for(send_files_on(
                    channel, collect_sources([tmp_path / "f.txt"]),
                    max_message_size=extra.remote_max_message_size,
                    observer=SilentObserver()), TIMEOUT)
            except PeerBusy as busy:
                assert busy.exit_code == 10
                assert busy.reason.startswith("busy")
            else:
                raise AssertionError("the ninth session was accepted")
        finally:
            await extra.close()
        # Someone else still gets through meanwhile.
        sender = send("alice", "bob", tmp_path / "f.txt")
        assert await asyncio.to_thread(sender.wait, TIMEOUT) == 0, sender.stderr
    assert (tmp_path / "in" / "f.txt").read_text() == "hello"
    assert not [event for event in json_events(listener, "offer") if event["peer"] == "mallory"]


# Identity, said plainly --------------------------------------------------------------------


async def test_listener_warns_loudly_when_its_name_is_taken_while_reconnecting(
        tmp_path: Path, processes: list[CliProcess]) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    server = start(processes, *serve)
    server.wait_for_line(lambda line: line.startswith("ws://"), timeout=TIMEOUT)
    listener = start(processes, "listen", "--server", url, "--name", "bob", "--quiet",
                     "--dir", str(tmp_path / "in"))
    await asyncio.sleep(0)
    for _attempt in range(5):  # bounded: the listener may win the race for the name
        await asyncio.to_thread(
            lambda: wait_for_logged_in(url, "bob"))
        server.stop()
        server = start(processes, *serve)
        await asyncio.to_thread(server.wait_for_line,
                                lambda line: line.startswith("ws://"), timeout=TIMEOUT)
        squatter = SignalingClient(url, "bob")
        try:
            await squatter.connect()
        except Exception:  # the listener logged in first: try again
            continue
        try:
            line = await asyncio.to_thread(
                listener.wait_for_line, lambda text: "the name bob is taken" in text,
                stream="stderr", timeout=TIMEOUT)
            assert line.startswith("warning: ")
            assert "Retrying" in line
            return
        finally:
            await squatter.close()
    raise AssertionError("the squatter never got the name first")


def wait_for_logged_in(url: str, name: str) -> None:
    """Block until ``name`` is online on ``url`` (bounded)."""
    async def check() -> bool:
        probe = SignalingClient(url, f"probe-{os.getpid()}")
        try:
            await probe.connect()
        except Exception:
            return False
        try:
            return name in probe.users
        finally:
            await probe.close()

    for _ in range(200):
        if asyncio.run(check()):
            return
        import time

        time.sleep(0.1)
    raise AssertionError(f"{name} never came online")


# The sender's view of a folder, with the CLI --------------------------------------------


def test_send_checks_its_paths_before_connecting(tmp_path: Path,
                                                 processes: list[CliProcess]) -> None:
    nowhere = f"ws://127.0.0.1:{free_port()}"  # nothing listens: exit 3 if it tried
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a").write_text("file")
    (tmp_path / "y" / "a").mkdir(parents=True)
    (tmp_path / "y" / "a" / "b.txt").write_text("inside")
    clash = start(processes, "send", "--server", nowhere, "bob", str(tmp_path / "x" / "a"),
                  str(tmp_path / "y" / "a") + "/")
    assert clash.wait(TIMEOUT) == 1, clash.stderr
    assert "a file and a folder" in clash.stderr

    share = tmp_path / "share"
    share.mkdir()
    (share / "ok.txt").write_text("ok")
    os.mkfifo(share / "pipe")
    fifo = start(processes, "send", "--server", nowhere, "bob", str(share))
    assert fifo.wait(TIMEOUT) == 1, fifo.stderr
    assert f"{share / 'pipe'}: not a regular file (a FIFO)" in fifo.stderr
    assert "--skip-unreadable" in fifo.stderr


def test_skip_unreadable_sends_the_rest_and_lists_what_it_skipped(
        tmp_path: Path, listen: Start, server: str, processes: list[CliProcess]) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (share / "ok.txt").write_text("ok")
    os.mkfifo(share / "pipe")
    (share / "out").symlink_to(tmp_path)
    listen("bob", tmp_path / "in", "--yes")
    sender = start(processes, "send", "--server", server, "--name", "alice",
                   "--skip-unreadable", "bob", str(share))
    assert sender.wait(TIMEOUT) == 0, sender.stderr
    assert f"warning: skipping {share / 'pipe'}: not a regular file (a FIFO)" in sender.stderr
    assert f"warning: skipping {share / 'out'}: a symlink leading out" in sender.stderr
    assert sorted(os.listdir(tmp_path / "in" / "share")) == ["ok.txt"]


async def test_listener_closes_a_sender_that_goes_silent_mid_file(
        tmp_path: Path, listen: Start, server: str) -> None:
    import json

    listener = listen("bob", tmp_path / "in", "--yes", "--idle-timeout", "2")
    async with logged_in(server, "mallory") as mallory, \
            silent_sessions(mallory, "bob", 1) as (session,):
        channel = session.channel
        assert channel is not None
        replies: asyncio.Queue[str] = asyncio.Queue()
        channel.on("message", replies.put_nowait)
        channel.send(json.dumps({"type": "hello", "version": 1, "total": 1000,
                                 "files": [{"name": "slow.bin", "size": 1000}]}))
        accept = json.loads(await asyncio.wait_for(replies.get(), TIMEOUT))
        assert accept["type"] == "accept"
        channel.send(json.dumps({"type": "file", "index": 0, "offset": 0}))
        channel.send(b"x" * 100)  # then nothing
        failed = await asyncio.to_thread(
            wait_for_event, listener, "transfer_failed", peer="mallory", timeout=TIMEOUT)
        assert "sent nothing for 2 s" in failed["message"]
    assert not (tmp_path / "in" / "slow.bin").exists()
