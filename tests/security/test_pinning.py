"""Persistent identities, peers pinned on first use, and a server in the middle.

Real CLI subprocesses, each user with its own config folder (XDG_CONFIG_HOME),
a real ``rtcxfer serve`` or the test-only MITM server of ``security/mitm.py``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from security.mitm import MitmServer
from support import RTCXFER, CliProcess, cli_env, json_events, running_server, wait_for_event

WAIT = 60.0
IDENTITY_CHANGED = 9


@pytest.fixture
def mitm() -> Iterator[MitmServer]:
    server = MitmServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


Run = Callable[..., CliProcess]


@pytest.fixture
def run(processes: list[CliProcess]) -> Run:
    def start(config: Path, *args: str) -> CliProcess:
        process = CliProcess(list(args), env=cli_env(XDG_CONFIG_HOME=str(config)))
        processes.append(process)
        return process

    return start


def listen(run: Run, config: Path, server: str, name: str, folder: Path,
           *extra: str) -> CliProcess:
    process = run(config, "listen", "--server", server, "--name", name, "--dir", str(folder),
                  "--json", "--yes", *extra)
    wait_for_event(process, "connected", timeout=WAIT)
    return process


def send(run: Run, config: Path, server: str, name: str, peer: str, *paths: Path,
         extra: tuple[str, ...] = ()) -> CliProcess:
    return run(config, "send", "--server", server, "--name", name, "--json", *extra, peer,
               *map(str, paths))


def trust(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RTCXFER, "trust", *args], env=cli_env(XDG_CONFIG_HOME=str(config)),
                          capture_output=True, text=True, timeout=60, check=False)


def own_fingerprint(config: Path) -> str:
    result = trust(config, "self")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def pins(config: Path) -> list[dict[str, str]]:
    result = trust(config, "list", "--json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def people(tmp_path: Path) -> dict[str, Path]:
    folders = {who: tmp_path / f"config-{who}" for who in ("alice", "bob", "mallory")}
    for folder in folders.values():
        folder.mkdir()
    return folders


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "secret.bin"
    path.write_bytes(os.urandom(100_000) + b"THE-SECRET-MARKER" + os.urandom(1000))
    return path


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_identity_persists_with_mode_0600(people: dict[str, Path]) -> None:
    first = own_fingerprint(people["alice"])
    assert first == own_fingerprint(people["alice"])
    assert first != own_fingerprint(people["bob"])
    identity = people["alice"] / "rtcxfer" / "identity.pem"
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600
    assert stat.S_IMODE(identity.parent.stat().st_mode) == 0o700


def test_first_transfer_pins_both_sides_with_the_real_fingerprints(
        tmp_path: Path, people: dict[str, Path], run: Run, payload: Path) -> None:
    with running_server() as (url, _server):
        inbox = tmp_path / "inbox"
        listener = listen(run, people["bob"], url, "bob", inbox)
        sender = send(run, people["alice"], url, "alice", "bob", payload)
        assert sender.wait(WAIT) == 0, sender.stderr
        wait_for_event(listener, "pinned", timeout=WAIT)
    assert (inbox / payload.name).read_bytes() == payload.read_bytes()
    [alice_pin] = pins(people["alice"])
    assert (alice_pin["server"], alice_pin["room"], alice_pin["name"]) == (url, "", "bob")
    assert alice_pin["fingerprint"] == own_fingerprint(people["bob"])
    [bob_pin] = pins(people["bob"])
    assert (bob_pin["name"], bob_pin["fingerprint"]) == ("alice", own_fingerprint(people["alice"]))


def test_a_squatter_on_a_pinned_name_gets_nothing(
        tmp_path: Path, people: dict[str, Path], run: Run, payload: Path) -> None:
    """bob's name is taken over by someone else after a restart: alice refuses, exit 9."""
    with running_server() as (url, _server):
        real = listen(run, people["bob"], url, "bob", tmp_path / "bob-inbox")
        first = send(run, people["alice"], url, "alice", "bob", payload)
        assert first.wait(WAIT) == 0, first.stderr
        real.stop()
        squatter_inbox = tmp_path / "squatter-inbox"
        listen(run, people["mallory"], url, "bob", squatter_inbox)
        second = send(run, people["alice"], url, "alice", "bob", payload)
        assert second.wait(WAIT) == IDENTITY_CHANGED, second.stderr
    assert "identity of bob changed" in second.stderr
    assert own_fingerprint(people["bob"]) in second.stderr  # the pinned one
    assert own_fingerprint(people["mallory"]) in second.stderr  # the presented one
    assert "rtcxfer trust forget bob" in second.stderr
    assert files_in(squatter_inbox) == []
    [error] = json_events(second, "error")
    assert error["exit_code"] == IDENTITY_CHANGED


