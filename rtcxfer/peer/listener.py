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
import json
import logging
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import RTCDataChannel

from rtcxfer.errors import (
    IdentityChanged,
    LoginRefused,
    NameTaken,
    RtcxferError,
    ServerUnreachable,
    TransferFailed,
)
from rtcxfer.peer.client import ClientOptions, is_users_probe, log_in
from rtcxfer.peer.config import (
    REFRESH_MARGIN_SECONDS,
    IcePlan,
    credentials_expiry,
    own_ice_urls,
    plan_ice,
    server_ice_urls,
)
from rtcxfer.peer.identity import config_dir, load_or_create, presented_identity
from rtcxfer.peer.prompt import (
    INTERRUPTED,
    Question,
    ask_on_terminal,
    describe_file,
    flush_terminal_input,
)
from rtcxfer.peer.session import DATA_CHANNEL_LABEL, PeerSession, Role, report_path
from rtcxfer.peer.signaling import Signal, SignalingClient
from rtcxfer.peer.trust import TrustStore, scope_of
from rtcxfer.progress import Output, count, format_size
from rtcxfer.text import printable
from rtcxfer.transfer import (
    FileEntry,
    IncomingOffer,
    SilentObserver,
    TransferObserver,
    TransferReport,
)
from rtcxfer.transfer.paths import is_hidden_name
from rtcxfer.transfer.receiver2 import offer_count, receive_any
from rtcxfer.transfer.storage import numbered_name, remove_stale_parts, space_problem

logger = logging.getLogger(__name__)

RECONNECT_FIRST_DELAY = 0.5
RECONNECT_MAX_DELAY = 10.0
# Each offer costs a peer connection (sockets, a DTLS handshake): offers beyond
# this many open sessions are turned away so that a flood cannot exhaust the host.
MAX_SESSIONS = 64
# Open sessions per sending name: one name cannot take every slot.
MAX_SESSIONS_PER_PEER = 8
# Offers over a cap still get a "busy" decline (a short connection) up to this many at
# once; beyond it, a plain leave.
MAX_BUSY_REPLIES = 8
BUSY_REASON = "busy: the receiver has too many transfers open; try again later"
# A session whose sender sends nothing (no hello, or nothing mid-transfer) for this
# long is closed; the time an offer waits for the person's answer does not count.
LISTEN_IDLE_TIMEOUT = 60.0
HIDDEN_REFUSED = "hidden file names are refused"
EXECUTABLE_SUFFIXES = (
    ".exe", ".com", ".bat", ".cmd", ".msi", ".scr", ".ps1", ".vbs", ".js", ".jar", ".sh",
    ".bash", ".zsh", ".py", ".pl", ".rb", ".desktop", ".app", ".appimage", ".deb", ".rpm",
    ".run", ".bin", ".command", ".lnk",
)
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
# Ctrl-C while an offer is on the terminal declines it (the sender exits 6, declined).
DECLINED_ON_EXIT = "declined by the receiver (it stopped listening)"
# How long an interrupted listener waits for those declines to reach their senders.
DECLINE_ON_EXIT_SECONDS = 3.0
# Part files untouched for longer than this are removed when listen starts.
KEEP_PARTS_DAYS = 7.0
LISTED_PARTS = 10
NO_TERMINAL_WARNING = (
    "no terminal to ask on and no --yes: every offer will be declined "
    "(\"receiver is not interactive\"); run listen --yes to accept them")


@dataclass(frozen=True)
class ListenOptions:
    download_dir: Path
    assume_yes: bool = False
    allowed_senders: frozenset[str] = field(default_factory=frozenset)  # empty: anyone
    overwrite: bool = False
    interactive: bool = False  # stdin is a terminal: offers may be prompted
    allow_hidden: bool = False  # accept names with a component starting with "."
    idle_timeout: float = LISTEN_IDLE_TIMEOUT
    max_sessions_per_peer: int = MAX_SESSIONS_PER_PEER
    once: bool = False  # stop after the first transfer (run_once)
    stdout: bool = False  # write the one file or stream received to stdout
    keep_parts_days: float = KEEP_PARTS_DAYS  # older part files are removed at startup


Ask = Callable[[Question], Awaitable[bool]]


