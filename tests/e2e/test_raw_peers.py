"""A raw aiortc peer, written in the test, negotiating with a real `rtcxfer listen`.

It logs in through the real server with rtcxfer's own signaling client and
sessions, then speaks rtcxfer/1 itself: two transfers at once over two sessions
of the same pair, and a hostile sender that lies in every way it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiortc import RTCDataChannel
from support import CliProcess, json_events, sha256_of, wait_for_event, write_random_file

from rtcxfer.peer.config import IceOptions, rtc_configuration
from rtcxfer.peer.session import PeerSession, Role, new_session_id
from rtcxfer.peer.signaling import SignalingClient
from rtcxfer.transfer import collect_sources, send_files

Start = Callable[..., CliProcess]
REPLY_TIMEOUT = 30.0


class Recorder:
    """A TransferObserver that only remembers which files finished."""

    def __init__(self) -> None:
        self.finished: list[tuple[str, bool]] = []

    def transfer_started(self, files: Any, offsets: Any, *,
                         total: int | None = None) -> None:
        pass

    def file_started(self, index: int, entry: Any, offset: int) -> None:
        pass

    def file_progress(self, index: int, done: int) -> None:
        pass

    def file_finished(self, index: int, entry: Any, ok: bool, reason: str | None,
                      path: Path | None, *, saved_as: str | None = None,
                      resumed_from: int | None = None) -> None:
        self.finished.append((entry.name, ok))

    def transfer_finished(self, ok: bool) -> None:
        pass


@contextlib.asynccontextmanager
async def logged_in(url: str, name: str) -> AsyncIterator[SignalingClient]:
    client = SignalingClient(url, name)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def connected(client: SignalingClient, peer: str) -> AsyncIterator[PeerSession]:
    session = PeerSession(client, peer, new_session_id(), rtc_configuration(IceOptions()),
                          role=Role.OFFERER)
    try:
        await session.open_channel()
        yield session
    finally:
        await session.close()


async def test_two_transfers_between_the_same_pair_at_once(
        tmp_path: Path, listen: Start, server: str) -> None:
    first = write_random_file(tmp_path / "out" / "one" / "first.bin", 1_500_000)
    second = write_random_file(tmp_path / "out" / "two" / "second.bin", 1_500_000)
    inbox = tmp_path / "in"
    listener = listen("bob", inbox, "--yes")

    async with (logged_in(server, "alice") as alice, connected(alice, "bob") as one,
                connected(alice, "bob") as two):
        assert one.session_id != two.session_id
        reports = await asyncio.gather(*(
            send_files(session.channel, collect_sources([path]),
                       max_message_size=session.remote_max_message_size,
                       observer=Recorder())
            for session, path in ((one, first), (two, second))
        ))
    assert all(report.ok for report in reports)
    assert sha256_of(inbox / "first.bin") == sha256_of(first)
    assert sha256_of(inbox / "second.bin") == sha256_of(second)
    sessions = {event["session"] for event in json_events(listener, "summary")}
    assert sessions == {one.session_id, two.session_id}


class RawChannel:
    """Send rtcxfer/1 frames by hand and read the receiver's replies."""

    def __init__(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        self.replies: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        channel.on("message", self._on_message)
        channel.on("close", lambda: self.replies.put_nowait(None))

    def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self.replies.put_nowait(json.loads(message))

    def send(self, **message: Any) -> None:
        self.channel.send(json.dumps(message))

    async def reply(self) -> dict[str, Any] | None:
        """The next control message, or None once the receiver closed the channel."""
        return await asyncio.wait_for(self.replies.get(), REPLY_TIMEOUT)


async def hostile(server: str, hello_files: list[dict[str, Any]],
                  script: Callable[[RawChannel], Any]) -> None:
    async with logged_in(server, "mallory") as mallory, connected(mallory, "bob") as session:
        assert session.channel is not None
        raw = RawChannel(session.channel)
        raw.send(type="hello", version=1, files=hello_files,
                 total=sum(f["size"] for f in hello_files))
        await script(raw)


async def expect_refusal(raw: RawChannel) -> None:
    """The receiver must decline, send an error, or close: never accept."""
    reply = await raw.reply()
    assert reply is None or reply["type"] in ("decline", "error"), reply


def files_outside(inbox: Path, root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and inbox not in p.parents]


async def test_hostile_sender_writes_nothing_outside_the_folder(
        tmp_path: Path, listen: Start, server: str, run: Start) -> None:
    inbox = tmp_path / "box" / "in"
    listener = listen("bob", inbox, "--yes")
    before = files_outside(inbox, tmp_path)

    for name in ("../escape.txt", "/tmp/rtcxfer-absolute.txt", "a/../../escape2.txt",
                 "..", "", "nested/../../../escape3.txt"):
        await hostile(server, [{"name": name, "size": 4}], expect_refusal)

    async def wrong_hash(raw: RawChannel) -> None:
        assert (await raw.reply())["type"] == "accept"
        raw.send(type="file", index=0, offset=0)
        raw.channel.send(b"evil")
        raw.send(type="eof", index=0, sha256=hashlib.sha256(b"good").hexdigest())
        ack = await raw.reply()
        assert ack is None or (ack["type"] in ("ack", "error") and not ack.get("ok")), ack

    await hostile(server, [{"name": "hash.txt", "size": 4}], wrong_hash)

    async def lying_size(raw: RawChannel) -> None:
        assert (await raw.reply())["type"] == "accept"
        raw.send(type="file", index=0, offset=0)
        raw.channel.send(b"far more bytes than announced")
        raw.send(type="eof", index=0,
                 sha256=hashlib.sha256(b"far more bytes than announced").hexdigest())
        reply = await raw.reply()
        assert reply is None or reply["type"] == "error" or not reply.get("ok"), reply

    await hostile(server, [{"name": "size.txt", "size": 3}], lying_size)

    await asyncio.to_thread(check_after_hostile_senders, tmp_path, inbox, before, listener,
                            server, run)


def check_after_hostile_senders(tmp_path: Path, inbox: Path, before: list[Path],
                                listener: CliProcess, server: str, run: Start) -> None:
    assert files_outside(inbox, tmp_path) == before
    assert not (inbox / "hash.txt").exists()
    assert not (inbox / "size.txt").exists()
    assert not Path("/tmp/rtcxfer-absolute.txt").exists()
    # The listener survived all of it and still receives honest files.
    assert listener.popen.poll() is None
    honest = tmp_path / "honest.txt"
    honest.write_text("fine")
    sender = run("send", "--server", server, "--name", "alice", "--json", "bob", str(honest))
    assert sender.wait(90) == 0, sender.stderr
    assert (inbox / "honest.txt").read_text() == "fine"
    wait_for_event(listener, "summary", peer="alice")
