"""The identity file and the pin store on their own: creation races, damage, concurrency."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rtcxfer.errors import IdentityChanged, RtcxferError
from rtcxfer.peer.identity import load_or_create
from rtcxfer.peer.trust import TrustStore, normalise_fingerprint, scope_of

FP_A = ":".join(["AA"] * 32)
FP_B = ":".join(["BB"] * 32)


def test_processes_creating_the_identity_at_once_agree(tmp_path: Path) -> None:
    script = ("import sys; from pathlib import Path; from rtcxfer.peer.identity import "
              "load_or_create; print(load_or_create(Path(sys.argv[1])).fingerprint)")
    processes = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)],
                                  stdout=subprocess.PIPE, text=True) for _ in range(4)]
    printed = {process.communicate(timeout=60)[0].strip() for process in processes}
    assert len(printed) == 1
    assert printed == {load_or_create(tmp_path).fingerprint}
    assert [p.name for p in tmp_path.iterdir()] == ["identity.pem"]  # no temporary left
    assert stat.S_IMODE((tmp_path / "identity.pem").stat().st_mode) == 0o600


def test_a_damaged_identity_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "identity.pem").write_text("not a key\n")
    with pytest.raises(RtcxferError, match="is not an rtcxfer identity"):
        load_or_create(tmp_path)


def test_pins_from_many_writers_at_once_are_all_kept(tmp_path: Path) -> None:
    scope = scope_of("ws://127.0.0.1:9090")
    threads = [threading.Thread(target=TrustStore(tmp_path).pin,
                                args=(scope, f"user{i}", FP_A)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(pin.name for pin in TrustStore(tmp_path).pins()) == sorted(
        f"user{i}" for i in range(16))


def test_check_pin_and_scope(tmp_path: Path) -> None:
    store = TrustStore(tmp_path)
    here, there = scope_of("ws://a:1"), scope_of("ws://a:1", "room")
    assert store.check(here, "alice", FP_A, nothing="nothing was sent") is False
    assert store.pin(here, "alice", FP_A) is True
    assert store.pin(here, "alice", FP_B) is False  # a pin is never replaced silently
    assert store.check(here, "alice", FP_A, nothing="nothing was sent") is True
    assert store.check(there, "alice", FP_B, nothing="nothing was sent") is False
    with pytest.raises(IdentityChanged) as raised:
        store.check(here, "alice", FP_B, nothing="nothing was sent")
    message = str(raised.value)
    assert message.startswith("identity of alice changed")
    assert FP_A in message and FP_B in message and "Nothing was sent" in message


def test_names_from_outside_are_escaped_in_the_message(tmp_path: Path) -> None:
    store = TrustStore(tmp_path)
    scope = scope_of("ws://a:1")
    store.pin(scope, "al\x1b[2Jice", FP_A)
    with pytest.raises(IdentityChanged) as raised:
        store.check(scope, "al\x1b[2Jice", FP_B, nothing="nothing was received")
    assert "\x1b" not in str(raised.value)


def test_a_damaged_store_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "known_peers.json").write_text("{")
    with pytest.raises(RtcxferError, match="cannot read"):
        TrustStore(tmp_path).pins()


def test_normalise_fingerprint() -> None:
    assert normalise_fingerprint("aa" * 32) == FP_A
    assert normalise_fingerprint(" " + FP_A.lower() + " ") == FP_A
    for bad in ("", "aa" * 31, "zz" * 32, "aa" * 33):
        with pytest.raises(ValueError):
            normalise_fingerprint(bad)
