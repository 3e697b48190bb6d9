"""``rtcxfer send``: offer one connection to a peer and send files over it."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rtcxfer.errors import (
    AuthenticationFailed,
    PeerBusy,
    PeerOffline,
    RtcxferError,
    TransferFailed,
)
from rtcxfer.peer.client import ClientOptions, log_in
from rtcxfer.peer.config import own_ice_urls, plan_ice, server_ice_urls
from rtcxfer.peer.identity import config_dir, load_or_create, presented_identity
from rtcxfer.peer.session import PeerSession, Role, new_session_id, report_path
from rtcxfer.peer.trust import TrustStore, scope_of
from rtcxfer.progress import Output
from rtcxfer.text import printable
from rtcxfer.transfer import TransferReport
from rtcxfer.transfer.sender2 import plan_paths, plan_stream, plan_text, send_outgoing
from rtcxfer.transfer.sources import Skipped

STDIN_PATH = Path("-")

Confirm = Callable[[str], Awaitable[bool]]

# Seconds the receiver may stay silent while we wait for it (accept, ack, done).
SEND_IDLE_TIMEOUT = 300.0


@dataclass(frozen=True)
class SendOptions:
    skip_unreadable: bool = False
    follow_symlinks: bool = False
    idle_timeout: float = SEND_IDLE_TIMEOUT
    stdin_name: str = "stdin"  # the name standard input ("-") arrives under
    text: bytes | None = None  # --text: a text to show instead of files


async def send(peer: str, paths: Sequence[Path], options: ClientOptions,
               output: Output, send_options: SendOptions | None = None, *,
               confirm: Confirm | None = None,
               trust: TrustStore | None = None) -> TransferReport:
    """Send ``paths`` (``-``: standard input as a stream), or ``send_options.text``, to
    ``peer``; return only when every file was acked with its sha256.

    The peer's certificate is checked against its pin before anything is sent,
    and pinned once the transfer completed (docs/security.md). ``confirm``
    (``--confirm-code``) is asked whether the receiver sees the same
    verification code; nothing is sent unless it says yes. ``trust``: another
    pin store than the user's (``demo`` keeps its pins in its temporary folder).
    """
    send_options = send_options or SendOptions()
    own_ice_urls(options.ice)  # a bad --stun/--turn fails before anything else
    identity = load_or_create()
    trust = trust or TrustStore(config_dir())
    # The room of the server's room extension, when ClientOptions grows one.
    scope = scope_of(options.server, getattr(options, "room", None))
    if send_options.text is not None:
        outgoing = plan_text(send_options.text)
    elif list(paths) == [STDIN_PATH]:
        outgoing = plan_stream(sys.stdin.buffer, send_options.stdin_name)
    else:
        skipped: list[Skipped] = []
        outgoing = await asyncio.to_thread(functools.partial(
            plan_paths, paths, follow_symlinks=send_options.follow_symlinks,
            skip_unreadable=send_options.skip_unreadable, skipped=skipped))
        for item in skipped:
            output.warn("skipped", f"skipping {item}", path=str(item.path),
                        reason=item.reason)
        if not outgoing.count:
            # Files are sent, not folders: an empty tree would arrive as nothing.
            raise RtcxferError("nothing to send: the folders given hold no files")
    signaling = await log_in(options, output, vary_default_name=True)
    session: PeerSession | None = None
    try:
        if peer == signaling.name:
            raise RtcxferError(f"cannot send to yourself ({peer}); name the receiver")
        if peer not in signaling.users:
            raise PeerOffline(not_online_message(peer, options.server, signaling.users,
                                                 me=signaling.name))
        plan = await plan_ice(options.ice, server_ice_urls(signaling.ice_servers))
        session = PeerSession(signaling, peer, new_session_id(), plan.configuration(),
                              role=Role.OFFERER, connect_timeout=options.connect_timeout,
                              ice_plan=plan, identity=identity)
        session.on_path = lambda path: report_path(output, session, path)
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
            report = await session.until(send_outgoing(
                channel,
                outgoing,
                max_message_size=session.remote_max_message_size,
                observer=output.observer(peer=peer, session=session.session_id,
                                         direction="send"),
                idle_timeout=send_options.idle_timeout,
            ))
        except PeerBusy as error:
            busy = PeerBusy(f"{printable(peer)} is busy, try again later ({error.reason})")
            busy.reason = error.reason
            raise busy from error
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


SUGGESTIONS = 3
LISTED_WHEN_NO_MATCH = 5


def not_online_message(peer: str, server: str, users: list[str], *, me: str) -> str:
    """"bob is not online on ws://…" with who is: the closest names, or a few others."""
    import difflib

    from rtcxfer.peer.client import is_users_probe
    from rtcxfer.text import printable

    others = [user for user in users if user != me and not is_users_probe(user)]
    text = f"{printable(peer)} is not online on {printable(server)}"
    close = difflib.get_close_matches(peer, others, n=SUGGESTIONS, cutoff=0.6)
    if not close:
        lowered = peer.casefold()
        close = [user for user in others if user.casefold() == lowered][:SUGGESTIONS]
    if close:
        return text + "; did you mean " + " or ".join(printable(u) for u in close) + "?"
    if not others:
        return text + "; nobody else is online"
    shown = ", ".join(printable(user) for user in others[:LISTED_WHEN_NO_MATCH])
    more = len(others) - LISTED_WHEN_NO_MATCH
    return (text + f"; online: {shown}" + (f" and {more} more" if more > 0 else "")
            + " (rtcxfer users lists everyone)")
