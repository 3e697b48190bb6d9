"""``rtcxfer send``: offer one connection to a peer and send files over it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from rtcxfer.errors import AuthenticationFailed, PeerOffline, RtcxferError, TransferFailed
from rtcxfer.peer.client import ClientOptions, log_in
from rtcxfer.peer.config import rtc_configuration
from rtcxfer.peer.identity import config_dir, load_or_create, presented_identity
from rtcxfer.peer.session import PeerSession, Role, new_session_id
from rtcxfer.peer.trust import TrustStore, scope_of
from rtcxfer.progress import Output
from rtcxfer.text import printable
from rtcxfer.transfer import TransferReport, collect_sources, send_files

Confirm = Callable[[str], Awaitable[bool]]


async def send(peer: str, paths: Sequence[Path], options: ClientOptions,
               output: Output, *, confirm: Confirm | None = None,
               trust: TrustStore | None = None) -> TransferReport:
    """Send ``paths`` to ``peer``; return only when every file was acked with its sha256.

    The peer's certificate is checked against its pin before anything is sent,
    and pinned once the transfer completed (docs/security.md). ``confirm``
    (``--confirm-code``) is asked whether the receiver sees the same
    verification code; nothing is sent unless it says yes. ``trust``: another
    pin store than the user's (``demo`` keeps its pins in its temporary folder).
    """
    configuration = rtc_configuration(options.ice)
    identity = load_or_create()
    trust = trust or TrustStore(config_dir())
    # The room of the server's room extension, when ClientOptions grows one.
    scope = scope_of(options.server, getattr(options, "room", None))
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
        session = PeerSession(signaling, peer, new_session_id(), configuration,
                              role=Role.OFFERER, connect_timeout=options.connect_timeout,
                              identity=identity)
        _watch_peer(session)
        output.say(f"connecting to {peer}…")
        channel = await session.open_channel()
        presented, lasting = presented_identity(session.pc)
        trust.check(scope, peer, presented, nothing="nothing was sent")
        code = session.verification_code
        output.report("verification", f"verification code: {code}",
                      peer=peer, session=session.session_id, code=code)
        if confirm is not None and not await session.until(confirm(code)):
            raise AuthenticationFailed(
                f"the verification code was not confirmed; nothing was sent to "
                f"{printable(peer)}")
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
        if report.ok and lasting and trust.pin(scope, peer, presented):
            output.report("pinned", f"pinned the identity of {printable(peer)}: {presented}",
                          peer=peer, fingerprint=presented)
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