def test_a_listener_refuses_a_pinned_sender_with_another_identity(
        tmp_path: Path, people: dict[str, Path], run: Run, payload: Path) -> None:
    with running_server() as (url, _server):
        inbox = tmp_path / "inbox"
        listener = listen(run, people["bob"], url, "bob", inbox, "--from", "alice")
        first = send(run, people["alice"], url, "alice", "bob", payload)
        assert first.wait(WAIT) == 0, first.stderr
        wait_for_event(listener, "pinned", timeout=WAIT)
        (inbox / payload.name).unlink()
        impostor = send(run, people["mallory"], url, "alice", "bob", payload)
        assert impostor.wait(WAIT) != 0
        changed = wait_for_event(listener, "identity_changed", timeout=WAIT)
    assert "identity of alice changed" in changed["message"]
    assert own_fingerprint(people["mallory"]) in changed["message"]
    assert files_in(inbox) == []


def test_plain_listen_yes_says_it_accepts_anyone(
        tmp_path: Path, people: dict[str, Path], run: Run) -> None:
    with running_server() as (url, _server):
        anyone = listen(run, people["bob"], url, "bob", tmp_path / "a")
        wait_for_event(anyone, "accepting_anyone", timeout=WAIT)
        only_alice = listen(run, people["bob"], url, "bob2", tmp_path / "b", "--from", "alice")
    assert json_events(only_alice, "accepting_anyone") == []


def test_trust_add_list_forget(people: dict[str, Path]) -> None:
    config = people["alice"]
    fingerprint = "ab" * 32
    added = trust(config, "add", "bob", fingerprint, "--server", "ws://Example.org:9090/")
    assert added.returncode == 0, added.stderr
    [pin] = pins(config)
    assert pin["server"] == "ws://example.org:9090"
    assert pin["fingerprint"] == ":".join(["AB"] * 32)
    assert stat.S_IMODE((config / "rtcxfer" / "known_peers.json").stat().st_mode) == 0o600
    assert trust(config, "add", "bob", "not-hex").returncode == 2
    forgotten = trust(config, "forget", "bob")
    assert forgotten.returncode == 0 and "forgot bob" in forgotten.stdout
    assert pins(config) == []
    assert trust(config, "forget", "bob").returncode == 1


def test_a_manually_added_wrong_pin_stops_the_first_transfer(
        tmp_path: Path, people: dict[str, Path], run: Run, payload: Path) -> None:
    with running_server() as (url, _server):
        assert trust(people["alice"], "add", "bob", "cd" * 32, "--server", url).returncode == 0
        inbox = tmp_path / "inbox"
        listen(run, people["bob"], url, "bob", inbox)
        sender = send(run, people["alice"], url, "alice", "bob", payload)
        assert sender.wait(WAIT) == IDENTITY_CHANGED, sender.stderr
    assert files_in(inbox) == []


# -- a signaling server in the middle ------------------------------------------


def test_mitm_without_pins_goes_unnoticed_but_the_codes_differ(
        tmp_path: Path, people: dict[str, Path], run: Run, payload: Path,
        mitm: MitmServer) -> None:
    """The attack works (the server reads the file); only the codes tell."""
    mitm.attack = True
    inbox = tmp_path / "inbox"
    listener = listen(run, people["bob"], mitm.url, "bob", inbox)
    sender = send(run, people["alice"], mitm.url, "alice", "bob", payload)
    assert sender.wait(WAIT) == 0, sender.stderr
    assert (inbox / payload.name).read_bytes() == payload.read_bytes()
    assert b"THE-SECRET-MARKER" in mitm.data_seen()
    [sender_code] = [e["code"] for e in json_events(sender, "verification")]
    receiver_code = wait_for_event(listener, "peer_connected", timeout=WAIT)["code"]
    assert sender_code != receiver_code
    # What each side pinned is the server's certificate, not the other person's.
    assert pins(people["alice"])[0]["fingerprint"] != own_fingerprint(people["bob"])


def test_mitm_is_detected_once_the_peers_are_pinned(
        tmp_path: Path, people: dict[str, Path], run: Run, payload: Path,
        mitm: MitmServer) -> None:
    inbox = tmp_path / "inbox"
    listener = listen(run, people["bob"], mitm.url, "bob", inbox)
    honest = send(run, people["alice"], mitm.url, "alice", "bob", payload)
    assert honest.wait(WAIT) == 0, honest.stderr
    wait_for_event(listener, "pinned", timeout=WAIT)
    (inbox / payload.name).unlink()
    codes = [e["code"] for e in json_events(honest, "verification")]
    assert codes == [wait_for_event(listener, "peer_connected", timeout=WAIT)["code"]]

    mitm.attack = True
    attacked = send(run, people["alice"], mitm.url, "alice", "bob", payload)
    assert attacked.wait(WAIT) == IDENTITY_CHANGED, attacked.stderr
    assert "identity of bob changed" in attacked.stderr
    assert files_in(inbox) == []
    assert b"THE-SECRET-MARKER" not in mitm.data_seen()
