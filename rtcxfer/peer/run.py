"""Run one peer command's coroutine: signals, JSON error events, exit codes.

SIGINT and SIGTERM cancel the command's task, so every ``finally`` runs: the
peer connections close, each peer gets a ``leave``, a receiver keeps its
``.part`` files, and nothing prints a traceback.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

from rtcxfer.errors import ExitCode, Interrupted, RtcxferError
from rtcxfer.gctune import PEER_THRESHOLDS, tune_garbage_collector
from rtcxfer.progress import Output

T = TypeVar("T")


def run_peer_command(
    command: Callable[[], Awaitable[T]],
    output: Output,
    *,
    exit_codes: dict[signal.Signals, ExitCode] | None = None,
) -> T | ExitCode:
    """Run ``command()``; a handled signal ends it with its exit code from ``exit_codes``.

    Without an entry a signal means :class:`~rtcxfer.errors.Interrupted` (130).
    An :class:`RtcxferError` is also reported as an ``error`` event with --json and
    re-raised for the CLI to print.
    """
    exit_codes = exit_codes or {}
    tune_garbage_collector(PEER_THRESHOLDS)

    async def main() -> T | ExitCode:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        received: list[signal.Signals] = []

        def on_signal(signum: signal.Signals) -> None:
            received.append(signum)
            task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            return await command()
        except asyncio.CancelledError:
            if not received:
                raise
            code = exit_codes.get(received[0], ExitCode.INTERRUPTED)
            if code is ExitCode.INTERRUPTED:
                raise Interrupted("interrupted") from None
            return code
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    try:
        return asyncio.run(main())
    except RtcxferError as error:
        output.event("error", message=str(error), exit_code=int(error.exit_code))
        raise
