"""The plain HTTP side of the signaling port: the browser page, ``/healthz``, Origin checks.

websockets hands every request to ``process_request`` before the opening
handshake; requests that are not WebSocket upgrades are answered here and the
connection is closed, so one port serves both the page and its signaling.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from websockets.datastructures import Headers, MultipleValuesError
from websockets.http11 import Request, Response

logger = logging.getLogger("rtcxfer.server")

HEALTH_PATH = "/healthz"
ANY_ORIGIN = "*"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self' ws: wss:; media-src blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-cache"),
)
CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".wasm": "application/wasm",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
INDEX_FILE = "index.html"


def make_response(
    status: http.HTTPStatus,
    body: bytes,
    content_type: str,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> Response:
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            *SECURITY_HEADERS,
            *extra_headers,
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def no_content_response() -> Response:
    """``204 No Content``: a navigation answered so stays on the page it came from."""
    headers = Headers([("Date", email.utils.formatdate(usegmt=True)), ("Connection", "close"),
                       *SECURITY_HEADERS])
    return Response(http.HTTPStatus.NO_CONTENT.value, http.HTTPStatus.NO_CONTENT.phrase,
                    headers, b"")


def text_response(status: http.HTTPStatus, text: str) -> Response:
    return make_response(status, f"{text}\n".encode(), "text/plain; charset=utf-8")


def json_response(status: http.HTTPStatus, data: dict[str, object]) -> Response:
    return make_response(status, json.dumps(data).encode(), "application/json")


def single_header(headers: Headers, name: str) -> str | None:
    """The value of a header that must appear at most once; ValueError if repeated."""
    try:
        return headers.get(name)
    except MultipleValuesError:
        raise ValueError(f"more than one {name} header") from None


def is_websocket_upgrade(request: Request) -> bool:
    upgrade = ",".join(request.headers.get_all("Upgrade"))
    return "websocket" in upgrade.lower()


class OriginPolicy:
    """Which ``Origin`` a WebSocket handshake may carry (defence against cross-site hijacking).

    No ``Origin`` (a CLI or script): accepted. Otherwise the origin must be
    the server's own as a browser sees it (scheme + ``Host`` header) or one of
    ``allowed`` (``"*"`` allows any).
    """

    def __init__(self, allowed: Iterable[str], *, tls: bool) -> None:
        self.allowed = frozenset(origin.rstrip("/").lower() for origin in allowed)
        self.scheme = "https" if tls else "http"

    def allows(self, origin: str | None, host: str | None) -> bool:
        if origin is None or ANY_ORIGIN in self.allowed:
            return True
        origin = origin.lower()
        if host is not None and origin == f"{self.scheme}://{host.lower()}":
            return True
        return origin in self.allowed


class StaticFiles:
    """Files directly under ``root`` (subfolders allowed), never anything outside it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def locate(self, target: str) -> Path | None:
        """The file a request target names, or ``None`` if it names none we may serve."""
        path = unquote(urlsplit(target).path)
        if "\x00" in path or "\\" in path:
            return None
        parts = [part for part in path.split("/") if part]
        # Dot-files stay private, and "." / ".." never take part in a lookup.
        if any(part.startswith(".") for part in parts):
            return None
        candidate = self.root.joinpath(*parts)
        try:
            if candidate.is_dir():
                candidate = candidate / INDEX_FILE
            resolved = candidate.resolve()
            if not resolved.is_relative_to(self.root) or not resolved.is_file():
                return None
        except (OSError, ValueError):
            return None
        return resolved

    def read(self, target: str) -> tuple[str, bytes] | None:
        """``(content type, body)`` of the file ``target`` names, or ``None``."""
        path = self.locate(target)
        if path is None:
            return None
        try:
            body = path.read_bytes()
        except OSError as error:
            logger.warning("cannot read static file %s: %s", path, error)
            return None
        return CONTENT_TYPES.get(path.suffix.lower(), DEFAULT_CONTENT_TYPE), body

    async def respond(self, request: Request) -> Response:
        found = await asyncio.to_thread(self.read, request.path)
        if found is None:
            return text_response(http.HTTPStatus.NOT_FOUND, "not found")
        content_type, body = found
        return make_response(http.HTTPStatus.OK, body, content_type)
