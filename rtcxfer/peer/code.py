"""Code mode: ``rtcxfer send --code PATH...`` and ``rtcxfer receive CODE``.

Neither side knows the other's name. The sender logs in as
``rtcxfer-code-<number>`` and prints ``<number>-<word>-<word>``; the receiver
logs in under a random ``rtcxfer-code-r-<hex>`` name and finds the sender by
the number. Both run SPAKE2 (the ``spake2`` package, as magic-wormhole does)
with the whole code as the password, over ``candidate`` messages that the
server relays like any other (docs/protocol.md, "Code mode"), then prove the
key over both DTLS certificate fingerprints before any file byte moves. A
wrong code or a server that swapped the certificates fails that proof on both
sides: :class:`~rtcxfer.errors.CodeMismatch`, exit 9.

A code works once: the sender answers the first PAKE message only, and exits
whatever its outcome, so one wrong guess burns the code.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from aiortc import RTCDataChannel
from spake2 import SPAKE2_A, SPAKE2_B
from spake2.ed25519_basic import NotOnCurve
from spake2.spake2 import SPAKEError

from rtcxfer.errors import (
    CodeMismatch,
    NameTaken,
    PeerOffline,
    RtcxferError,
    ServerUnreachable,
    TransferFailed,
)
from rtcxfer.peer.client import ClientOptions
from rtcxfer.peer.config import own_ice_urls, plan_ice, server_ice_urls
from rtcxfer.peer.identity import Identity, load_or_create, peer_fingerprint
from rtcxfer.peer.listener import FINISHING_GRACE_SECONDS, Listener
from rtcxfer.peer.sender import _watch_peer
from rtcxfer.peer.session import PeerSession, Role, new_session_id, report_path
from rtcxfer.peer.signaling import Signal, SignalingClient
from rtcxfer.progress import Output, OutputMode, count, format_size
from rtcxfer.protocol.code import (
    CODE_SESSION_PREFIX,
    CONFIRM,
    NUMBER_LIMITS,
    PAKE,
    RECEIVER,
    SENDER,
    SPAKE2_ID_RECEIVER,
    SPAKE2_ID_SENDER,
    WRONG_OR_TAMPERED,
    Code,
    confirm_message,
    confirmation,
    confirms,
    new_code,
    pake_message,
    read_message,
    receiver_name,
)
from rtcxfer.text import printable
from rtcxfer.transfer import (
    IncomingOffer,
    TransferReport,
    collect_sources,
    receive_files,
    send_files,
)

logger = logging.getLogger(__name__)

PAKE_MESSAGE_BYTES = 33  # side byte + Ed25519 point
CLAIM_ATTEMPTS = 20  # numbers tried per range before moving to larger numbers


class CodeChannel:
    """The code-mode messages of one attempt: ``(peer, "code-<session>")``."""

    def __init__(self, signaling: SignalingClient, peer: str, session: str) -> None:
        self.signaling = signaling
        self.peer = peer
        self.session = session
        loop = asyncio.get_running_loop()
        self.pake: asyncio.Future[bytes] = loop.create_future()
        self.mac: asyncio.Future[bytes] = loop.create_future()
        signaling.route(peer, session, self._receive)

    def _receive(self, signal: Signal) -> None:
        if signal.type == "leave":
            for waiting in (self.pake, self.mac):
                if not waiting.done():
                    waiting.set_exception(CodeMismatch(
                        f"{WRONG_OR_TAMPERED} (the other side gave up)"))
            return
        if signal.type != "candidate":
            return
        for kind, waiting in ((PAKE, self.pake), (CONFIRM, self.mac)):
            value = read_message(signal.payload, kind)
            if value is not None and not waiting.done():
                waiting.set_result(value)

    async def send(self, payload: dict[str, str]) -> None:
        await self.signaling.send_candidate(self.peer, self.session, payload)

    def close(self) -> None:
        self.signaling.unroute(self.peer, self.session, self._receive)
        for waiting in (self.pake, self.mac):
            if waiting.done() and not waiting.cancelled():
                waiting.exception()  # retrieved: no "never retrieved" warning
            waiting.cancel()


async def _prove(session: PeerSession, channel: CodeChannel, key: bytes, role: str,
                 identity: Identity, wait: float) -> None:
    """Send our MAC over both certificates and check the peer's; CodeMismatch if wrong."""
    local, remote = identity.fingerprint, peer_fingerprint(session.pc)
    sender_fp, receiver_fp = (local, remote) if role == SENDER else (remote, local)
    await channel.send(confirm_message(confirmation(key, role, sender_fp, receiver_fp)))
    try:
        mac = await session.until(asyncio.wait_for(asyncio.shield(channel.mac), wait))
    except TimeoutError:
        raise CodeMismatch(f"{WRONG_OR_TAMPERED} (no confirmation came)") from None
    except TransferFailed as error:
        raise CodeMismatch(f"{WRONG_OR_TAMPERED} ({error})") from error
    other = RECEIVER if role == SENDER else SENDER
    if not confirms(key, other, sender_fp, receiver_fp, mac):
        raise CodeMismatch(WRONG_OR_TAMPERED)


