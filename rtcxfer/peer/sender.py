"""``rtcxfer send``: offer one connection to a peer and send files over it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from rtcxfer.errors import PeerOffline, RtcxferError, TransferFailed
from rtcxfer.peer.client import ClientOptions, log_in
from rtcxfer.peer.config import own_ice_urls, plan_ice, server_ice_urls
from rtcxfer.peer.session import PeerSession, Role, new_session_id, report_path
from rtcxfer.progress import Output
from rtcxfer.transfer import TransferReport, collect_sources, send_files


async def send(peer: str, paths: Sequence[Path], options: ClientOptions,
               output: Output) -> TransferReport:
    """Send ``paths`` to ``peer``; return only when every file was acked with its sha256."""
    own_ice_urls(options.ice)  # a bad --stun/--turn fails before anything else
    sources = await asyncio.to_thread(collect_sources, paths)
    if not sources:
        # rtcxfer/1 carries files, not folders: an empty tree would arrive as nothing.
        raise RtcxferError("nothing to send: the folders given hold no files")
    signaling = await log_in(options, output, vary_default_name=True)
    session: PeerSession | None = None
    try:
        if peer == signaling.name:
            raise RtcxferError(f"cannot send to yourself ({peer}); name the receiver")
        if peer not in signaling.users:
            raise PeerOffline(f"{peer} is not online on {options.server}")
        plan = await plan_ice(options.ice, server_ice_urls(signaling.ice_servers))
        session = PeerSession(signaling, peer, new_session_id(), plan.configuration(),
                              role=Role.OFFERER, connect_timeout=options.connect_timeout,
                              ice_plan=plan)
        session.on_path = lambda path: report_path(output, session, path)
        _watch_peer(session)
        output.say(f"connecting to {peer}…")
        channel = await session.open_channel()
        code = session.verification_code
        output.report("verification", f"verification code: {code}",
                      peer=peer, session=session.session_id, code=code)
        output.say(f"waiting for {peer} to accept…")
        try:
            report = await session.until(send_files(
                channel,
                sources,
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
