"""Names with invisible or bidi characters are refused by the server's name rule."""

from __future__ import annotations

import pytest

from rtcxfer.protocol.signaling import name_problem


@pytest.mark.parametrize("name", [
    "bob\u202e", "b\u200bob", "\u2066alice", "bo\u00adb", "bo\u2028b", "\u3164",
    "a\ufeffb",
])
def test_hidden_characters_are_refused(name: str) -> None:
    problem = name_problem(name)
    assert problem is not None
    assert "invisible or bidirectional" in problem


@pytest.mark.parametrize("name", ["bob", "Zoë", "李雷", "alice-2", "o'brien", "a b"])
def test_visible_names_still_pass(name: str) -> None:
    assert name_problem(name) is None
