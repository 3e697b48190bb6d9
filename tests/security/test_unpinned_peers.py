"""Peers written to PROTOCOL.md alone make a certificate per connection: they are never
pinned (so they can send again), yet a pinned name is checked whoever uses it."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import RTCXFER, CliProcess, cli_env, running_server, wait_for_event

from rtcxfer.errors import PeerDeclined
from rtcxfer.peer.config import IceOptions, rtc_configuration
from rtcxfer.peer.session import PeerSession, Role, new_session_id
from rtcxfer.peer.signaling import SignalingClient
from rtcxfer.transfer import SilentObserver, collect_sources, send_files

WAIT = 60.0


@contextlib.asynccontextmanager
async def raw_peer(url: str, name: str, peer: str) -> AsyncIterator[PeerSession]:
    """aiortc with its own per-connection certificate, as any PROTOCOL.md client."""
    client = SignalingClient(url, name)
    await client.connect()
    session = PeerSession(client, peer, new_session_id(), rtc_configuration(IceOptions()),
                          role=Role.OFFERER)
    try:
        await session.open_channel()
        yield session
    finally:
        await session.close()
        await client.close()


async def raw_send(url: str, name: str, source: Path) -> None:
    async with raw_peer(url, name, "bob") as session:
        assert session.channel is not None
        await send_files(session.channel, collect_sources([source]),
                         max_message_size=session.remote_max_message_size,
                         observer=SilentObserver())


def pinned_names() -> list[str]:
    listing = subprocess.run([*RTCXFER, "trust", "list", "--json"], capture_output=True,
                             text=True, env=cli_env(), timeout=60, check=True)
    return [json.loads(line)["name"] for line in listing.stdout.splitlines()]


async def test_per_connection_certificates_are_not_pinned_but_pins_apply(
        tmp_path: Path) -> None:
    with running_server() as (url, _server):
        inbox = tmp_path / "in"
        listener = CliProcess(["listen", "--server", url, "--name", "bob", "--dir", str(inbox),
                               "--yes", "--json"])
        try:
            wait_for_event(listener, "connected", timeout=WAIT)
            for index in range(2):
                source = tmp_path / f"raw{index}.txt"
                source.write_text(f"raw {index}")
                await raw_send(url, "carol", source)
                wait_for_event(listener, "summary", timeout=WAIT, peer="carol")
            assert sorted(p.name for p in inbox.iterdir()) == ["raw0.txt", "raw1.txt"]
            assert "carol" not in pinned_names()

            # alice uses the CLI (a lasting identity): pinned; a raw "alice" then is not her.
            (tmp_path / "cli.txt").write_text("cli")
            cli = CliProcess(["send", "--server", url, "--name", "alice", "bob",
                              str(tmp_path / "cli.txt")])
            assert cli.wait(WAIT) == 0, cli.stderr
            wait_for_event(listener, "pinned", timeout=WAIT, peer="alice")
            (tmp_path / "impostor.txt").write_text("impostor")
            with pytest.raises(PeerDeclined, match="another identity pinned for alice"):
                await raw_send(url, "alice", tmp_path / "impostor.txt")
            assert not (inbox / "impostor.txt").exists()
        finally:
            listener.stop()
