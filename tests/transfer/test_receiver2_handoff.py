"""The hand-off of verified files from the receiver's disk thread to its committer."""

from __future__ import annotations

import threading
from typing import Any, cast

from rtcxfer.transfer.receiver2 import _Handoff, _Ready


def items(first: int, count: int) -> list[_Ready]:
    # The committer only moves them along; plain numbers stand in for part files.
    return cast(list[_Ready], list(range(first, first + count)))


def test_bulk_puts_wait_for_room_and_keep_order() -> None:
    handoff = _Handoff(limit=8)
    most_waiting: list[int] = []
    taken: list[Any] = []

    def producer() -> None:
        for first in range(0, 100, 25):  # batches of 25, each bigger than the limit
            handoff.put_many(items(first, 25))
        handoff.close()

    thread = threading.Thread(target=producer)
    thread.start()
    while (group := handoff.take(5, linger=0.001)) is not None:
        most_waiting.append(len(handoff.items))
        assert 1 <= len(group) <= 5
        taken.extend(group)
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert taken == list(range(100))
    assert max(most_waiting) <= 8


def test_close_hands_over_what_is_left_then_none() -> None:
    handoff = _Handoff(limit=4)
    handoff.put_many(items(0, 3))
    handoff.close()
    assert handoff.take(10, linger=5.0) == [0, 1, 2]  # closed: no lingering
    assert handoff.take(10, linger=5.0) is None


def test_take_gathers_a_group_within_the_linger() -> None:
    handoff = _Handoff(limit=64)
    handoff.put_many(items(0, 2))
    later = threading.Timer(0.01, handoff.put_many, args=(items(2, 3),))
    later.start()
    group = handoff.take(5, linger=5.0)
    later.join()
    assert group == [0, 1, 2, 3, 4]  # filled to `most` before the linger ran out
