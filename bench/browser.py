"""Browser <-> CLI throughput, against CLI <-> CLI measured in the same run.

One ``rtcxfer serve`` on loopback, one headless Chromium (Debian's
/usr/bin/chromium through playwright) logged in as ``web``, and one
``rtcxfer listen --yes`` logged in as ``cli-in``. Each round moves the same
N MiB file of random bytes three ways, interleaved so that the load of a shared
machine hits all alike:

- ``cli->cli``: ``rtcxfer send cli-in FILE`` (the baseline);
- ``cli->browser``: ``rtcxfer send web FILE``, the page accepts;
- ``browser->cli``: the page sends FILE to ``cli-in``;
- ``browser->browser``: the page sends FILE to a second page, ``web2``: what
  Chromium's own data channel does on this machine.

Every CLI figure is the CLI's own ``summary`` event (``--json``): the bytes over
the seconds from ``hello`` to the last ``ack`` on that side, so connection set-up
is not counted. browser->browser has no CLI: it is timed from the receiving
page's Accept (the moment ``hello`` is answered) to the sending page's success.
The table shows medians and the ratio to the cli->cli median.

    python bench/browser.py                  # 64 MiB, 3 rounds
    python bench/browser.py --size 16 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
MIB = 1024 * 1024
RUN_TIMEOUT_S = 600.0
DIRECTIONS = ("cli->cli", "cli->browser", "browser->cli", "browser->browser")
PAGE_NAME = "web"
SECOND_PAGE_NAME = "web2"
LISTENER_NAME = "cli-in"


class BenchError(RuntimeError):
    """A run that did not complete: the figures would be meaningless."""


class Process:
    """A ``python -m rtcxfer`` subprocess whose stdout lines are collected."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "rtcxfer", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self.changed = threading.Condition()
        for stream, sink in ((self.popen.stdout, self.lines), (self.popen.stderr, self.stderr)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _pump(self, stream: IO[str], sink: list[str]) -> None:
        for line in stream:
            with self.changed:
                sink.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], start: int = 0) -> str:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        with self.changed:
            while True:
                for line in self.lines[start:]:
                    if predicate(line):
                        return line
                start = len(self.lines)
                if self.popen.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(
                        f"rtcxfer {' '.join(self.args)} gave no expected line\n"
                        + "\n".join(self.stderr[-20:])
                    )
                self.changed.wait(0.2)

    def event(self, name: str, start: int = 0, **match: Any) -> dict[str, Any]:
        def wanted(line: str) -> bool:
            try:
                parsed = json.loads(line)
            except ValueError:
                return False
            return parsed.get("event") == name and all(
                parsed.get(key) == value for key, value in match.items()
            )

        parsed: dict[str, Any] = json.loads(self.wait_for(wanted, start))
        return parsed

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


def summary_rate(summary: dict[str, Any], size: int) -> float:
    if not summary.get("ok") or summary.get("bytes") != size:
        raise BenchError(f"transfer did not complete: {summary}")
    return size / MIB / float(summary["seconds"])


def cli_send(server: str, peer: str, path: Path, size: int) -> float:
    sender = Process(["send", "--server", server, "--name", "cli-out", "--json", peer, str(path)])
    try:
        summary = sender.event("summary")
        if sender.popen.wait(RUN_TIMEOUT_S) != 0:
            raise BenchError("rtcxfer send failed:\n" + "\n".join(sender.stderr[-20:]))
        return summary_rate(summary, size)
    finally:
        sender.stop()


def cli_to_browser(server: str, page: Page, path: Path, size: int) -> float:
    accepted = threading.Event()
    rate: list[float] = []
    errors: list[BaseException] = []

    def run_sender() -> None:
        try:
            rate.append(cli_send(server, PAGE_NAME, path, size))
        except BaseException as error:  # reported from the main thread
            errors.append(error)
        finally:
            accepted.set()

    thread = threading.Thread(target=run_sender)
    thread.start()
    page.wait_for_selector("#offer-dialog[open]", timeout=RUN_TIMEOUT_S * 1000)
    page.click("#accept-button")
    thread.join(RUN_TIMEOUT_S)
    if errors:
        raise errors[0]
    if not rate:
        raise BenchError("rtcxfer send to the page did not finish")
    forget_received(page)
    return rate[0]


