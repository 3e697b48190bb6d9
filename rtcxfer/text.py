"""Text that came from outside (a peer, a server, a file name), made safe to show.

One rule for everything rtcxfer prints or logs: a character that can move the
cursor, change the terminal's state, reorder what is displayed or hide itself is
shown as an escape (``\\x1b``, ``\\u202e``) instead of being written raw. That
covers C0 and C1 control characters and DEL (escape sequences, OSC 52 clipboard
writes, window titles, CSI via U+009B), line and paragraph separators (U+0085,
U+2028, U+2029), bidirectional controls (``photo\\u202egnp.exe``), zero-width
and other invisible format characters, and unpaired surrogates.

``invisible_problem`` is the matching *refusal* rule for names: the server
refuses user names, and a receiver refuses file names, that contain any of
these characters.
"""

from __future__ import annotations

import unicodedata

# Unicode general categories that are never visible text: controls (Cc), format
# characters (Cf: bidi controls, zero-width joiners/spaces, BOM, ...), line and
# paragraph separators (Zl, Zp), surrogates (Cs), private use (Co) and unassigned
# code points (Cn), whose rendering a terminal cannot be relied on for.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})

# Visible in most fonts yet blank: they make two different names look the same.
_BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")

_SHORT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _plainly_visible(text: str) -> bool:
    """A fast, exact shortcut: True only when no character of ``text`` is hidden.

    ``str.isprintable`` is False for every character of the hidden categories (and
    for the non-ASCII spaces, which are not hidden: those take the slow path), so a
    printable text can only hide one of the blank characters.
    """
    return text.isprintable() and (text.isascii() or _BLANK_CHARACTERS.isdisjoint(text))


def is_hidden(char: str) -> bool:
    """True for a character that must never reach a terminal raw (see module doc)."""
    return unicodedata.category(char) in _HIDDEN_CATEGORIES or char in _BLANK_CHARACTERS


def _escape(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: object, *, limit: int | None = None) -> str:
    """``text`` with every hidden character escaped, cut to ``limit`` characters.

    Use it for everything that came from outside before it is printed or logged.
    Plain text passes unchanged; the result never contains a hidden character.
    """
    value = text if isinstance(text, str) else str(text)
    if limit is not None and len(value) > limit:
        value = value[: max(0, limit - 1)] + "…"
    if _plainly_visible(value) or all(not is_hidden(char) for char in value):
        return value
    return "".join(_escape(char) if is_hidden(char) else char for char in value)


def invisible_problem(name: str) -> str | None:
    """Why ``name`` may not be used as a user or file name, or ``None``.

    Refused: control characters, bidirectional controls, zero-width and other
    invisible or blank characters, line/paragraph separators, surrogates.
    """
    if _plainly_visible(name):
        return None
    for char in name:
        if is_hidden(char):
            category = unicodedata.category(char)
            if category == "Cc":
                what = "a control character"
            elif category == "Cs":
                what = "an unpaired surrogate"
            elif unicodedata.bidirectional(char) in {"LRE", "RLE", "LRO", "RLO", "PDF",
                                                      "LRI", "RLI", "FSI", "PDI"} \
                    or char in "\u200e\u200f\u061c":
                what = "a bidirectional control character"
            else:
                what = "an invisible character"
            return f"contains {what} ({_escape(char)})"
    return None
