"""Fixtures for the fast path tests: loopback candidates, fast path state, pair cleanup."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aioice.ice
import pytest

from rtcxfer import fastpath

from .pairs import Pair, loopback_only


@pytest.fixture(autouse=True)
def loopback_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", loopback_only)


@pytest.fixture(autouse=True)
def restore_fast_path() -> Iterator[None]:
    was_enabled = fastpath.is_enabled()
    yield
    if was_enabled:
        fastpath.enable()
    else:
        fastpath.disable()


@pytest.fixture
async def pairs() -> AsyncIterator[list[Pair]]:
    """Pairs created by a test through ``connect_pair``; all closed afterwards."""
    made: list[Pair] = []
    yield made
    for pair in made:
        await pair.close()