def _finish(spake: SPAKE2_A | SPAKE2_B, message: bytes) -> bytes:
    if len(message) != PAKE_MESSAGE_BYTES:
        raise CodeMismatch(WRONG_OR_TAMPERED)
    try:
        return spake.finish(message)
    except (SPAKEError, ValueError, AssertionError, NotOnCurve):
        # python-spake2 rejects a bad point with ValueError or NotOnCurve.
        raise CodeMismatch(WRONG_OR_TAMPERED) from None


def _show_code(output: Output, code: Code, server: str) -> None:
    output.event("code", code=str(code))
    if output.mode is not OutputMode.JSON:
        # Shown even with --quiet: without it the command is useless.
        sys.stderr.write(f"code: {code}\non the other machine run: rtcxfer receive {code}"
                         + ("" if server == "ws://127.0.0.1:9090" else f" --server {server}")
                         + "\n")
        sys.stderr.flush()


async def _claim_code(options: ClientOptions) -> tuple[Code, SignalingClient]:
    """Log in as ``rtcxfer-code-<number>`` for a number nobody holds."""
    for limit in NUMBER_LIMITS:
        for _ in range(CLAIM_ATTEMPTS):
            code = new_code(limit)
            signaling = SignalingClient(options.server, code.sender_name, token=options.token)
            try:
                await signaling.connect()
            except NameTaken:
                continue
            return code, signaling
    raise RtcxferError(f"no free code number on {options.server}; try again later")


# -- send --code ---------------------------------------------------------------


