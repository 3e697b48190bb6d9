"""The fast path must not break silently: its private names exist, and its pump runs."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import aiortc.rtcpeerconnection
import pytest
from aiortc.rtcsctptransport import RTCSctpTransport

import rtcxfer.fastpath
from rtcxfer import fastpath
from rtcxfer.fastpath import compat
from rtcxfer.fastpath.dtls import FastDtlsTransport
from rtcxfer.fastpath.sctp import FastSctpTransport

from .pairs import Pair, collect, connect_pair, send_all

FASTPATH_DIR = Path(rtcxfer.fastpath.__file__).parent


def test_every_private_name_exists_with_its_kind() -> None:
    failures = [problem for r in compat.REQUIRED if (problem := compat.check(r)) is not None]
    assert failures == []
    assert compat.problems() == ()
    assert fastpath.incompatibility() is None


def test_installed_versions_are_the_tested_ones() -> None:
    assert compat.installed_versions() == compat.TESTED_VERSIONS


def own_names(source: str) -> set[str]:
    """Private names the fast path defines itself (classes, functions, attributes)."""
    patterns = [r"(?:def|class)\s+(_\w+)", r"self\.(_\w+)\s*[:=]", r"^(_\w+)\s*[:=]",
                r"\b(_\w+)\s*=", r"\w+\.(_\w+)\s*=", r"\b(_\w+)\s+for\b"]
    names: set[str] = set()
    for pattern in patterns:
        names.update(re.findall(pattern, source, flags=re.MULTILINE))
    return names


def test_required_list_covers_every_foreign_private_name_the_code_uses() -> None:
    """A new private name used without being listed in compat.REQUIRED fails here."""
    sources = {path.name: path.read_text() for path in FASTPATH_DIR.glob("*.py")}
    sources.pop("compat.py")
    defined = set().union(*(own_names(source) for source in sources.values()))
    required = {requirement.name for requirement in compat.REQUIRED}
    used: dict[str, set[str]] = {}
    for name, source in sources.items():
        # Strings and comments may mention names: only code counts.
        code = re.sub(r'""".*?"""|#[^\n]*|"[^"\n]*"', "", source, flags=re.DOTALL)
        for token in re.findall(r"\.(_[A-Za-z]\w*)", code):
            used.setdefault(token, set()).add(name)
    foreign = {token: files for token, files in used.items()
               if token not in defined and token not in required}
    assert foreign == {}


def test_required_list_covers_every_override() -> None:
    """Each aiortc/aioice method a fast class overrides is listed (renamed = not called)."""
    from rtcxfer.fastpath.ice import ConsentConnection

    required = {(requirement.owner, requirement.name) for requirement in compat.REQUIRED}
    owners = {FastSctpTransport: compat.SCTP, FastDtlsTransport: compat.DTLS,
              ConsentConnection: compat.ICE}
    unlisted = []
    for cls, owner in owners.items():
        stock = cls.__mro__[1]
        for name in vars(cls):
            if name.startswith("__") or not hasattr(stock, name):
                continue
            if (owner, name) not in required:
                unlisted.append(f"{cls.__name__}.{name}")
    assert unlisted == []


def test_a_missing_method_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    requirement = compat.Requirement(compat.SCTP, "_transmit", "coroutine")
    assert compat.check(requirement) is None
    monkeypatch.delattr(RTCSctpTransport, "_transmit")
    assert compat.check(requirement) == f"{requirement} is missing"


def test_a_changed_kind_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    requirement = compat.Requirement(compat.SCTP, "_send_sack", "coroutine")
    monkeypatch.setattr(RTCSctpTransport, "_send_sack", lambda self: None)
    assert compat.check(requirement) == f"{requirement} is not a coroutine function"
    attribute = compat.Requirement(compat.SCTP, "_no_such_attribute", "attribute")
    assert compat.check(attribute) == f"{attribute} is never set"
    module = compat.Requirement("aiortc.no_such_module", "x", "constant")
    assert "aiortc.no_such_module is missing" in (compat.check(module) or "")


def test_enable_falls_back_to_stock_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fastpath.disable()
    problem = "aiortc.rtcsctptransport:RTCSctpTransport._transmit (coroutine) is missing"
    monkeypatch.setattr(compat, "problems", lambda: (problem,))
    monkeypatch.setattr(rtcxfer.fastpath, "_fast", None)
    monkeypatch.setattr(rtcxfer.fastpath, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="rtcxfer.fastpath"):
        assert fastpath.enable() is False
        assert fastpath.enable() is False
    assert not fastpath.is_enabled()
    assert aiortc.rtcpeerconnection.RTCSctpTransport is RTCSctpTransport
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1
    assert warnings[0].startswith("fast path disabled, using stock aiortc: " + problem)
    assert "\n" not in warnings[0]


async def test_the_fast_pump_runs_during_a_transfer(pairs: list[Pair]) -> None:
    """Counters, not timings: the fast DTLS pump and SACK handling did the work."""
    pair = await connect_pair(True, True)
    pairs.append(pair)
    messages = [bytes([index % 256]) * 65536 for index in range(64)]
    received, complete = collect(pair.answerer_channel, len(messages))
    await asyncio.wait_for(asyncio.gather(send_all(pair.offerer_channel, messages), complete),
                           120)
    assert received == messages
    for pc, role in ((pair.answerer, "receiver"), (pair.offerer, "sender")):
        sctp = pc.sctp
        assert isinstance(sctp, FastSctpTransport)
        dtls = sctp.transport
        assert isinstance(dtls, FastDtlsTransport)
        total = dtls._RTCDtlsTransport__rx_packets
        # All but the handshake's few datagrams went through the fast pump.
        assert dtls.fast_datagrams > 0, role
        assert total - dtls.fast_datagrams < 20, role
    assert pair.offerer.sctp.fast_sacks > 0
    assert pair.answerer.sctp.transport.fast_datagrams >= 4 * 1024 * 1024 // 1200
