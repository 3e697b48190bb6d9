"""Fixtures of the conformance probe: real `rtcxfer` subprocesses on loopback only."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import aioice.ice
import pytest
from conformance.wire import loopback_only_host_addresses
from support import CliProcess, running_server

_serial = itertools.count()


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """One `rtcxfer serve` per test module; tests use unique names so they never collide."""
    with running_server() as (url, _process):
        yield url


@pytest.fixture
def fresh_server() -> Iterator[tuple[str, CliProcess]]:
    """A server of its own, for tests that need to see the whole userlist."""
    with running_server() as (url, process):
        yield url, process


@pytest.fixture
def unique() -> Callable[[str], str]:
    """``unique("alice")`` -> a user name no other test uses."""
    return lambda stem: f"{stem}-{next(_serial)}"


@pytest.fixture
def processes() -> Iterator[list[CliProcess]]:
    """CLI processes started by a test; every one is stopped when the test ends."""
    started: list[CliProcess] = []
    yield started
    for process in started:
        process.stop()


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our in-process aiortc peers gather only 127.0.0.1 (aioice leaves it out itself)."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", loopback_only_host_addresses)
