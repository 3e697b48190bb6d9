"""Code mode: `rtcxfer send --code` and `rtcxfer receive CODE`, real processes and servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from security.mitm import MitmServer
from spake2 import SPAKE2_A, SPAKE2_B
from support import RTCXFER, CliProcess, cli_env, json_events, wait_for_event

from rtcxfer.protocol.code import (
    RECEIVER,
    SENDER,
    SPAKE2_ID_RECEIVER,
    SPAKE2_ID_SENDER,
    InvalidCode,
    confirmation,
    confirms,
    parse_code,
)
from rtcxfer.protocol.codewords import WORDS

WAIT = 60.0
WRONG = "the code was wrong or the connection was tampered with"


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "secret.bin"
    path.write_bytes(os.urandom(50_000) + b"THE-SECRET-MARKER")
    return path


def start_sender(processes: list[CliProcess], server: str, *paths: Path,
                 config: Path | None = None) -> tuple[CliProcess, str]:
    env = cli_env(XDG_CONFIG_HOME=str(config)) if config else None
    process = CliProcess(["send", "--server", server, "--json", "--code", *map(str, paths)],
                         env=env)
    processes.append(process)
    return process, wait_for_event(process, "code", timeout=WAIT)["code"]


def receive(processes: list[CliProcess], server: str, code: str, folder: Path,
            config: Path | None = None) -> CliProcess:
    env = cli_env(XDG_CONFIG_HOME=str(config)) if config else None
    process = CliProcess(["receive", "--server", server, "--json", "--dir", str(folder), code],
                         env=env)
    processes.append(process)
    return process


def contents(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def wrong_words(code: str) -> str:
    number, first, second = code.split("-")
    other = WORDS[(WORDS.index(second) + 1) % len(WORDS)]
    return f"{number}-{first}-{other}"


# -- pure parts ------------------------------------------------------------------


def test_parse_code() -> None:
    code = parse_code("  7-Guitar-ORBIT ")
    assert (code.number, code.words, str(code)) == (7, ("guitar", "orbit"), "7-guitar-orbit")
    assert code.sender_name == "rtcxfer-code-7"
    for bad in ("", "guitar-orbit", "7", "7-guitar", "7-guitar-orbit-piano", "0-guitar-orbit",
                "7-gutiar-orbit", "7_guitar_orbit", "-7-guitar-orbit"):
        with pytest.raises(InvalidCode):
            parse_code(bad)


def test_confirmation_binds_key_role_and_both_fingerprints() -> None:
    a = SPAKE2_A(b"7-guitar-orbit", idA=SPAKE2_ID_SENDER, idB=SPAKE2_ID_RECEIVER)
    b = SPAKE2_B(b"7-guitar-orbit", idA=SPAKE2_ID_SENDER, idB=SPAKE2_ID_RECEIVER)
    wrong = SPAKE2_B(b"7-guitar-piano", idA=SPAKE2_ID_SENDER, idB=SPAKE2_ID_RECEIVER)
    message_a, message_b = a.start(), b.start()
    wrong.start()
    key_a, key_b = a.finish(message_b), b.finish(message_a)
    assert key_a == key_b
    mac = confirmation(key_b, RECEIVER, "S", "R")
    assert confirms(key_a, RECEIVER, "S", "R", mac)
    assert not confirms(key_a, SENDER, "S", "R", mac)  # a reflected MAC does not count
    assert not confirms(key_a, RECEIVER, "S", "M", mac)  # another certificate
    assert not confirms(key_a, RECEIVER, "M", "R", mac)
    key_wrong = wrong.finish(message_a)
    assert not confirms(key_a, RECEIVER, "S", "R", confirmation(key_wrong, RECEIVER, "S", "R"))


# -- the commands ----------------------------------------------------------------


def test_send_and_receive_with_a_code(server: str, tmp_path: Path, payload: Path,
                                      processes: list[CliProcess]) -> None:
    sender, code = start_sender(processes, server, payload)
    users = subprocess.run([*RTCXFER, "users", "--server", server], capture_output=True,
                           text=True, env=cli_env(), timeout=60, check=False)
    assert users.returncode == 0 and "rtcxfer-code-" not in users.stdout
    inbox = tmp_path / "inbox"
    receiver = receive(processes, server, code, inbox)
    assert receiver.wait(WAIT) == 0, receiver.stderr
    assert sender.wait(WAIT) == 0, sender.stderr
    assert (inbox / payload.name).read_bytes() == payload.read_bytes()
    assert json_events(sender, "code_verified") and json_events(receiver, "code_verified")


def test_a_wrong_code_fails_both_sides_and_burns_the_code(
        server: str, tmp_path: Path, payload: Path, processes: list[CliProcess]) -> None:
    sender, code = start_sender(processes, server, payload)
    inbox = tmp_path / "inbox"
    guess = receive(processes, server, wrong_words(code), inbox)
    assert guess.wait(WAIT) == 9, guess.stderr
    assert sender.wait(WAIT) == 9, sender.stderr
    assert WRONG in guess.stderr and WRONG in sender.stderr
    assert contents(inbox) == []
    # The right code after a wrong guess finds nobody: the code is burnt.
    late = receive(processes, server, code, tmp_path / "late")
    assert late.wait(WAIT) == 5, late.stderr
    assert "nobody is waiting for code" in late.stderr
    assert contents(tmp_path / "late") == []


def test_a_code_works_once(server: str, tmp_path: Path, payload: Path,
                           processes: list[CliProcess]) -> None:
    sender, code = start_sender(processes, server, payload)
    first = receive(processes, server, code, tmp_path / "first")
    assert first.wait(WAIT) == 0, first.stderr
    assert sender.wait(WAIT) == 0, sender.stderr
    again = receive(processes, server, code, tmp_path / "again")
    assert again.wait(WAIT) == 5, again.stderr
    assert contents(tmp_path / "again") == []


def test_concurrent_codes_on_one_server(server: str, tmp_path: Path,
                                        processes: list[CliProcess]) -> None:
    pairs = []
    for index in range(3):
        source = tmp_path / f"file{index}.bin"
        source.write_bytes(os.urandom(20_000 + index))
        sender, code = start_sender(processes, server, source)
        pairs.append((source, sender, code))
    assert len({code for _, _, code in pairs}) == 3
    receivers = [receive(processes, server, code, tmp_path / f"in{index}")
                 for index, (_, _, code) in enumerate(pairs)]
    for index, ((source, sender, _code), receiver) in enumerate(zip(pairs, receivers,
                                                                     strict=True)):
        assert receiver.wait(WAIT) == 0, receiver.stderr
        assert sender.wait(WAIT) == 0, sender.stderr
        assert contents(tmp_path / f"in{index}") == [source.name]
        assert (tmp_path / f"in{index}" / source.name).read_bytes() == source.read_bytes()


def test_an_invalid_code_is_a_usage_error(server: str, tmp_path: Path) -> None:
    result = subprocess.run([*RTCXFER, "receive", "--server", server, "7-gutiar-orbit"],
                            capture_output=True, text=True, env=cli_env(), timeout=60,
                            check=False)
    assert result.returncode == 2
    assert "gutiar" in result.stderr


def test_code_mode_detects_a_server_in_the_middle(tmp_path: Path, payload: Path,
                                                  processes: list[CliProcess]) -> None:
    mitm = MitmServer()
    mitm.attack = True
    url = mitm.start()
    try:
        sender, code = start_sender(processes, url, payload, config=tmp_path / "a")
        inbox = tmp_path / "inbox"
        receiver = receive(processes, url, code, inbox, config=tmp_path / "b")
        assert receiver.wait(WAIT) == 9, receiver.stderr
        assert sender.wait(WAIT) == 9, sender.stderr
        assert WRONG in receiver.stderr and WRONG in sender.stderr
        assert mitm.history, "the server did not even try"
        assert b"THE-SECRET-MARKER" not in mitm.data_seen()
        assert contents(inbox) == []
    finally:
        mitm.stop()


CLAIMANT = """
import asyncio, sys
from spake2 import SPAKE2_B
from rtcxfer.peer.signaling import SignalingClient
from rtcxfer.protocol.code import (SPAKE2_ID_RECEIVER, SPAKE2_ID_SENDER, parse_code,
                                   pake_message, receiver_name)