def default_download_dir() -> Path:
    """``$XDG_DOWNLOAD_DIR/rtcxfer``, else ``~/Downloads/rtcxfer`` (absolute)."""
    base = os.environ.get("XDG_DOWNLOAD_DIR") or str(Path.home() / "Downloads")
    return Path(os.path.abspath(os.path.expanduser(base))) / "rtcxfer"


def prepare_download_dir(folder: Path) -> Path:
    """Create ``folder`` (private: 0700) if missing; its absolute path."""
    folder = Path(os.path.abspath(folder))
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)
    return folder


class _Activity:
    """When the sender of one session was last heard from.

    The clock stops while the sender waits for us: while the person decides, and
    between a file's ``eof`` and its verification (hashing, fsync of a big file).
    """

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.paused = 0
        self.verifying = 0
        self.hello = False

    def touch(self, *_args: object) -> None:
        self.last = time.monotonic()

    def on_message(self, data: object) -> None:
        self.touch()
        if isinstance(data, str) and '"eof"' in data:
            with contextlib.suppress(ValueError):
                message = json.loads(data)
                if isinstance(message, dict) and message.get("type") == "eof":
                    self.verifying += 1

    def verified(self) -> None:
        if self.verifying:
            self.verifying -= 1
        self.touch()

    def idle_for(self) -> float:
        if self.paused or self.verifying:
            return 0.0
        return time.monotonic() - self.last


class _WatchedObserver:
    """A TransferObserver that also tells the session's clock when a file is settled."""

    def __init__(self, inner: TransferObserver, activity: _Activity) -> None:
        self.inner = inner
        self.activity = activity

    def transfer_started(self, files: Sequence[FileEntry], offsets: Sequence[int], *,
                         total: int | None = None) -> None:
        self.inner.transfer_started(files, offsets, total=total)

    def file_started(self, index: int, entry: FileEntry, offset: int) -> None:
        self.inner.file_started(index, entry, offset)

    def file_progress(self, index: int, done: int) -> None:
        self.inner.file_progress(index, done)

    def file_finished(self, index: int, entry: FileEntry, ok: bool, reason: str | None,
                      path: Path | None, *, saved_as: str | None = None,
                      resumed_from: int | None = None) -> None:
        self.activity.verified()
        self.inner.file_finished(index, entry, ok, reason, path, saved_as=saved_as,
                                 resumed_from=resumed_from)

    def transfer_finished(self, ok: bool) -> None:
        self.inner.transfer_finished(ok)