def forget_received(page: Page) -> None:
    """Received blobs stay in the page until revoked: drop them between rounds."""
    page.evaluate(
        """() => {
             for (const link of document.querySelectorAll("#received-list a")) {
               URL.revokeObjectURL(link.href);
             }
             document.querySelector("#received-list").replaceChildren();
           }"""
    )


def browser_to_cli(listener: Process, page: Page, path: Path, size: int) -> float:
    start = len(listener.lines)
    page.set_input_files("#file-input", path)
    page.click("#send-button")
    summary = listener.event("summary", start, peer=PAGE_NAME)
    wait_for_page_status(page)
    return summary_rate(summary, size)


def browser_to_browser(sender: Page, receiver: Page, path: Path, size: int) -> float:
    sender.click(f"#user-list button.user[data-name='{SECOND_PAGE_NAME}']")
    sender.set_input_files("#file-input", path)
    sender.click("#send-button")
    receiver.wait_for_selector("#offer-dialog[open]", timeout=RUN_TIMEOUT_S * 1000)
    started = time.monotonic()
    receiver.click("#accept-button")
    wait_for_page_status(sender)
    seconds = time.monotonic() - started
    forget_received(receiver)
    sender.click(f"#user-list button.user[data-name='{LISTENER_NAME}']")
    return size / MIB / seconds


def wait_for_page_status(page: Page) -> None:
    page.wait_for_function(
        "() => document.querySelector('#status').dataset.kind !== 'info'",
        timeout=RUN_TIMEOUT_S * 1000,
        polling=50,
    )
    kind = page.get_attribute("#status", "data-kind")
    if kind != "ok":
        raise BenchError(f"page send failed: {page.text_content('#status')}")


def log_in(page: Page, url: str, name: str) -> None:
    page.goto(url)
    page.fill("#login-name", name)
    page.click("#login-button")
    page.wait_for_selector("body[data-logged-in]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="MiB per transfer (default 64)")
    parser.add_argument("--runs", type=int, default=3, help="rounds (default 3)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    size = args.size * MIB
    results: dict[str, list[float]] = {direction: [] for direction in DIRECTIONS}

    with tempfile.TemporaryDirectory(prefix="rtcxfer-bench-browser-") as scratch:
        root = Path(scratch)
        payload = root / "payload.bin"
        with payload.open("wb") as out:
            for _ in range(args.size):
                out.write(os.urandom(MIB))
        inbox = root / "inbox"
        inbox.mkdir()
        server = Process(["serve", "--host", "127.0.0.1", "--port", "0"])
        listener: Process | None = None
        try:
            ws_url = server.wait_for(lambda line: line.startswith("ws://")).split()[0]
            http_url = "http" + ws_url.removeprefix("ws").rstrip("/") + "/"
            listener = Process(["listen", "--server", ws_url, "--name", LISTENER_NAME, "--json",
                                "--yes", "--overwrite", "--dir", str(inbox)])
            listener.event("connected")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                )
                try:
                    page = browser.new_page()
                    log_in(page, http_url, PAGE_NAME)
                    second_page = browser.new_context().new_page()
                    log_in(second_page, http_url, SECOND_PAGE_NAME)
                    page.click(f"#user-list button.user[data-name='{LISTENER_NAME}']")
                    for run in range(1, args.runs + 1):
                        results["cli->cli"].append(cli_send(ws_url, LISTENER_NAME, payload, size))
                        results["cli->browser"].append(
                            cli_to_browser(ws_url, page, payload, size))
                        results["browser->cli"].append(
                            browser_to_cli(listener, page, payload, size))
                        results["browser->browser"].append(
                            browser_to_browser(page, second_page, payload, size))
                        figures = ", ".join(f"{d} {results[d][-1]:.1f}" for d in DIRECTIONS)
                        print(f"round {run}/{args.runs}: {figures} MiB/s", flush=True)
                finally:
                    browser.close()
        finally:
            if listener is not None:
                listener.stop()
            server.stop()

    baseline = statistics.median(results["cli->cli"])
    print(f"\n{args.size} MiB per transfer, {args.runs} rounds, medians (MiB/s):")
    print(f"{'direction':<18}{'median':>10}{'vs cli->cli':>14}   runs")
    for direction in DIRECTIONS:
        median = statistics.median(results[direction])
        runs = " ".join(f"{value:.1f}" for value in results[direction])
        print(f"{direction:<18}{median:>10.1f}{median / baseline:>13.2f}x   {runs}")


if __name__ == "__main__":
    main()
