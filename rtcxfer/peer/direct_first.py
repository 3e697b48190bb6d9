"""Prefer a direct path to a relayed one when both work.

aioice nominates aggressively: the controlling agent puts USE-CANDIDATE on every
check, and the first pair whose check succeeds carries the connection. Relay
pairs have the lowest priority and are checked last, but only 20 ms later; a
direct path through two NATs needs both sides' first checks to open the
mappings (the first ones are dropped) and so often answers later than the relay.
Two peers behind ordinary home NATs would then relay through TURN for nothing.

:func:`install` makes every aioice connection hold a check on a pair with a
``relay`` candidate (either side) back until the direct pairs had
:data:`RELAY_HOLDBACK_SECONDS` to answer, or all failed, or one succeeded.
Relay-only connections have no direct pair and are not held. A held pair counts
as in progress: aioice neither starts it twice nor declares ICE failed meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import aioice.ice
from aioice.ice import CandidatePair

RELAY_HOLDBACK_SECONDS = 2.0
POLL_SECONDS = 0.05

_installed = False


def involves_relay(pair: CandidatePair) -> bool:
    local = getattr(pair.protocol, "local_candidate", None)
    return pair.remote_candidate.type == "relay" or (
        local is not None and local.type == "relay")


def _direct_pending(connection: aioice.ice.Connection) -> bool:
    """Whether some direct pair may still answer (none succeeded, not all failed)."""
    direct = [pair for pair in connection._check_list if not involves_relay(pair)]
    if any(pair.state == CandidatePair.State.SUCCEEDED for pair in direct):
        return False
    return any(pair.state != CandidatePair.State.FAILED for pair in direct)


def _holding_relay_back(check_start: Any) -> Any:
    @functools.wraps(check_start)
    async def wrapper(self: aioice.ice.Connection, pair: CandidatePair) -> None:
        if involves_relay(pair) and _direct_pending(self):
            loop = asyncio.get_running_loop()
            started = getattr(self, "_rtcxfer_checks_started", None)
            if started is None:
                started = self._rtcxfer_checks_started = loop.time()  # type: ignore[attr-defined]
            self.check_state(pair, CandidatePair.State.IN_PROGRESS)
            deadline = started + RELAY_HOLDBACK_SECONDS
            # Polled (aioice has no event for a pair's state), and bounded.
            for _ in range(round(RELAY_HOLDBACK_SECONDS / POLL_SECONDS) + 1):
                if loop.time() >= deadline or not _direct_pending(self):
                    break
                await asyncio.sleep(POLL_SECONDS)
            if self._check_list_done or self._nominated:
                # A direct pair won meanwhile (or ICE ended): this check is moot.
                self.check_state(pair, CandidatePair.State.FAILED)
                self.check_complete(pair)
                return
        await check_start(self, pair)

    return wrapper


def install() -> None:
    """Make every aioice connection in this process check relay pairs last (idempotent)."""
    global _installed
    if _installed:
        return
    aioice.ice.Connection.check_start = _holding_relay_back(aioice.ice.Connection.check_start)
    _installed = True
