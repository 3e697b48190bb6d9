"""A hostile rtcxfer/1 sender against a real `rtcxfer listen --yes`, through a real server.

After every attack: nothing landed outside the download folder, no final file exists
for a file that failed, and the listener is alive and still receives a good transfer.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conformance.transfer_peers import (
    Outcome,
    channel_to,
    finish,
    next_control,
    send_file,
    send_files,
    send_hello,
    sha256_hex,
)
from conformance.wire import CHUNK_SIZE
from support import CliProcess, running_server, wait_for_event

pytestmark = pytest.mark.slow

LISTENER = "conformance-bob"
_attacker_serial = itertools.count()


@dataclass
class Listener:
    url: str
    process: CliProcess
    root: Path
    folder: Path

    def files_outside(self) -> set[Path]:
        return {path for path in self.root.rglob("*")
                if path.is_file() and self.folder not in path.parents}

    def landed(self) -> set[str]:
        """Final files in the download folder (relative POSIX paths)."""
        return {path.relative_to(self.folder).as_posix() for path in self.folder.rglob("*")
                if path.is_file()}


@pytest.fixture(scope="module")
def listener(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    root = tmp_path_factory.mktemp("hostile")
    folder = root / "downloads"
    folder.mkdir()
    (root / "sentinel.txt").write_text("outside the download folder")
    with running_server() as (url, _server):
        process = CliProcess(["listen", "--server", url, "--name", LISTENER, "--yes",
                              "--dir", str(folder), "--json"])
        try:
            wait_for_event(process, "connected", timeout=60)
            yield Listener(url, process, root, folder)
        finally:
            process.stop()


def attacker() -> str:
    return f"mallory-{next(_attacker_serial)}"


async def good_transfer_still_works(listener: Listener) -> None:
    """The listener survived: a conforming sender's file lands whole."""
    name = f"after-attack-{next(_attacker_serial)}.bin"
    data = os.urandom(40_000)
    try:
        async with channel_to(listener.url, attacker(), LISTENER) as inbox:
            outcome = await send_files(inbox, [(name, data)])
    except AssertionError as failure:
        raise AssertionError(f"{failure}\nlistener stdout tail:\n"
                             + "\n".join(listener.process.stdout_lines[-8:])
                             + "\nlistener stderr tail:\n"
                             + "\n".join(listener.process.stderr_lines[-15:])) from None
    assert [ack["ok"] for ack in outcome.acks] == [True], outcome
    assert (listener.folder / name).read_bytes() == data


def assert_contained(listener: Listener, *forbidden: Path) -> None:
    assert listener.files_outside() == {listener.root / "sentinel.txt"}, \
        listener.files_outside()
    for path in forbidden:
        assert not path.exists(), path
    assert listener.process.popen.poll() is None, listener.process.stderr


async def attempt(listener: Listener, files: list[tuple[str, bytes]],
                  **hello_overrides: Any) -> Outcome:
    """Offer ``files`` by name; if accepted, send each one whole; then done."""
    async with channel_to(listener.url, attacker(), LISTENER) as inbox:
        entries = [{"name": name, "size": len(data)} for name, data in files]
        outcome = await send_hello(inbox, entries, **hello_overrides)
        if outcome.reply is not None and outcome.reply.get("type") == "accept":
            for index, (_name, data) in enumerate(files):
                reply = await send_file(inbox, outcome, index, data)
                if reply is None or reply.get("type") != "ack":
                    break
            else:
                await finish(inbox, outcome)
    return outcome


def hostile_names(root: Path) -> list[str]:
    return [
        "../escape.txt",
        "../../escape-twice.txt",
        str(root / "absolute.txt"),
        "/etc/rtcxfer-conformance-abs.txt",
        "a/../../b.txt",
        "sub/../../../c.txt",
        "./../d.txt",
        "..",
        ".",
        "",
        "dir/",
        "a//../../e.txt",
        "nul\x00byte.txt",
        "x" * 300,
        "deep/" + "y" * 300 + "/f.txt",
    ]


@pytest.mark.parametrize("index", range(15))
async def test_hostile_name_is_rejected_and_contained(listener: Listener, index: int) -> None:
    # absolute paths, `..`, empty names, NUL, overlong components: refused, nothing escapes
    name = hostile_names(listener.root)[index]
    before = listener.landed()
    outcome = await attempt(listener, [(name, b"hostile payload\n")])
    assert outcome.refused, (name, outcome)
    assert listener.landed() == before, (name, listener.landed() - before)
    assert_contained(listener, listener.root / "escape.txt",
                     listener.root.parent / "escape-twice.txt",
                     listener.root / "absolute.txt", Path("/etc/rtcxfer-conformance-abs.txt"),
                     listener.root / "b.txt", listener.root / "c.txt", listener.root / "d.txt",
                     listener.root / "e.txt")
    await good_transfer_still_works(listener)


@pytest.mark.parametrize("name", ["C:\\x.txt", "con.txt", "CON", "nul.txt", "a\\..\\..\\w.txt",
                                  "trailing-dot.", "aux"])
