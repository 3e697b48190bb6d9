"""The signaling server's address as people type it, made into a WebSocket URL.

People copy the page's address from the browser (``http://host:9090/``), type a
bare ``host:port``, or give the ``ws://``/``wss://`` URL that ``rtcxfer serve``
prints. All of them mean the same server: ``http`` is ``ws``, ``https`` is
``wss``, no scheme is ``ws``. The page's own paths (``/``, ``/r/ROOM``,
``/index.html``) are dropped: the WebSocket endpoint is the server's root.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
TLS_HINT = (
    "if the server uses a certificate from a private CA, point SSL_CERT_FILE at that "
    "CA's PEM file (SSL_CERT_FILE=/path/to/ca.pem rtcxfer ...)"
)


class BadServerUrl(ValueError):
    """A --server value that names no usable signaling server."""


def normalise_server_url(text: str) -> str:
    """``ws://`` or ``wss://`` URL of the server ``text`` names; :class:`BadServerUrl` if none."""
    value = text.strip()
    if not value:
        raise BadServerUrl("the server address is empty")
    if "://" not in value:
        value = "ws://" + value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as error:
        raise BadServerUrl(f"{text!r} is not a server address ({error})") from None
    scheme = SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise BadServerUrl(
            f"{text!r}: the scheme {parts.scheme!r} is not one of ws://, wss://, http://, https://"
        )
    if not parts.hostname:
        raise BadServerUrl(f"{text!r} names no host")
    if parts.username is not None or parts.password is not None:
        raise BadServerUrl(f"{text!r}: put no user or password in the server address "
                           "(use --token)")
    path = parts.path
    if path in ("", "/", "/index.html") or path.startswith("/r/"):
        path = ""
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((scheme, netloc, path, parts.query, ""))
