"""Fixtures for the transfer tests: real aiortc peers joined directly on loopback."""

from __future__ import annotations

import pytest
from transfer.peers import use_loopback_ice


@pytest.fixture
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    use_loopback_ice(monkeypatch.setattr)