async def send_with_code(paths: Sequence[Path], options: ClientOptions,
                         output: Output) -> TransferReport:
    own_ice_urls(options.ice)  # a bad --stun/--turn fails before anything else
    sources = await asyncio.to_thread(collect_sources, paths)
    if not sources:
        raise RtcxferError("nothing to send: the folders given hold no files")
    identity = load_or_create()
    code, signaling = await _claim_code(options)
    plan = await plan_ice(options.ice, server_ice_urls(signaling.ice_servers))
    session: PeerSession | None = None
    channel: CodeChannel | None = None
    background: set[asyncio.Task[None]] = set()
    try:
        first: asyncio.Future[Signal] = asyncio.get_running_loop().create_future()

        def on_unrouted(signal: Signal) -> None:
            if (signal.type != "candidate" or not signal.session.startswith(CODE_SESSION_PREFIX)
                    or read_message(signal.payload, PAKE) is None):
                return
            if not first.done():
                first.set_result(signal)
                return
            # The code is spoken for (or burnt): every later attempt is turned away.
            task = asyncio.create_task(_leave_quietly(signaling, signal.peer, signal.session))
            background.add(task)
            task.add_done_callback(background.discard)

        signaling.on_unrouted = on_unrouted
        _show_code(output, code, options.server)
        output.say("waiting for the receiver…")
        closed = asyncio.ensure_future(signaling.wait_closed())
        await asyncio.wait({first, closed}, return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        if not first.done():
            raise ServerUnreachable(f"lost the signaling server at {options.server}")
        hello = first.result()
        peer, sid = hello.peer, hello.session[len(CODE_SESSION_PREFIX):]
        if not sid:
            raise CodeMismatch(WRONG_OR_TAMPERED)
        channel = CodeChannel(signaling, peer, hello.session)
        spake = SPAKE2_A(code.password, idA=SPAKE2_ID_SENDER, idB=SPAKE2_ID_RECEIVER)
        ours = spake.start()
        their = read_message(hello.payload, PAKE)
        assert their is not None
        key = _finish(spake, their)
        await channel.send(pake_message(ours))
        session = PeerSession(signaling, peer, sid, plan.configuration(), role=Role.OFFERER,
                              connect_timeout=options.connect_timeout, identity=identity,
                              ice_plan=plan)
        session.on_path = functools.partial(report_path, output, session)
        _watch_peer(session)
        output.say("connecting to the receiver…")
        data_channel = await session.open_channel()
        await _prove(session, channel, key, SENDER, identity, options.connect_timeout)
        output.report("code_verified", "the receiver knows the code; sending",
                      session=session.session_id)
        label = f"code {code}"
        try:
            report = await session.until(send_files(
                data_channel, sources, max_message_size=session.remote_max_message_size,
                observer=output.observer(peer=label, session=session.session_id,
                                         direction="send")))
        except TransferFailed as error:
            raise TransferFailed(f"sending with {label} failed: {error}") from error
        output.summary(report, peer=label, session=session.session_id, direction="send")
        return report
    finally:
        for task in list(background):
            task.cancel()
        if channel is not None:
            channel.close()
        if session is not None:
            await session.close()
        await signaling.close()


async def _leave_quietly(signaling: SignalingClient, peer: str, session: str) -> None:
    with contextlib.suppress(ServerUnreachable):
        await signaling.send_leave(peer, session)


# -- receive CODE ----------------------------------------------------------------


async def receive_with_code(code: Code, download_dir: Path, options: ClientOptions,
                            output: Output, *, overwrite: bool = False) -> TransferReport:
    own_ice_urls(options.ice)  # a bad --stun/--turn fails before anything else
    identity = load_or_create()
    try:
        await asyncio.to_thread(download_dir.mkdir, parents=True, exist_ok=True)
    except OSError as error:
        raise RtcxferError(f"cannot use {download_dir} as the download folder: "
                           f"{error.strerror or error}") from error
    signaling = SignalingClient(options.server, receiver_name(), token=options.token)
    await signaling.connect()
    plan = await plan_ice(options.ice, server_ice_urls(signaling.ice_servers))
    sender = code.sender_name
    sid = new_session_id()
    channel = CodeChannel(signaling, sender, CODE_SESSION_PREFIX + sid)
    sessions: list[PeerSession] = []
    receiving: asyncio.Future[asyncio.Task[TransferReport]] = (
        asyncio.get_running_loop().create_future())
    offered: asyncio.Future[PeerSession] = asyncio.get_running_loop().create_future()
    verified: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    label = f"code {code}"
    nobody = PeerOffline(f"nobody is waiting for code {code} on {options.server}: check "
                         "the number, or ask for a new code (a code works once)")

    def on_server_error(message: str) -> None:
        # The relay of our `pake` to an absent sender comes back as an error naming it
        # (PROTOCOL.md). The user list is not asked: a server may hide code names.
        if sender in message and not channel.pake.done():
            channel.pake.set_exception(nobody)

    signaling.on_server_error = on_server_error
    try:
        async def decide(incoming: IncomingOffer) -> str | None:
            await verified  # no file byte is accepted before the proof
            output.event("offer", peer=label, session=sid,
                         files=[{"name": f.name, "size": f.size} for f in incoming.files],
                         total=incoming.total)
            output.say(f"receiving {count(len(incoming.files), 'file')}, "
                       f"{format_size(incoming.total)}")
            return None

        def on_datachannel(data_channel: RTCDataChannel) -> None:
            if receiving.done():
                data_channel.close()
                return
            receiving.set_result(asyncio.ensure_future(receive_files(
                data_channel, download_dir=download_dir, decide=decide, overwrite=overwrite,
                observer=output.observer(peer=label, session=sid, direction="receive"))))

        def on_offer(signal: Signal) -> None:
            if (signal.peer, signal.session) != (sender, sid) or offered.done():
                return
            # Created here, synchronously: the candidates trickled right after the
            # offer must find the session's route.
            session = PeerSession(signaling, sender, sid, plan.configuration(),
                                  role=Role.ANSWERER, connect_timeout=options.connect_timeout,
                                  identity=identity, ice_plan=plan)
            session.on_path = functools.partial(report_path, output, session)
            sessions.append(session)
            session.on_datachannel = on_datachannel
            session.deliver(signal)
            offered.set_result(session)

        signaling.on_new_offer = on_offer
        spake = SPAKE2_B(code.password, idA=SPAKE2_ID_SENDER, idB=SPAKE2_ID_RECEIVER)
        await channel.send(pake_message(spake.start()))
        try:
            their = await asyncio.wait_for(asyncio.shield(channel.pake), options.connect_timeout)
            key = _finish(spake, their)
            session = await asyncio.wait_for(offered, options.connect_timeout)
        except TimeoutError:
            raise TransferFailed(f"the sender of code {code} did not answer") from None

        output.say("connecting to the sender…")
        await session.wait_connected()
        await _prove(session, channel, key, RECEIVER, identity, options.connect_timeout)
        verified.set_result(None)
        output.report("code_verified", "the sender knows the code; receiving", session=sid)
        try:
            transfer = await session.until(
                asyncio.wait_for(receiving, options.connect_timeout))
        except TimeoutError:
            raise TransferFailed("the sender connected but opened no channel") from None
        report = await session.until(transfer, grace=FINISHING_GRACE_SECONDS)
        await Listener._let_sender_hang_up(session)
        if not report.ok:
            raise TransferFailed(f"not every file from {printable(label)} arrived intact")
        output.summary(report, peer=label, session=sid, direction="receive")
        return report
    finally:
        if receiving.done() and not receiving.cancelled():
            receiving.result().cancel()
        channel.close()
        for session in sessions:
            await session.close()
        await signaling.close()
