"""The accept question counts every file of the transfer, not only those listed so far."""

from __future__ import annotations

from rtcxfer.peer.prompt import SHOWN_FILES, Question


def test_a_whole_list_shows_ten_then_and_n_more() -> None:
    question = Question(["alice wants to send 12 files"], [f"f{i}" for i in range(12)])
    text = question.text()
    assert text.count("\n  f") == SHOWN_FILES
    assert "… and 2 more (answer ? to list them all)" in text
    assert question.text(every_file=True).count("\n  f") == 12


def test_an_rtcxfer2_offer_counts_the_batches_still_to_come() -> None:
    question = Question(["bob wants to send 500 files"], [f"f{i}" for i in range(40)],
                        total_files=500)
    assert "… and 490 more (answer ? to list the first batch)" in question.text()
    short = Question(["bob wants to send 3 files"], ["a"], total_files=3)
    assert "… and 2 more, listed by the sender as the transfer goes" in short.text()