async def test_windows_style_names_stay_inside(listener: Listener, name: str) -> None:
    # names only dangerous on Windows: whatever the receiver decides, nothing escapes
    outcome = await attempt(listener, [(name, b"windows-ish\n")])
    assert_contained(listener)
    if not outcome.refused:
        assert any(path.read_bytes() == b"windows-ish\n" for path in listener.folder.rglob("*")
                   if path.is_file())
    await good_transfer_still_works(listener)


async def test_duplicate_names_in_one_hello_lose_nothing(listener: Listener) -> None:
    # two files offered under one name: refused, or both kept under distinct names
    name = f"dup-{next(_attacker_serial)}.txt"
    outcome = await attempt(listener, [(name, b"first\n"), (name, b"second\n")])
    assert_contained(listener)
    contents = {path.read_bytes() for path in listener.folder.rglob("*") if path.is_file()}
    if not outcome.refused:
        assert {b"first\n", b"second\n"} <= contents
    await good_transfer_still_works(listener)


async def send_lying_file(listener: Listener, name: str, announced: int, data: bytes,
                          digest: str | None = None) -> Outcome:
    async with channel_to(listener.url, attacker(), LISTENER) as inbox:
        outcome = await send_hello(inbox, [{"name": name, "size": announced}])
        assert outcome.reply is not None and outcome.reply["type"] == "accept", outcome
        await send_file(inbox, outcome, 0, data, digest=digest)
        if not outcome.errors and not outcome.closed:
            await finish(inbox, outcome)
    return outcome


async def test_wrong_sha256_is_nacked_and_not_kept(listener: Listener) -> None:
    name = f"badhash-{next(_attacker_serial)}.bin"
    data = os.urandom(50_000)
    outcome = await send_lying_file(listener, name, len(data), data, digest="0" * 64)
    assert outcome.refused and not any(ack.get("ok") for ack in outcome.acks), outcome
    assert not (listener.folder / name).exists()
    assert_contained(listener)
    await good_transfer_still_works(listener)


async def test_more_bytes_than_announced_is_refused(listener: Listener) -> None:
    name = f"toolong-{next(_attacker_serial)}.bin"
    data = os.urandom(3 * CHUNK_SIZE)
    outcome = await send_lying_file(listener, name, CHUNK_SIZE, data)
    assert outcome.refused, outcome
    assert not (listener.folder / name).exists()
    assert_contained(listener)
    await good_transfer_still_works(listener)


async def test_fewer_bytes_than_announced_is_refused(listener: Listener) -> None:
    name = f"tooshort-{next(_attacker_serial)}.bin"
    data = os.urandom(CHUNK_SIZE)
    outcome = await send_lying_file(listener, name, 3 * CHUNK_SIZE, data)
    assert outcome.refused, outcome
    assert not (listener.folder / name).exists()
    assert_contained(listener)
    await good_transfer_still_works(listener)


async def raw_sequence(listener: Listener, name: str,
                       messages: list[dict[str, Any] | bytes | str]) -> Outcome:
    """Accepted hello of one 1000-byte file, then ``messages`` verbatim."""
    async with channel_to(listener.url, attacker(), LISTENER) as inbox:
        outcome = await send_hello(inbox, [{"name": name, "size": 1000}])
        assert outcome.reply is not None and outcome.reply["type"] == "accept", outcome
        for message in messages:
            inbox.send(message)
        while (reply := await next_control(inbox, outcome, 10)) is not None \
                and not outcome.closed and not outcome.errors:
            if reply.get("type") == "ack":
                outcome.acks.append(reply)
    return outcome


DATA_1000 = b"z" * 1000
PROTOCOL_VIOLATIONS: dict[str, list[dict[str, Any] | bytes | str]] = {
    "binary-before-file": [DATA_1000],
    "index-out-of-range": [{"type": "file", "index": 5, "offset": 0}, DATA_1000,
                           {"type": "eof", "index": 5, "sha256": sha256_hex(DATA_1000)}],
    "negative-index": [{"type": "file", "index": -1, "offset": 0}],
    "index-not-int": [{"type": "file", "index": "0", "offset": 0}],
    "offset-not-accepted": [{"type": "file", "index": 0, "offset": 500}, DATA_1000[500:],
                            {"type": "eof", "index": 0, "sha256": sha256_hex(DATA_1000)}],
    "unknown-type": [{"type": "teleport"}],
    "non-json-text": ["this is not json {"],
    "json-array": ["[1,2]"],
    "second-hello": [{"type": "hello", "version": 1, "files": [], "total": 0}],
    "eof-without-file": [{"type": "eof", "index": 0, "sha256": sha256_hex(DATA_1000)}],
    "eof-wrong-index": [{"type": "file", "index": 0, "offset": 0}, DATA_1000,
                        {"type": "eof", "index": 3, "sha256": sha256_hex(DATA_1000)}],
}


