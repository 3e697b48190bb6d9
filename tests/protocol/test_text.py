"""rtcxfer.text: the one escaping rule for everything shown that came from outside."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rtcxfer.text import invisible_problem, is_hidden, printable

ATTACKS = [
    "\x1b[2J\x1b[H",  # clear screen
    "\x1b]0;owned\x07",  # window title
    "\x1b]52;c;cm0gLXJmIH4=\x07",  # clipboard write (OSC 52)
    "\x1b[32m✔ verified\x1b[0m",  # fake green line
    "\x9b2J",  # CSI as a C1 control
    "line\x85next\u2028sep\u2029para",
    "photo\u202egnp.exe",
    "zero\u200bwidth\ufeff",
    "del\x7f",
]


def test_attacks_are_escaped() -> None:
    for attack in ATTACKS:
        shown = printable(attack)
        assert not any(is_hidden(char) for char in shown), shown
        assert "\x1b" not in shown and "\x9b" not in shown


def test_plain_text_is_unchanged() -> None:
    for text in ["report.pdf", "Zoë/ファイル.txt", "a b\\c", "emoji 🎉"]:
        assert printable(text) == text


def test_escapes_are_readable() -> None:
    assert printable("a\x1bb") == "a\\x1bb"
    assert printable("x\u202ey") == "x\\u202ey"
    assert printable("tab\there\n") == "tab\\there\\n"


def test_limit() -> None:
    assert printable("x" * 50, limit=10) == "x" * 9 + "…"


@given(st.text())
def test_never_leaves_a_hidden_character(text: str) -> None:
    assert not any(is_hidden(char) for char in printable(text))


def test_names_with_hidden_characters_are_refused() -> None:
    assert invisible_problem("photo\u202egnp.exe") is not None
    assert "bidirectional" in (invisible_problem("a\u202eb") or "")
    assert invisible_problem("a\u200bb") is not None
    assert invisible_problem("a\u3164b") is not None
    assert invisible_problem("a\x00b") is not None
    assert invisible_problem("alice") is None
    assert invisible_problem("Zoë ファイル") is None


@given(st.text(alphabet=st.characters(codec=None), max_size=40))
def test_the_fast_shortcut_agrees_with_the_per_character_rule(text: str) -> None:
    # printable() and invisible_problem() skip the per-character walk for text that
    # str.isprintable() vouches for; the answer must be the one the walk gives.
    hidden = any(is_hidden(char) for char in text)
    assert (invisible_problem(text) is not None) == hidden
    assert (printable(text) != text) == hidden


def test_the_fast_shortcut_still_sees_blank_and_space_characters() -> None:
    for blank in "\u115f\u1160\u3164\uffa0\u2800":
        assert invisible_problem(f"a{blank}b") is not None
        assert printable(f"a{blank}b") != f"a{blank}b"
    for space in "\u00a0\u3000\u2009":  # visible spaces: not hidden, not printable()
        assert invisible_problem(f"a{space}b") is None
        assert printable(f"a{space}b") == f"a{space}b"
