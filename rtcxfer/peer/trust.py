"""Peers pinned on first use: the certificate fingerprint last seen for a name.

The store is ``$XDG_CONFIG_HOME/rtcxfer/known_peers.json`` (mode 0600), keyed
by (server, room, name): names are first-come on a server, so the same name
on another server, or in another room, is another person. Like SSH's
``StrictHostKeyChecking=accept-new``: the first completed transfer with a name
pins the fingerprint its peer presented; from then on a different fingerprint
for that name is refused (:class:`~rtcxfer.errors.IdentityChanged`, exit 9)
before any byte of a file moves, until ``rtcxfer trust forget NAME``.

Writers (a listener and a sender of the same user may finish at once) take an
exclusive ``flock`` on ``known_peers.lock`` and replace the file atomically.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rtcxfer.errors import IdentityChanged, RtcxferError
from rtcxfer.text import printable

STORE_FILE = "known_peers.json"
LOCK_FILE = "known_peers.lock"
NO_ROOM = ""  # the room of a server without rooms (or a client given none)
_HEX = re.compile(r"^[0-9A-Fa-f]{64}$")


@dataclass(frozen=True)
class Scope:
    """Where a name means one person: a server, and a room on it."""

    server: str
    room: str = NO_ROOM


@dataclass(frozen=True)
class Pin:
    server: str
    room: str
    name: str
    fingerprint: str
    added: str = ""


def normalise_server(url: str) -> str:
    """``WS://Host:9090/`` and ``ws://host:9090`` are the same server."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def scope_of(server: str, room: str | None = None) -> Scope:
    return Scope(normalise_server(server), room or NO_ROOM)


def normalise_fingerprint(text: str) -> str:
    """``aa:bb:…`` or ``aabb…`` (32 bytes) as upper-case hex with ``:``; ValueError else."""
    digits = text.strip().replace(":", "")
    if not _HEX.match(digits):
        raise ValueError("a fingerprint is 32 bytes of hex (SHA-256), with or without ':'")
    digits = digits.upper()
    return ":".join(digits[i:i + 2] for i in range(0, 64, 2))


class TrustStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / STORE_FILE

    # -- reading ------------------------------------------------------------

    def pins(self) -> list[Pin]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            raise RtcxferError(f"cannot read {self.path}: {error}") from error
        pins = []
        for entry in data.get("peers", []) if isinstance(data, dict) else []:
            if not isinstance(entry, dict):
                continue
            fields = {key: entry.get(key) for key in ("server", "room", "name", "fingerprint")}
            if all(isinstance(value, str) for value in fields.values()):
                added = entry.get("added")
                pins.append(Pin(**fields, added=added if isinstance(added, str) else ""))
        return pins

    def lookup(self, scope: Scope, name: str) -> Pin | None:
        for pin in self.pins():
            if (pin.server, pin.room, pin.name) == (scope.server, scope.room, name):
                return pin
        return None

    def check(self, scope: Scope, name: str, fingerprint: str, *, nothing: str) -> bool:
        """Raise IdentityChanged if ``name`` is pinned to another fingerprint.

        Returns whether ``name`` is pinned (to this fingerprint). ``nothing`` ends
        the message: "nothing was sent" or "nothing was received".
        """
        pin = self.lookup(scope, name)
        if pin is None:
            return False
        if pin.fingerprint == fingerprint:
            return True
        raise IdentityChanged(identity_changed_message(scope, name, pin.fingerprint,
                                                       fingerprint, nothing))

    # -- writing ------------------------------------------------------------

    def pin(self, scope: Scope, name: str, fingerprint: str) -> bool:
        """Pin ``name`` unless it is pinned already (to whatever); True if added."""
        with self._locked():
            pins = self.pins()
            if any((p.server, p.room, p.name) == (scope.server, scope.room, name)
                   for p in pins):
                return False
            self._write([*pins, Pin(scope.server, scope.room, name, fingerprint, _now())])
            return True

    def add(self, scope: Scope, name: str, fingerprint: str) -> Pin | None:
        """Pin ``name`` to ``fingerprint``, replacing any pin; return the replaced one."""
        with self._locked():
            pins = self.pins()
            key = (scope.server, scope.room, name)
            old = next((p for p in pins if (p.server, p.room, p.name) == key), None)
            kept = [p for p in pins if (p.server, p.room, p.name) != key]
            self._write([*kept, Pin(scope.server, scope.room, name, fingerprint, _now())])
            return old

    def forget(self, name: str, scope: Scope | None = None) -> list[Pin]:
        """Remove ``name``'s pins (only in ``scope`` if given); return what was removed."""
        with self._locked():
            pins = self.pins()
            gone = [p for p in pins if p.name == name and (
                scope is None or (p.server, p.room) == (scope.server, scope.room))]
            if gone:
                self._write([p for p in pins if p not in gone])
            return gone

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.directory / LOCK_FILE,
                         os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as error:
            raise RtcxferError(f"cannot lock {self.path}: {error.strerror or error}") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, pins: list[Pin]) -> None:
        data = {"version": 1, "peers": [asdict(pin) for pin in pins]}
        temporary = self.directory / f".{STORE_FILE}.{secrets.token_hex(4)}"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(data, file, indent=1)
                file.write("\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise RtcxferError(f"cannot write {self.path}: {error.strerror or error}") from error


def identity_changed_message(scope: Scope, name: str, pinned: str, presented: str,
                             nothing: str) -> str:
    shown = printable(name)
    where = scope.server + (f" room {printable(scope.room)}" if scope.room else "")
    return (
        f"identity of {shown} changed: on {where} {shown} was pinned to certificate\n"
        f"  {pinned}\n"
        f"but this connection presented\n"
        f"  {presented}\n"
        f"Someone else may be using the name {shown}, or the server put itself in the "
        f"middle; or {shown} has a new identity (new machine, deleted config). "
        f"{nothing.capitalize()}. Check the new fingerprint with {shown} another way, then "
        f"run `rtcxfer trust forget {shown} --server {scope.server}` (or `rtcxfer trust add "
        f"{shown} FINGERPRINT`) and try again."
    )


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).replace(microsecond=0).isoformat()