@pytest.mark.parametrize("case", sorted(PROTOCOL_VIOLATIONS))
async def test_protocol_violation_gets_error_and_no_file(listener: Listener, case: str) -> None:
    # every out-of-order or malformed message is a protocol error; no final file appears
    name = f"violation-{case}-{next(_attacker_serial)}.bin"
    outcome = await raw_sequence(listener, name, PROTOCOL_VIOLATIONS[case])
    assert outcome.errors or outcome.closed, outcome
    assert not (listener.folder / name).exists()
    assert_contained(listener)
    await good_transfer_still_works(listener)


async def test_done_before_all_files_is_not_success(listener: Listener) -> None:
    first, second = (f"early-done-{next(_attacker_serial)}-{i}.bin" for i in range(2))
    async with channel_to(listener.url, attacker(), LISTENER) as inbox:
        outcome = await send_hello(inbox, [{"name": first, "size": 10},
                                           {"name": second, "size": 10}])
        assert outcome.reply is not None and outcome.reply["type"] == "accept", outcome
        await send_file(inbox, outcome, 0, b"0123456789")
        reply = await finish(inbox, outcome)
    assert reply != {"type": "done"}, "receiver confirmed done with a file missing"
    assert not (listener.folder / second).exists()
    assert_contained(listener)
    await good_transfer_still_works(listener)


@pytest.mark.parametrize("hello", [
    {"files": [{"name": "neg.bin", "size": -5}], "total": -5},
    {"files": [{"name": "mismatch.bin", "size": 10}], "total": 99},
    {"files": [{"name": "float.bin", "size": 1.5}], "total": 1.5},
    {"files": [{"name": "str.bin", "size": "10"}], "total": 10},
    {"files": [{"name": 7, "size": 1}], "total": 1},
    {"files": [{"size": 1}], "total": 1},
    {"files": "nope", "total": 0},
    {"files": [{"name": "bool.bin", "size": True}], "total": 1},
    {"files": [{"name": "mtime.bin", "size": 1, "mtime": "yesterday"}], "total": 1},
    {"files": [{"name": "ver.bin", "size": 1}], "total": 1, "version": 2},
    {"files": [{"name": "nover.bin", "size": 1}], "total": 1, "version": None},
])
async def test_malformed_hello_is_refused(listener: Listener, hello: dict[str, Any]) -> None:
    # negative or non-integer sizes, total mismatch, bad names, unknown version: refused
    async with channel_to(listener.url, attacker(), LISTENER) as inbox:
        inbox.send({"type": "hello", "version": 1, **hello})
        outcome = Outcome()
        outcome.reply = await next_control(inbox, outcome, 30)
    assert outcome.refused, outcome
    assert outcome.reply is None or outcome.reply.get("type") in {"decline", "error"}, outcome
    assert_contained(listener)
    await good_transfer_still_works(listener)


async def test_huge_hello_does_not_kill_listener(listener: Listener) -> None:
    # 100k files in one hello (bigger than max-message-size): refused or survived
    files = [{"name": f"h{i}", "size": 1} for i in range(100_000)]
    async with channel_to(listener.url, attacker(), LISTENER) as inbox:
        # a hostile peer ignores the receiver's advertised a=max-message-size
        inbox.channel.transport._remote_max_message_size = 0
        await send_hello(inbox, files)
    assert listener.process.popen.poll() is None, listener.process.stderr
    assert_contained(listener)
    await good_transfer_still_works(listener)


async def test_sender_without_session_field_works(listener: Listener) -> None:
    # a minimal PROTOCOL.md sender: no session field, no trickle, no mtime, 16 KiB frames
    name = f"nosession-{next(_attacker_serial)}.bin"
    data = os.urandom(5 * CHUNK_SIZE + 123)
    empty = f"empty-{next(_attacker_serial)}.txt"
    nested = f"nested-{next(_attacker_serial)}/deeper/file.txt"
    async with channel_to(listener.url, attacker(), LISTENER) as inbox:
        outcome = await send_files(inbox, [(name, data), (empty, b""), (nested, b"n\n")])
    assert [ack["ok"] for ack in outcome.acks] == [True, True, True], outcome
    assert (listener.folder / name).read_bytes() == data
    assert (listener.folder / empty).read_bytes() == b""
    assert (listener.folder / nested).read_bytes() == b"n\n"


async def test_sender_with_session_field_works(listener: Listener) -> None:
    name = f"session-{next(_attacker_serial)}.bin"
    data = os.urandom(2 * CHUNK_SIZE)
    async with channel_to(listener.url, attacker(), LISTENER, session="0123456789abcdef") as inbox:
        outcome = await send_files(inbox, [(name, data)])
    assert [ack["ok"] for ack in outcome.acks] == [True], outcome
    assert (listener.folder / name).read_bytes() == data


def test_cli_send_still_works_after_all_attacks(listener: Listener, tmp_path: Path) -> None:
    source = tmp_path / "final-check.bin"
    source.write_bytes(os.urandom(100_000))
    sender = CliProcess(["send", "--server", listener.url, "--name", "final-sender",
                         LISTENER, str(source)])
    try:
        assert sender.wait(120) == 0, sender.stderr
    finally:
        sender.stop()
    assert (listener.folder / "final-check.bin").read_bytes() == source.read_bytes()
