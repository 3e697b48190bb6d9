"""Running the signaling server as a process: event loop, limits, GC, signals, TLS."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import signal
import ssl
import sys
import urllib.parse
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from rtcxfer.errors import RtcxferError
from rtcxfer.gctune import SERVER_THRESHOLDS, tune_garbage_collector
from rtcxfer.server.addresses import listening_urls
from rtcxfer.server.server import ServerConfig, SignalingServer

logger = logging.getLogger("rtcxfer.server")


class ServeError(RtcxferError):
    """The server cannot start: bad TLS files, address in use, ..."""


def load_tls(certfile: Path, keyfile: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as error:
        raise ServeError(f"cannot load TLS certificate {certfile}: {error}") from error
    return context


def raise_file_limit() -> int:
    """Raise the open-file limit to its hard maximum (one descriptor per client); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            return soft
    return soft


# Cyclic GC thresholds for the server process (rtcxfer.gctune): with thousands of
# connections a full collection walks millions of objects (a pause of a few hundred
# ms at 5,000 clients); with the defaults that happens every few seconds under load
# and sets the relay p99.
GC_THRESHOLDS = SERVER_THRESHOLDS


def run_on_fastest_loop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``main()`` on uvloop when it is installed, else on the default asyncio loop."""
    try:
        import uvloop
    except ImportError:
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


async def serve_until_signalled(
    config: ServerConfig, announce: Callable[[str, str], None]
) -> None:
    """Serve until SIGINT or SIGTERM, then close every connection (1001) and return.

    ``announce(ws_url, page_url)`` is called once the server listens.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server = SignalingServer(config)
    try:
        try:
            await server.start()
        except OSError as error:
            reason = error.strerror or str(error)
            raise ServeError(f"cannot listen on {config.host}:{config.port}: {reason}") from error
        announce(server.url, server.page_url)
        await stop.wait()
        logger.info("shutting down (%d online)", len(server.users))
    finally:
        await server.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def serve_main(config: ServerConfig) -> None:
    """``rtcxfer serve``: print the URLs, serve until a signal, exit 0."""

    def announce(ws_url: str, page_url: str) -> None:
        print(ws_url, flush=True)
        print(f"open {page_url} in a browser", flush=True)
        # A wildcard listener: every interface address, for people on other machines.
        port = int(ws_url.rsplit(":", 1)[1])
        tls = config.ssl_context is not None
        pages = [page_url]
        for url in listening_urls(config.host, port, tls=tls):
            if url != ws_url:
                print(url, flush=True)
                pages.append(f"{url.replace('ws', 'http', 1)}/")
                print(f"open {pages[-1]} in a browser", flush=True)
        if sys.stdout.isatty():
            print_qr_code(phone_url(pages, config.token), token=config.token is not None)

    tune_garbage_collector(GC_THRESHOLDS)
    limit = raise_file_limit()
    logger.debug("open file limit %d", limit)
    if limit < config.max_users + 64:
        logger.warning("open file limit %d is below --max-users %d", limit, config.max_users)
    run_on_fastest_loop(lambda: serve_until_signalled(config, announce))


def phone_url(pages: list[str], token: str | None) -> str:
    """The page address a phone on the LAN can open: the first that is not loopback
    (else the first), carrying the access token in its fragment (never sent to a
    server: the page reads it and remembers it)."""
    remote = [url for url in pages if not _is_loopback_url(url)]
    url = (remote or pages)[0]
    return url + "#token=" + urllib.parse.quote(token, safe="") if token else url


def _is_loopback_url(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def qr_code_text(url: str) -> str:
    """``url`` as a QR code drawn with block characters (two modules per line)."""
    import io

    import segno

    drawing = io.StringIO()
    segno.make(url, error="m").terminal(out=drawing, compact=True)
    return drawing.getvalue()


def print_qr_code(url: str, *, token: bool) -> None:
    """On a terminal: the page's address as a QR code, for a phone to scan."""
    print(f"scan to open {url.split('#', 1)[0]} on a phone"
          + (" (the code carries the access token)" if token else "") + ":", flush=True)
    print(qr_code_text(url), end="", flush=True)
