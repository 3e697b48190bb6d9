"""The cyclic garbage collector, tuned for long-lived processes with many objects.

A full collection walks every tracked object. The server holds thousands of
connections; a listener receiving a folder of 100,000 files holds a few objects per
file. With the default thresholds full collections come every few seconds and cost
each time in proportion to all of that, for little garbage: both processes move the
objects made at start-up (imports) out of the collector's way and space collections
out. Garbage with reference cycles is still collected.
"""

from __future__ import annotations

import gc

# The server: rarer young collections and rarer full ones still (docs/server.md).
SERVER_THRESHOLDS = (100_000, 50, 20)
# send / listen: young collections ten times rarer than the default 700.
PEER_THRESHOLDS = (10_000, 20, 20)


_tuned = False


def tune_garbage_collector(thresholds: tuple[int, int, int]) -> None:
    """Freeze what exists now (start-up objects) and set ``thresholds``; once per
    process (a test process that runs many commands freezes only once)."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
