"""Helpers of the browser tests: a logged-in page as a user, and who opens them.

Every test gets its own ``rtcxfer serve`` on a loopback port and opens the page
from it, so the page's WebSocket goes to its own origin (Chromium blocks a
page's WebSocket to 127.0.0.1 from any other origin). One browser process is
shared by the module; each simulated user is a fresh browser context, i.e. a
fresh profile with its own localStorage.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page
from support import CliProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Chromium otherwise hides host candidates behind mDNS .local names that aiortc
# can only resolve with multicast; the CLI then connects only through the
# peer-reflexive candidates the browser's checks reveal (docs/browser.md).
SHOW_LOCAL_IPS = "--disable-features=WebRtcHideLocalIpsWithMdns"
# Generous: the machine is small and shared; these bound waits, they measure nothing.
UI_TIMEOUT_MS = 60_000


@dataclass
class BrowserPeer:
    """One logged-in page, with every console error and page exception it raised."""

    page: Page
    name: str
    problems: list[str] = field(default_factory=list)

    def status(self) -> str:
        return self.page.text_content("#status") or ""

    def wait_for_status(self, kind: str) -> str:
        """Wait until the status line has ``kind`` (ok, warn, error); return its text."""
        self.page.wait_for_function(
            "kind => document.querySelector('#status').dataset.kind === kind",
            arg=kind,
            timeout=UI_TIMEOUT_MS,
        )
        return self.status()

    def wait_for_user(self, name: str, *, online: bool = True) -> None:
        selector = f"#user-list button.user[data-name={css_string(name)}]"
        self.page.wait_for_selector(selector, state="attached" if online else "detached",
                                    timeout=UI_TIMEOUT_MS)

    def pick_user(self, name: str) -> None:
        self.wait_for_user(name)
        self.page.click(f"#user-list button.user[data-name={css_string(name)}]")

    def choose_files(self, files: list[tuple[str, bytes]]) -> None:
        self.page.set_input_files(
            "#file-input",
            files=[
                {"name": name, "mimeType": "application/octet-stream", "buffer": data}
                for name, data in files
            ],
        )

    def wait_for_offer(self) -> str:
        """Wait for the incoming-offer dialog; return the verification code it shows."""
        self.page.wait_for_selector("#offer-dialog[open]", timeout=UI_TIMEOUT_MS)
        return self.page.text_content("#offer-code") or ""

    def download(self, name: str, into: Path) -> Path:
        """Click the download link of received file ``name``; return where it landed."""
        link = f"#received-list li[data-name={css_string(name)}] a[download]"
        self.page.wait_for_selector(link, timeout=UI_TIMEOUT_MS)
        with self.page.expect_download(timeout=UI_TIMEOUT_MS) as pending:
            self.page.click(link)
        download = pending.value
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        download.save_as(target)
        return target


def css_string(text: str) -> str:
    """``text`` as a quoted CSS string, for attribute selectors."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Server:
    ws_url: str
    http_url: str
    process: CliProcess


class PeerFactory:
    """Opens pages as fresh users; closes every context it opened."""

    def __init__(self, browser: Browser, server: Server) -> None:
        self.browser = browser
        self.server = server
        self.contexts: list[BrowserContext] = []
        self.peers: list[BrowserPeer] = []

    def open(self, name: str | None = None, *,
             viewport: tuple[int, int] | None = None) -> BrowserPeer:
        """A page on the server's own origin, logged in as ``name`` when given.

        ``viewport`` (width, height in CSS pixels) emulates a phone's screen.
        """
        if viewport is None:
            context = self.browser.new_context(accept_downloads=True)
        else:
            width, height = viewport
            context = self.browser.new_context(
                accept_downloads=True, viewport={"width": width, "height": height},
                is_mobile=True, has_touch=True, device_scale_factor=2)
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        peer = BrowserPeer(page=page, name=name or "")
        page.on("console", lambda message: _record_console(peer, message))
        page.on("pageerror", lambda error: peer.problems.append(f"page error: {error}"))
        page.goto(self.server.http_url)
        page.wait_for_selector("body[data-ready]")
        self.peers.append(peer)
        if name is not None:
            self.log_in(peer, name)
        return peer

    def log_in(self, peer: BrowserPeer, name: str) -> None:
        peer.name = name
        peer.page.fill("#login-name", name)
        peer.page.click("#login-button")
        peer.page.wait_for_selector("body[data-logged-in]")

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def _record_console(peer: BrowserPeer, message: ConsoleMessage) -> None:
    if message.type == "error":
        peer.problems.append(f"console error: {message.text}")