class Listener:
    def __init__(self, client: ClientOptions, options: ListenOptions, output: Output,
                 *, ask: Ask | None = None, trust: TrustStore | None = None) -> None:
        self.client = client
        self.options = options
        self.output = output
        self.ask = ask or ask_on_terminal
        own_ice_urls(client.ice)  # a bad --stun/--turn fails before anything else
        self.ice_plan = IcePlan()  # chosen again at each login and credential refresh
        self._ice_expiry: float | None = None
        self.identity = load_or_create()
        self.trust = trust or TrustStore(config_dir())
        # The room of the server's room extension, when ClientOptions grows one.
        self.scope = scope_of(client.server, getattr(client, "room", None))
        self.signaling: SignalingClient | None = None
        self._transfers: set[asyncio.Task[None]] = set()
        self._sessions: set[PeerSession] = set()
        self._per_peer: Counter[str] = Counter()
        self._busy_replies = 0
        # What each connected sender presented: (fingerprint, lasting), read while the
        # DTLS connection is up (the certificate is gone once it closes).
        self._presented: dict[PeerSession, tuple[str, bool]] = {}
        # Several offers at once are put to the person one at a time.
        self._prompt = asyncio.Lock()
        self.ready = asyncio.Event()  # set once logged in for the first time
        self.download_dir = Path(os.path.abspath(options.download_dir))
        # Open questions (Ctrl-C declines them) and whether the listener is stopping.
        self._questions: set[asyncio.Future[bool]] = set()
        self._stopping = False
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
            self.download_dir = prepare_download_dir(self.options.download_dir)
        except OSError as error:
            raise RtcxferError(
                f"cannot use {printable(self.options.download_dir)} as the download folder: "
                f"{error.strerror or error}"
            ) from error
        self._say_whom_we_accept()
        if not self.options.assume_yes and not self.options.interactive:
            self.output.warn("not_interactive", NO_TERMINAL_WARNING)
        await self._remove_stale_parts()
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

    def _say_whom_we_accept(self) -> None:
        allowed = sorted(self.options.allowed_senders)
        if self.options.assume_yes and not allowed:
            self.output.report(
                "accepting_anyone",
                "accepting files from anyone (--yes without --from); a pinned name must "
                "still present its pinned identity", fingerprint=self.identity.fingerprint)
        for name in allowed:
            pin = self.trust.lookup(self.scope, name)
            if pin is None:
                self.output.say(f"{printable(name)} is not pinned yet: the first completed "
                                "transfer from that name pins its identity")
            else:
                self.output.say(f"accepting {printable(name)} only with identity "
                                f"{pin.fingerprint}")

    async def _remove_stale_parts(self) -> None:
        """Report and remove part files older than --keep-parts days (our folder only)."""
        days = self.options.keep_parts_days
        removed = await asyncio.to_thread(remove_stale_parts, self.download_dir,
                                          days * 86400.0)
        if not removed:
            return
        total = sum(part.size for part in removed)
        self.output.event("parts_removed", dir=str(self.download_dir), days=days,
                          files=[{"name": part.name, "size": part.size} for part in removed])
        self.output.say(f"removed {count(len(removed), 'part file')} ({format_size(total)}) "
                        f"older than {days:g} days from {self.download_dir}:")
        for part in removed[:LISTED_PARTS]:
            self.output.say(f"  {part.name}  {format_size(part.size)}, "
                            f"{part.age_seconds / 86400:.0f} days old")
        if len(removed) > LISTED_PARTS:
            self.output.say(f"  … and {len(removed) - LISTED_PARTS} more")

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
        self.output.say(f"receiving into {self.download_dir}")

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
            except NameTaken as error:
                # Loud: meanwhile whoever holds the name receives what is sent to it.
                assert self.signaling is not None
                name = self.signaling.name
                self.output.warn(
                    "name_taken",
                    f"the name {name} is taken on {self.client.server} (by someone else, "
                    "or by our old connection the server has not dropped yet); files sent "
                    f"to {name} now go to whoever holds it. Retrying.",
                    name=name, server=self.client.server, message=str(error))
            except (ServerUnreachable, LoginRefused) as error:
                # LoginRefused covers our own name still held by the server for
                # the connection it has not noticed is dead yet.
                logger.info("reconnect failed: %s", error)
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    def _on_presence(self, name: str, online: bool) -> None:
        if is_users_probe(name):
            return
        if online:
            self.output.report("user_joined", f"+ {printable(name)}", name=name)
        else:
            self.output.report("user_left", f"- {printable(name)}", name=name)

    def _on_offer(self, signal: Signal) -> None:
        assert self.signaling is not None
        peer = signal.peer
        over = (len(self._sessions) >= MAX_SESSIONS
                or self._per_peer[peer] >= self.options.max_sessions_per_peer)
        if over:
            logger.warning("turning away %s: %d transfers open (%d from them)",
                           printable(peer), len(self._sessions), self._per_peer[peer])
            if self._busy_replies >= MAX_BUSY_REPLIES:
                self._spawn(self._turn_away(self.signaling, signal))
                return
        session = PeerSession(self.signaling, peer, signal.session,
                              self.ice_plan.configuration(), role=Role.ANSWERER,
                              connect_timeout=self.client.connect_timeout,
                              ice_plan=self.ice_plan, identity=self.identity)
        session.on_path = lambda path: report_path(self.output, session, path)
        receiving: asyncio.Future[asyncio.Task[TransferReport]] = (
            asyncio.get_running_loop().create_future()
        )
        activity = _Activity()

        async def busy(_offer: IncomingOffer) -> str:
            return BUSY_REASON

        def on_datachannel(channel: RTCDataChannel) -> None:
            if receiving.done():  # the session already ended
                channel.close()
                return
            activity.touch()
            channel.on("message", activity.on_message)
            # receive_files wants to be started from the datachannel event itself.
            receiving.set_result(asyncio.ensure_future(receive_any(
                channel,
                stdout=sys.stdout.buffer if self.options.stdout else None,
                on_text=lambda text: self._show_text(session, text),
                download_dir=self.download_dir,
                decide=busy if over else (lambda offer: self._decide(session, offer, activity)),
                overwrite=self.options.overwrite,
                allow_hidden=self.options.allow_hidden,
                observer=_WatchedObserver(SilentObserver() if over else self.output.observer(
                    peer=session.peer, session=session.session_id, direction="receive"),
                    activity),
            )))

        session.on_datachannel = on_datachannel
        session.deliver(signal)
        if over:
            self._busy_replies += 1
        else:
            self._sessions.add(session)
            self._per_peer[peer] += 1
        self._spawn(self._serve(session, receiving, activity, busy=over))

    @staticmethod
    async def _turn_away(signaling: SignalingClient, signal: Signal) -> None:
        with contextlib.suppress(ServerUnreachable):
            await signaling.send_leave(signal.peer, signal.session)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._transfers.add(task)
        task.add_done_callback(self._transfers.discard)

    async def _serve(self, session: PeerSession,
                     receiving: asyncio.Future[asyncio.Task[TransferReport]],
                     activity: _Activity, *, busy: bool = False) -> None:
        watchdog: asyncio.Task[None] | None = None
        try:
            await session.wait_connected()
            self._identity_of(session)
            if not busy:
                code = session.verification_code
                self.output.report(
                    "peer_connected",
                    f"{printable(session.peer)} connected; verification code {code}",
                    peer=session.peer, session=session.session_id, code=code)
            try:
                transfer = await session.until(
                    asyncio.wait_for(receiving, self.client.connect_timeout))
            except TimeoutError:
                raise TransferFailed(
                    f"{session.peer} connected but opened no {DATA_CHANNEL_LABEL} channel"
                ) from None
            watchdog = asyncio.create_task(self._watch_idle(session, activity))
            report = await session.until(transfer, grace=FINISHING_GRACE_SECONDS)
            await self._let_sender_hang_up(session)
            fingerprint, lasting = self._presented[session]
            if report.ok and not busy:
                if lasting and self.trust.pin(self.scope, session.peer, fingerprint):
                    self.output.report(
                        "pinned",
                        f"pinned the identity of {printable(session.peer)}: {fingerprint}",
                        peer=session.peer, fingerprint=fingerprint)
                self.output.summary(report, peer=session.peer, session=session.session_id,
                                    direction="receive")
            self._once(None if report.ok else TransferFailed(
                f"the transfer from {session.peer} did not complete (declined or refused)"))
        except RtcxferError as error:
            message = f"transfer from {session.peer} failed: {error}"
            if busy:
                logger.info("%s", printable(message))
            else:
                self.output.report("transfer_failed", message, peer=session.peer,
                                   session=session.session_id, message=message)
                self._once(error)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            self._presented.pop(session, None)
            if busy:
                self._busy_replies -= 1
            elif session in self._sessions:
                self._sessions.discard(session)
                self._per_peer[session.peer] -= 1
                if self._per_peer[session.peer] <= 0:
                    del self._per_peer[session.peer]
            if receiving.done() and not receiving.cancelled():
                receiving.result().cancel()
            await session.close()

    async def _watch_idle(self, session: PeerSession, activity: _Activity) -> None:
        """End ``session`` when its sender stays silent past the idle timeout."""
        timeout = self.options.idle_timeout
        while True:
            idle = activity.idle_for()
            if idle >= timeout:
                waited = "no hello (the list of files)" if not activity.hello else "nothing"
                session.end(TransferFailed(
                    f"{session.peer} sent {waited} for {timeout:g} s; closed the session"))
                return
            await asyncio.sleep(min(timeout - idle, 1.0) + 0.01)

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

    def _identity_of(self, session: PeerSession) -> tuple[str, bool]:
        """The sender's (fingerprint, lasting), read once while the connection is up."""
        if session not in self._presented:
            self._presented[session] = presented_identity(session.pc)
        return self._presented[session]

    async def _decide(self, session: PeerSession, offer: IncomingOffer,
                      activity: _Activity | None = None) -> str | None:
        peer = session.peer
        allowed = self.options.allowed_senders
        try:
            self.trust.check(self.scope, peer, self._identity_of(session)[0],
                             nothing="nothing was received")
        except IdentityChanged as error:
            self.output.report("identity_changed", str(error), peer=peer,
                               session=session.session_id, message=str(error))
            reason = f"the receiver has another identity pinned for {peer}"
            self.output.report("declined", f"declined {printable(peer)}: {printable(reason)}",
                               peer=peer, session=session.session_id, reason=reason)
            return reason
        if activity is not None:
            activity.hello = True
            activity.paused += 1
        try:
            hidden = [f.name for f in offer.files if is_hidden_name(f.name)]
            # Before asking: no question about files that cannot fit. (receive_files
            # checks again after an accept.)
            space = await asyncio.to_thread(space_problem, self.download_dir,
                                            offer.total - offer.held)
            if space is not None:
                reason = space
            elif allowed and peer not in allowed:
                reason = f"not accepting files from {peer}"
            elif hidden and not self.options.allow_hidden:
                reason = (f"{HIDDEN_REFUSED} ({printable(hidden[0], limit=80)!r}"
                          + (f" and {len(hidden) - 1} more" if len(hidden) > 1 else "")
                          + "); the receiver can allow them with --allow-hidden")
            else:
                reason = await self._ask(session, offer)
        finally:
            if activity is not None:
                activity.paused -= 1
                activity.touch()
        if reason is not None:
            self.output.report("declined", f"declined {peer}: {reason}",
                               peer=peer, session=session.session_id, reason=reason)
        return reason

    def _offer_event(self, session: PeerSession, offer: IncomingOffer, code: str) -> None:
        self.output.event(
            "offer", peer=session.peer, session=session.session_id, code=code,
            files=[{"name": f.name, "size": f.size} for f in offer.files],
            total=offer.total, count=offer_count(offer), dir=str(self.download_dir),
        )

    async def _ask(self, session: PeerSession, offer: IncomingOffer) -> str | None:
        peer = session.peer
        code = session.verification_code
        if self.options.assume_yes:
            self._offer_event(session, offer, code)
            self.output.say(f"{peer} sends {count(offer_count(offer), 'file')}, "
                            f"{format_size(offer.total)} (verification code {code}) "
                            f"into {self.download_dir}")
            return None
        if not self.options.interactive:
            self._offer_event(session, offer, code)
            return NOT_INTERACTIVE
        async with self._prompt:
            if self._stopping:
                return DECLINED_ON_EXIT
            with self.output.hold():
                # Anything typed before the question was shown (a stray key, the answer
                # to an offer whose sender gave up) must not answer this one.
                flush_terminal_input()
                self._offer_event(session, offer, code)
                question = asyncio.ensure_future(self.ask(self.question(peer, offer, code)))
                self._questions.add(question)
                try:
                    accepted = await question
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if not (self._stopping and question.cancelled()
                            and task is not None and not task.cancelling()):
                        raise
                    return DECLINED_ON_EXIT  # Ctrl-C at the question: a decline
                finally:
                    self._questions.discard(question)
                    question.cancel()
        return None if accepted else DECLINED_BY_USER

    def question(self, peer: str, offer: IncomingOffer, code: str) -> Question:
        """What the prompt shows: sender, code, total, destination, every file flagged."""
        summary = [
            f"{printable(peer)} wants to send {count(offer_count(offer), 'file')}, "
            f"{format_size(offer.total)}; verification code {code}",
            f"  into {printable(self.download_dir)}",
        ]
        files = []
        for entry in offer.files:
            flags = []
            if is_hidden_name(entry.name):
                flags.append("hidden")
            if entry.name.lower().endswith(EXECUTABLE_SUFFIXES):
                flags.append("executable")
            if not self.options.overwrite:
                target = self.download_dir / entry.name
                if os.path.lexists(target):
                    renamed = numbered_name(target.name, 1)
                    flags.append(f"exists: saved as {printable(renamed)} or next free")
            elif os.path.lexists(self.download_dir / entry.name):
                flags.append("exists: will be replaced")
            files.append(describe_file(entry.name, format_size(entry.size), flags))
        return Question(summary=summary, files=files, total_files=offer_count(offer))

    async def shutdown(self) -> None:
        """Close every session (each peer gets a leave) and log out.

        An offer waiting for the person's answer is declined first (Ctrl-C at the
        question means no), and the listener waits briefly for that decline to reach
        the sender, which then reports a decline, not a broken transfer.
        """
        self._stopping = True
        if self._questions:
            for question in list(self._questions):
                question.cancel(INTERRUPTED)
            if self._transfers:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait(list(self._transfers), timeout=DECLINE_ON_EXIT_SECONDS)
        for task in list(self._transfers):
            task.cancel()
        for task in list(self._transfers):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for session in list(self._sessions):
            await session.close()
        if self.signaling is not None:
            await self.signaling.close()
