"""Run aiortc's packet-handling coroutines inline, without a task per packet.

aiortc's SCTP code is written as coroutines, but on the data path they never actually
suspend: sending a datagram is synchronous underneath. Wrapping each packet in a task
or pushing it through an ``asyncio.Queue`` costs more than handling it. These helpers
step a coroutine right away and, only in the rare case where it does suspend, resume it
from the awaited future's callback, exactly as an asyncio task would; an ``InlineRunner``
queues later coroutines behind a suspended one so packets are still handled in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)

PacketCoroutine = Coroutine[Any, Any, None]


class InlineRunner:
    """Runs coroutines one after the other, inline when they do not suspend."""

    def __init__(self, on_error: Callable[[BaseException], None]) -> None:
        self._on_error = on_error
        self._waiting: deque[PacketCoroutine] = deque()
        self._busy = False
        self._closed = False

    def run(self, coroutine: PacketCoroutine) -> None:
        if self._closed:
            coroutine.close()
        elif self._busy:
            # Also when called from inside a coroutine being stepped: it runs next.
            self._waiting.append(coroutine)
        else:
            self._busy = True
            self._step(coroutine)

    def close(self) -> None:
        """Drop the coroutines still waiting (the transport under them is gone)."""
        self._closed = True
        while self._waiting:
            self._waiting.popleft().close()

    def _step(self, coroutine: PacketCoroutine) -> None:
        while True:
            try:
                awaited = coroutine.send(None)
            except StopIteration:
                if not self._waiting or self._closed:
                    self._busy = False
                    return
                coroutine = self._waiting.popleft()
                continue
            except BaseException as error:
                self._busy = False
                self._on_error(error)
                return
            self._suspend(coroutine, awaited)
            return

    def _suspend(self, coroutine: PacketCoroutine, awaited: Any) -> None:
        if awaited is None:
            # A bare yield (asyncio.sleep(0)): resume on the next loop iteration.
            asyncio.get_running_loop().call_soon(self._step, coroutine)
            return
        # The awaited future's __await__ sets this flag for its task; we are that task.
        awaited._asyncio_future_blocking = False
        awaited.add_done_callback(lambda _future: self._step(coroutine))


def log_error(error: BaseException) -> None:
    if not isinstance(error, ConnectionError):
        logger.error("packet handling failed", exc_info=error)


def run_inline(coroutine: PacketCoroutine) -> None:
    """Run one independent coroutine inline (suspending only if it must)."""
    InlineRunner(log_error).run(coroutine)
