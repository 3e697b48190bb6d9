"""``rtcxfer listen``: stay logged in and receive files from whoever offers them.

Every offer gets its own :class:`PeerSession` (key: sender and session id), so
several senders, or several transfers from one sender, run at once. The
listener keeps running after each transfer, and when the signaling server goes
away it logs in again with exponential backoff; transfers already connected
are peer to peer and carry on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import RTCDataChannel

from rtcxfer.errors import LoginRefused, RtcxferError, ServerUnreachable, TransferFailed
from rtcxfer.peer.client import ClientOptions, is_users_probe, log_in
from rtcxfer.peer.config import rtc_configuration
from rtcxfer.peer.session import DATA_CHANNEL_LABEL, PeerSession, Role
from rtcxfer.peer.signaling import Signal, SignalingClient
from rtcxfer.progress import Output, count, format_size
from rtcxfer.text import printable
from rtcxfer.transfer import IncomingOffer, TransferReport
from rtcxfer.transfer.receiver2 import offer_count, receive_any

logger = logging.getLogger(__name__)

RECONNECT_FIRST_DELAY = 0.5
RECONNECT_MAX_DELAY = 10.0
# Each offer costs a peer connection (sockets, a DTLS handshake): offers beyond
# this many open sessions are turned away so that a flood cannot exhaust the host.
MAX_SESSIONS = 64
# How long a finished receiver waits for the sender to close before closing itself.
SENDER_HANG_UP_SECONDS = 5.0
# The sender leaves as soon as it has our `done`, while our own last steps (closing the
# disk thread) may still be running. A sender that leaves mid-transfer also closes the
# channel, which fails the transfer at once: the grace never holds up a real failure.
FINISHING_GRACE_SECONDS = 5.0
NOT_INTERACTIVE = "receiver is not interactive; run listen with --yes"
DECLINED_BY_USER = "declined by the receiver"


@dataclass(frozen=True)
class ListenOptions:
    download_dir: Path
    assume_yes: bool = False
    allowed_senders: frozenset[str] = field(default_factory=frozenset)  # empty: anyone
    overwrite: bool = False
    interactive: bool = False  # stdin is a terminal: offers may be prompted
    once: bool = False  # stop after the first transfer (run_once)
    stdout: bool = False  # write the one file or stream received to stdout


Ask = Callable[[str], Awaitable[bool]]


class Listener:
    def __init__(self, client: ClientOptions, options: ListenOptions, output: Output,
                 *, ask: Ask | None = None) -> None:
        self.client = client
        self.options = options
        self.output = output
        self.ask = ask or ask_on_terminal
        self.configuration = rtc_configuration(client.ice)
        self.signaling: SignalingClient | None = None
        self._transfers: set[asyncio.Task[None]] = set()
        self._sessions: set[PeerSession] = set()
        # Several offers at once are put to the person one at a time.
        self._prompt = asyncio.Lock()
        self.ready = asyncio.Event()  # set once logged in for the first time
        # --once: the first transfer's outcome (None: it succeeded).
        self.once_done: asyncio.Future[RtcxferError | None] | None = None

    async def run_once(self) -> None:
        """Run until the first transfer ended; raise its error if it failed."""
        self.once_done = asyncio.get_running_loop().create_future()
        running = asyncio.ensure_future(self.run())
        try:
            await asyncio.wait({running, self.once_done}, return_when=asyncio.FIRST_COMPLETED)
            if running.done():
                running.result()
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        error = self.once_done.result()
        if error is not None:
            raise error

    def _once(self, error: RtcxferError | None) -> None:
        if self.once_done is not None and not self.once_done.done():
            self.once_done.set_result(error)

    def _show_text(self, session: PeerSession, text: str) -> None:
        shown = "\n".join(printable(line) for line in text.split("\n"))
        self.output.event("text", peer=session.peer, session=session.session_id, text=text)
        self.output.say(f"{session.peer} sent a text:\n{shown}")

    async def run(self) -> None:
        """Log in and serve offers until cancelled; only the first login may fail."""
        try:
            self.options.download_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RtcxferError(
                f"cannot use {self.options.download_dir} as the download folder: "
                f"{error.strerror or error}"
            ) from error
        await self._log_in()
        self.ready.set()
        try:
            while True:
                assert self.signaling is not None
                await self.signaling.wait_closed()
                self.output.report("disconnected",
                                   f"lost the signaling server at {self.client.server}; "
                                   "reconnecting", server=self.client.server)
                await self._reconnect()
        finally:
            await self.shutdown()

    async def _log_in(self) -> None:
        signaling = await log_in(self.client, self.output)
        signaling.on_new_offer = self._on_offer
        signaling.on_presence = self._on_presence
        self.signaling = signaling
        others = [user for user in signaling.users
                  if user != signaling.name and not is_users_probe(user)]
        self.output.event("users", users=others)
        self.output.say("online: " + (", ".join(others) if others else "nobody else"))
        self.output.say(f"receiving into {self.options.download_dir}")

    async def _reconnect(self) -> None:
        delay = RECONNECT_FIRST_DELAY
        while True:
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            try:
                await self._log_in()
                return
            except (ServerUnreachable, LoginRefused) as error:
                # LoginRefused covers our own name still held by the server for
                # the connection it has not noticed is dead yet.
                logger.info("reconnect failed: %s", error)
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    def _on_presence(self, name: str, online: bool) -> None:
        if is_users_probe(name):
            return
        if online:
            self.output.report("user_joined", f"+ {name}", name=name)
        else:
            self.output.report("user_left", f"- {name}", name=name)

    def _on_offer(self, signal: Signal) -> None:
        assert self.signaling is not None
        if len(self._sessions) >= MAX_SESSIONS:
            logger.warning("turning away %s: %d transfers already open", signal.peer,
                           MAX_SESSIONS)
            self._spawn(self._turn_away(self.signaling, signal))
            return
        session = PeerSession(self.signaling, signal.peer, signal.session,
                              self.configuration, role=Role.ANSWERER,
                              connect_timeout=self.client.connect_timeout)
        receiving: asyncio.Future[asyncio.Task[TransferReport]] = (
            asyncio.get_running_loop().create_future()
        )

        def on_datachannel(channel: RTCDataChannel) -> None:
            if receiving.done():  # the session already ended
                channel.close()
                return
            # receive_files wants to be started from the datachannel event itself.
            receiving.set_result(asyncio.ensure_future(receive_any(
                channel,
                stdout=sys.stdout.buffer if self.options.stdout else None,
                on_text=lambda text: self._show_text(session, text),
                download_dir=self.options.download_dir,
                decide=lambda offer: self._decide(session, offer),
                overwrite=self.options.overwrite,
                observer=self.output.observer(
                    peer=session.peer, session=session.session_id, direction="receive"),
            )))

        session.on_datachannel = on_datachannel
        session.deliver(signal)
        self._sessions.add(session)
        self._spawn(self._serve(session, receiving))

    @staticmethod
    async def _turn_away(signaling: SignalingClient, signal: Signal) -> None:
        with contextlib.suppress(ServerUnreachable):
            await signaling.send_leave(signal.peer, signal.session)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._transfers.add(task)
        task.add_done_callback(self._transfers.discard)

    async def _serve(self, session: PeerSession,
                     receiving: asyncio.Future[asyncio.Task[TransferReport]]) -> None:
        try:
            await session.wait_connected()
            try:
                transfer = await session.until(
                    asyncio.wait_for(receiving, self.client.connect_timeout))
            except TimeoutError:
                raise TransferFailed(
                    f"{session.peer} connected but opened no {DATA_CHANNEL_LABEL} channel"
                ) from None
            report = await session.until(transfer, grace=FINISHING_GRACE_SECONDS)
            await self._let_sender_hang_up(session)
            if report.ok:
                self.output.summary(report, peer=session.peer, session=session.session_id,
                                    direction="receive")
            self._once(None if report.ok else TransferFailed(
                f"the transfer from {session.peer} did not complete (declined or refused)"))
        except RtcxferError as error:
            message = f"transfer from {session.peer} failed: {error}"
            self.output.report("transfer_failed", message, peer=session.peer,
                               session=session.session_id, message=message)
            self._once(error)
        finally:
            self._sessions.discard(session)
            if receiving.done() and not receiving.cancelled():
                receiving.result().cancel()
            await session.close()

    @staticmethod
    async def _let_sender_hang_up(session: PeerSession) -> None:
        """Wait (briefly) for the sender to close after our last message.

        aiortc aborts the association on close and drops whatever it has not sent
        yet: closing right after ``done`` or ``decline`` could lose it, and the
        sender would fail a transfer that succeeded.
        """
        channel = session.channel
        if channel is None or channel.readyState == "closed":
            return
        closed = asyncio.Event()
        channel.on("close", closed.set)
        with contextlib.suppress(RtcxferError, TimeoutError):
            await session.until(asyncio.wait_for(closed.wait(), SENDER_HANG_UP_SECONDS))

    async def _decide(self, session: PeerSession, offer: IncomingOffer) -> str | None:
        peer = session.peer
        allowed = self.options.allowed_senders
        if allowed and peer not in allowed:
            reason = f"not accepting files from {peer}"
        else:
            code = session.verification_code
            self.output.event(
                "offer", peer=peer, session=session.session_id, code=code,
                files=[{"name": f.name, "size": f.size} for f in offer.files],
                total=offer.total, count=offer_count(offer),
            )
            reason = await self._ask(peer, offer, code)
        if reason is not None:
            self.output.report("declined", f"declined {peer}: {reason}",
                               peer=peer, session=session.session_id, reason=reason)
        return reason

    async def _ask(self, peer: str, offer: IncomingOffer, code: str) -> str | None:
        if self.options.assume_yes:
            self.output.say(f"{peer} sends {count(offer_count(offer), 'file')}, "
                            f"{format_size(offer.total)} (verification code {code})")
            return None
        if not self.options.interactive:
            return NOT_INTERACTIVE
        question = (f"{peer} wants to send {count(offer_count(offer), 'file')}, "
                    f"{format_size(offer.total)}; verification code {code}. Accept?")
        async with self._prompt:
            return None if await self.ask(question) else DECLINED_BY_USER

    async def shutdown(self) -> None:
        """Close every session (each peer gets a leave) and log out."""
        for task in list(self._transfers):
            task.cancel()
        for task in list(self._transfers):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for session in list(self._sessions):
            await session.close()
        if self.signaling is not None:
            await self.signaling.close()


async def ask_on_terminal(question: str) -> bool:
    """Ask a yes/no question on the terminal without blocking the event loop.

    Reading stdin through the loop (not a thread) keeps the prompt cancellable:
    Ctrl-C or SIGTERM while it waits leaves nothing behind.
    """
    loop = asyncio.get_running_loop()
    while True:
        sys.stderr.write(f"{question} [y/N] ")
        sys.stderr.flush()
        answered: asyncio.Future[str] = loop.create_future()

        def on_readable(answered: asyncio.Future[str] = answered) -> None:
            if not answered.done():
                answered.set_result(sys.stdin.readline())

        loop.add_reader(sys.stdin.fileno(), on_readable)
        try:
            line = await answered
        finally:
            loop.remove_reader(sys.stdin.fileno())
        answer = line.strip().lower()
        if answer in ("y", "yes"):
            return True
        if answer in ("", "n", "no"):
            return False
