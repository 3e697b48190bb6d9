"""Fixtures of the NAT tests: a fresh world of namespaces per test (tests/nat/netns.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nat.netns import World, unavailable_reason
from nat.scenario import Scenario


@pytest.fixture(scope="module")
def netns_ok() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def scenario(netns_ok: None, tmp_path: Path, request: pytest.FixtureRequest
             ) -> Iterator[Scenario]:
    a, b = request.param
    with World(a, b) as world:
        yield Scenario(world, tmp_path)


