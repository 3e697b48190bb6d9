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
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import RTCDataChannel

from rtcxfer.errors import LoginRefused, RtcxferError, ServerUnreachable, TransferFailed
from rtcxfer.peer.client import ClientOptions, is_users_probe, log_in
from rtcxfer.peer.config import (
    REFRESH_MARGIN_SECONDS,
    IcePlan,
    credentials_expiry,
    own_ice_urls,
    plan_ice,
    server_ice_urls,
)
from rtcxfer.peer.session import DATA_CHANNEL_LABEL, PeerSession, Role, report_path
from rtcxfer.peer.signaling import Signal, SignalingClient
from rtcxfer.progress import Output, count, format_size
from rtcxfer.transfer import IncomingOffer, TransferReport, receive_files

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
# Never ask the server for fresh ICE servers more often than this.
MIN_REFRESH_SECONDS = 30.0
NOT_INTERACTIVE = "receiver is not interactive; run listen with --yes"
DECLINED_BY_USER = "declined by the receiver"


@dataclass(frozen=True)
class ListenOptions:
    download_dir: Path
    assume_yes: bool = False
    allowed_senders: frozenset[str] = field(default_factory=frozenset)  # empty: anyone
    overwrite: bool = False
    interactive: bool = False  # stdin is a terminal: offers may be prompted


Ask = Callable[[str], Awaitable[bool]]


class Listener:
    def __init__(self, client: ClientOptions, options: ListenOptions, output: Output,
                 *, ask: Ask | None = None) -> None:
        self.client = client
        self.options = options
        self.output = output
        self.ask = ask or ask_on_terminal
        own_ice_urls(client.ice)  # a bad --stun/--turn fails before anything else
        self.ice_plan = IcePlan()  # chosen again at each login and credential refresh
        self._ice_expiry: float | None = None
        self.signaling: SignalingClient | None = None
        self._transfers: set[asyncio.Task[None]] = set()
        self._sessions: set[PeerSession] = set()
        # Several offers at once are put to the person one at a time.
        self._prompt = asyncio.Lock()
        self.ready = asyncio.Event()  # set once logged in for the first time

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
        await self._plan_ice()
        others = [user for user in signaling.users
                  if user != signaling.name and not is_users_probe(user)]
        self.output.event("users", users=others)
        self.output.say("online: " + (", ".join(others) if others else "nobody else"))
        self.output.say(f"receiving into {self.options.download_dir}")

    async def _plan_ice(self) -> None:
        assert self.signaling is not None
        urls = server_ice_urls(self.signaling.ice_servers)
        self.ice_plan = await plan_ice(self.client.ice, urls)
        self._ice_expiry = credentials_expiry(urls) if self.client.ice.use_server_ice else None
        if self._ice_expiry is not None:
            self._spawn(self._refresh_ice(self.signaling, self._ice_expiry))

    async def _refresh_ice(self, signaling: SignalingClient, expiry: float) -> None:
        """Fetch fresh TURN credentials (ext ``iceservers``) before these expire."""
        left = expiry - time.time()
        await asyncio.sleep(max(MIN_REFRESH_SECONDS, left - min(REFRESH_MARGIN_SECONDS, left / 2)))
        if signaling is not self.signaling or not signaling.is_open:
            return  # a new login brought new credentials
        if await signaling.refresh_ice_servers():
            await self._plan_ice()
        else:
            logger.info("the server sent no fresh ICE servers; keeping the old ones")

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
                              self.ice_plan.configuration(), role=Role.ANSWERER,
                              connect_timeout=self.client.connect_timeout,
                              ice_plan=self.ice_plan)
        session.on_path = lambda path: report_path(self.output, session, path)
        receiving: asyncio.Future[asyncio.Task[TransferReport]] = (
            asyncio.get_running_loop().create_future()
        )

        def on_datachannel(channel: RTCDataChannel) -> None:
            if receiving.done():  # the session already ended
                channel.close()
                return
            # receive_files wants to be started from the datachannel event itself.
            receiving.set_result(asyncio.ensure_future(receive_files(
                channel,
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
        except RtcxferError as error:
            message = f"transfer from {session.peer} failed: {error}"
            self.output.report("transfer_failed", message, peer=session.peer,
                               session=session.session_id, message=message)
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
                total=offer.total,
            )
            reason = await self._ask(peer, offer, code)
        if reason is not None:
            self.output.report("declined", f"declined {peer}: {reason}",
                               peer=peer, session=session.session_id, reason=reason)
        return reason

    async def _ask(self, peer: str, offer: IncomingOffer, code: str) -> str | None:
        if self.options.assume_yes:
            self.output.say(f"{peer} sends {count(len(offer.files), 'file')}, "
                            f"{format_size(offer.total)} (verification code {code})")
            return None
        if not self.options.interactive:
            return NOT_INTERACTIVE
        question = (f"{peer} wants to send {count(len(offer.files), 'file')}, "
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
