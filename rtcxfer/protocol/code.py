"""Code mode's pure parts (docs/protocol.md, "Code mode"): codes, names, messages, MACs.

A code is ``<number>-<word>-<word>``: the number finds the sender on the
server (it logs in as ``rtcxfer-code-<number>``), the whole code is the SPAKE2
password. Both sides prove knowledge of the PAKE key by a MAC over the two DTLS
certificate fingerprints of the connection they actually have; nothing here
does I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from rtcxfer.protocol.codewords import WORDS

CODE_NAME_PREFIX = "rtcxfer-code-"  # every code-mode login name; clients hide them
RECEIVER_NAME_PREFIX = CODE_NAME_PREFIX + "r-"
CODE_SESSION_PREFIX = "code-"
MESSAGE_KEY = "rtcxfer-code"  # the member that marks a code-mode `candidate` payload
PAKE = "pake"
CONFIRM = "confirm"
WORDS_PER_CODE = 2
NUMBER_LIMITS = (999, 99_999)  # a sender tries small numbers first, then larger ones
SPAKE2_ID_SENDER = b"rtcxfer-code/1 sender"
SPAKE2_ID_RECEIVER = b"rtcxfer-code/1 receiver"
MAC_CONTEXT = "rtcxfer-code/1 confirm"
SENDER, RECEIVER = "sender", "receiver"
WRONG_OR_TAMPERED = "the code was wrong or the connection was tampered with"

_CODE = re.compile(r"^([1-9][0-9]{0,5})((?:-[a-z]+)+)$")
_WORD_INDEX = {word: index for index, word in enumerate(WORDS)}


class InvalidCode(ValueError):
    """Text that is not a code; ``str(error)`` says why."""


@dataclass(frozen=True)
class Code:
    number: int
    words: tuple[str, ...]

    def __str__(self) -> str:
        return "-".join((str(self.number), *self.words))

    @property
    def password(self) -> bytes:
        return str(self).encode("ascii")

    @property
    def sender_name(self) -> str:
        return sender_name(self.number)


def sender_name(number: int) -> str:
    return f"{CODE_NAME_PREFIX}{number}"


def receiver_name() -> str:
    return RECEIVER_NAME_PREFIX + secrets.token_hex(8)


def is_code_name(name: str) -> bool:
    return name.startswith(CODE_NAME_PREFIX)


def new_code(number_limit: int) -> Code:
    number = secrets.randbelow(number_limit) + 1
    return Code(number, tuple(secrets.choice(WORDS) for _ in range(WORDS_PER_CODE)))


def parse_code(text: str) -> Code:
    """``7-guitar-orbit`` (any case, surrounding spaces ignored) or InvalidCode."""
    match = _CODE.match(text.strip().lower())
    if match is None:
        raise InvalidCode("a code looks like 7-guitar-orbit: a number, then words, "
                          "joined by '-'")
    words = tuple(match.group(2)[1:].split("-"))
    if len(words) != WORDS_PER_CODE:
        raise InvalidCode(f"a code has {WORDS_PER_CODE} words after the number")
    unknown = [word for word in words if word not in _WORD_INDEX]
    if unknown:
        raise InvalidCode(f"{unknown[0]!r} is not one of the code words; check the spelling")
    return Code(int(match.group(1)), words)


def pake_message(message: bytes) -> dict[str, str]:
    return {MESSAGE_KEY: PAKE, "pake": message.hex()}


def confirm_message(mac: bytes) -> dict[str, str]:
    return {MESSAGE_KEY: CONFIRM, "mac": mac.hex()}


def read_message(payload: Any, kind: str) -> bytes | None:
    """The bytes of a code-mode payload of ``kind`` (``pake``/``confirm``), else None."""
    if not isinstance(payload, dict) or payload.get(MESSAGE_KEY) != kind:
        return None
    field = "pake" if kind == PAKE else "mac"
    value = payload.get(field)
    if not isinstance(value, str) or len(value) > 256:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def is_code_message(payload: Any) -> bool:
    return isinstance(payload, dict) and MESSAGE_KEY in payload


def confirmation(key: bytes, role: str, sender_fingerprint: str,
                 receiver_fingerprint: str) -> bytes:
    """HMAC-SHA256 under the PAKE key over the role and both certificate fingerprints."""
    material = f"{MAC_CONTEXT}|{role}|{sender_fingerprint}|{receiver_fingerprint}"
    return hmac.new(key, material.encode("ascii"), hashlib.sha256).digest()


def confirms(key: bytes, role: str, sender_fingerprint: str, receiver_fingerprint: str,
             mac: bytes) -> bool:
    expected = confirmation(key, role, sender_fingerprint, receiver_fingerprint)
    return hmac.compare_digest(expected, mac)