async def main():
    code = parse_code(sys.argv[2])
    client = SignalingClient(sys.argv[1], receiver_name())
    await client.connect()
    spake = SPAKE2_B(code.password, idA=SPAKE2_ID_SENDER, idB=SPAKE2_ID_RECEIVER)
    await client.send_candidate(code.sender_name, "code-00112233aabbccdd",
                                pake_message(spake.start()))
    print("claimed", flush=True)
    await asyncio.sleep(120)  # holds the code, never connects

asyncio.run(main())
"""


def test_a_second_claimant_of_a_code_is_turned_away(server: str, tmp_path: Path,
                                                    payload: Path,
                                                    processes: list[CliProcess]) -> None:
    process = CliProcess(["send", "--server", server, "--json", "--connect-timeout", "3",
                          "--code", str(payload)])
    processes.append(process)
    code = wait_for_event(process, "code", timeout=WAIT)["code"]
    claimant = subprocess.Popen([sys.executable, "-c", CLAIMANT, server, code],
                                stdout=subprocess.PIPE, text=True, env=cli_env(),
                                start_new_session=True)
    try:
        assert claimant.stdout is not None and claimant.stdout.readline().strip() == "claimed"
        late = receive(processes, server, code, tmp_path / "late")
        assert late.wait(WAIT) == 9, late.stderr
        assert WRONG in late.stderr
        assert contents(tmp_path / "late") == []
        # The first claimant never connected: the sender gives up; nothing was sent.
        assert process.wait(WAIT) == 7, process.stderr  # no path to the silent claimant
        assert json_events(process, "file_started") == []
    finally:
        claimant.kill()
        claimant.wait(10)


def test_the_server_lists_no_code_names(server: str) -> None:
    """userlist and updata leave rtcxfer-code-… names out; relaying to them still works."""
    import contextlib
    import json

    from websockets.sync.client import connect

    with contextlib.ExitStack() as sockets:

        def log_in(name: str):  # type: ignore[no-untyped-def]
            socket = sockets.enter_context(connect(server))
            socket.send(json.dumps({"type": "login", "name": name}))
            assert json.loads(socket.recv(10))["success"] is True
            return socket, json.loads(socket.recv(10))["users"]

        bob, _ = log_in("bob")
        code_user, code_list = log_in("rtcxfer-code-42")
        assert code_list == ["bob", "rtcxfer-code-42"]  # a code user sees itself
        carol, carol_list = log_in("carol")
        assert carol_list == ["bob", "carol"]
        # bob hears of carol, never of the code user (its login came first).
        assert json.loads(bob.recv(10)) == {"type": "updata", "action": "login", "name": "carol"}
        carol.send(json.dumps({"type": "candidate", "name": "carol",
                               "othername": "rtcxfer-code-42",
                               "candidate": {"rtcxfer-code": "pake", "pake": "00"},
                               "session": "code-1"}))
        # (the code user itself still hears of others: carol's login)
        assert json.loads(code_user.recv(10))["type"] == "updata"
        relayed = json.loads(code_user.recv(10))
        assert (relayed["type"], relayed["name"], relayed["session"]) == ("candidate", "carol",
                                                                           "code-1")
        code_user.close()
        carol.close()
        assert json.loads(bob.recv(10)) == {"type": "updata", "action": "offline",
                                            "name": "carol"}
