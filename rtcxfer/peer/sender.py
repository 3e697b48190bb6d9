"""``rtcxfer send``: offer one connection to a peer and send files over it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from rtcxfer.errors import PeerOffline, RtcxferError, TransferFailed
from rtcxfer.peer.client import ClientOptions, log_in
from rtcxfer.peer.config import rtc_configuration
from rtcxfer.peer.session import PeerSession, Role, new_session_id
from rtcxfer.progress import Output
from rtcxfer.transfer import TransferReport
from rtcxfer.transfer.sender2 import plan_paths, plan_stream, plan_text, send_outgoing

STDIN_PATH = Path("-")


async def send(peer: str, paths: Sequence[Path], options: ClientOptions,
               output: Output, *, stdin_name: str = "stdin",
               text: bytes | None = None) -> TransferReport:
    """Send ``paths`` (``-``: standard input as a stream), or ``text``, to ``peer``;
    return only when every file was acked with its sha256."""
    configuration = rtc_configuration(options.ice)
    if text is not None:
        outgoing = plan_text(text)
    elif list(paths) == [STDIN_PATH]:
        outgoing = plan_stream(sys.stdin.buffer, stdin_name)
    else:
        outgoing = await asyncio.to_thread(plan_paths, paths)
        if not outgoing.count:
            # Files are sent, not folders: an empty tree would arrive as nothing.
            raise RtcxferError("nothing to send: the folders given hold no files")
    signaling = await log_in(options, output, vary_default_name=True)
    session: PeerSession | None = None
    try:
        if peer == signaling.name:
            raise RtcxferError(f"cannot send to yourself ({peer}); name the receiver")
        if peer not in signaling.users:
            raise PeerOffline(f"{peer} is not online on {options.server}")
        session = PeerSession(signaling, peer, new_session_id(), configuration,
                              role=Role.OFFERER, connect_timeout=options.connect_timeout)
        _watch_peer(session)
        output.say(f"connecting to {peer}…")
        channel = await session.open_channel()
        code = session.verification_code
        output.report("verification", f"verification code: {code}",
                      peer=peer, session=session.session_id, code=code)
        output.say(f"waiting for {peer} to accept…")
        try:
            report = await session.until(send_outgoing(
                channel,
                outgoing,
                max_message_size=session.remote_max_message_size,
                observer=output.observer(peer=peer, session=session.session_id,
                                         direction="send"),
            ))
        except TransferFailed as error:
            # The transfer layer speaks of "the receiver"; the person needs the name.
            raise TransferFailed(f"sending to {peer} failed: {error}") from error
        output.summary(report, peer=peer, session=session.session_id, direction="send")
        return report
    finally:
        if session is not None:
            await session.close()
        await signaling.close()


def _watch_peer(session: PeerSession) -> None:
    """End the session when the server says the peer is gone."""
    signaling, peer = session.signaling, session.peer

    def on_server_error(message: str) -> None:
        # PROTOCOL.md: a relay to a user who is not online gets an error naming
        # that user. Its wording is the server's; rtcxfer's says "not online".
        wording = message.lower()
        if peer in message and ("online" in wording or "offline" in wording):
            session.end(PeerOffline(f"{peer} is not online on {signaling.url}"))

    def on_presence(name: str, online: bool) -> None:
        if name == peer and not online:
            session.end(TransferFailed(f"{peer} went offline"))

    signaling.on_server_error = on_server_error
    signaling.on_presence = on_presence
