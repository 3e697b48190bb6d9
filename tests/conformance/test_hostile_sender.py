"""A hostile rtcxfer/1 sender against a real `rtcxfer listen --yes`, through a real server.

After every attack: nothing landed outside the download folder, no final file exists
for a file that failed, and the listener is alive and still receives a good transfer.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCSessionDescription
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
from conformance.wire import (
    CHUNK_SIZE,
    description,
    new_peer_connection,
    offer_channel,
    signaling,
    verification_code,
)
from support import CliProcess, json_events, running_server, wait_for_event

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
    "sender-error-midway": [{"type": "file", "index": 0, "offset": 0}, DATA_1000[:500],
                            {"type": "error", "message": "sender gave up"}],
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


EOF_VARIANTS: dict[str, dict[str, Any]] = {
    "sha256-not-hex": {"type": "eof", "index": 0, "sha256": "z" * 64},
    "sha256-short": {"type": "eof", "index": 0, "sha256": "ab"},
    "sha256-missing": {"type": "eof", "index": 0},
    "sha256-number": {"type": "eof", "index": 0, "sha256": 5},
}


@pytest.mark.parametrize("case", sorted(EOF_VARIANTS))
async def test_malformed_eof_is_refused(listener: Listener, case: str) -> None:
    name = f"eof-{case}-{next(_attacker_serial)}.bin"
    outcome = await raw_sequence(listener, name, [{"type": "file", "index": 0, "offset": 0},
                                                  DATA_1000, EOF_VARIANTS[case]])
    assert outcome.refused, outcome
    assert not (listener.folder / name).exists()
    assert_contained(listener)
    await good_transfer_still_works(listener)


MORE_VIOLATIONS: dict[str, list[dict[str, Any] | bytes | str]] = {
    "file-twice": [{"type": "file", "index": 0, "offset": 0},
                   {"type": "file", "index": 0, "offset": 0}],
    "accept-from-sender": [{"type": "accept", "offsets": [0]}],
    "ack-from-sender": [{"type": "ack", "index": 0, "ok": True}],
    "type-missing": [{"index": 0}],
    "type-not-string": [{"type": 3}],
}


@pytest.mark.parametrize("case", sorted(MORE_VIOLATIONS))
async def test_wrong_direction_or_repeated_message_is_an_error(listener: Listener,
                                                               case: str) -> None:
    name = f"more-{case}-{next(_attacker_serial)}.bin"
    outcome = await raw_sequence(listener, name, MORE_VIOLATIONS[case])
    assert outcome.errors or outcome.closed, outcome
    assert not (listener.folder / name).exists()
    assert_contained(listener)
    await good_transfer_still_works(listener)


async def test_oversized_binary_frame_is_refused_or_kept_whole(listener: Listener) -> None:
    # frames are at most 64 KiB; a 200 KiB frame is refused or, if taken, lands intact
    name = f"bigframe-{next(_attacker_serial)}.bin"
    data = os.urandom(200 * 1024)
    async with channel_to(listener.url, attacker(), LISTENER) as inbox:
        outcome = await send_hello(inbox, [{"name": name, "size": len(data)}])
        assert outcome.reply is not None and outcome.reply["type"] == "accept", outcome
        inbox.send({"type": "file", "index": 0, "offset": 0})
        inbox.send(data)
        inbox.send({"type": "eof", "index": 0, "sha256": sha256_hex(data)})
        reply = await next_control(inbox, outcome, 30)
        if reply is not None and reply.get("type") == "ack":
            outcome.acks.append(reply)
    if outcome.refused:
        assert not (listener.folder / name).exists()
    else:
        assert (listener.folder / name).read_bytes() == data
    assert_contained(listener)
    await good_transfer_still_works(listener)


async def test_same_sender_without_session_transfers_twice_on_one_socket(
        listener: Listener) -> None:
    # no `session`: one connection per pair at a time, but one after the other must work
    sender = attacker()
    async with signaling(listener.url, sender) as client:
        for round_number in range(2):
            name = f"again-{next(_attacker_serial)}-{round_number}.bin"
            data = os.urandom(30_000)
            async with offer_channel(client, LISTENER) as inbox:
                outcome = await send_files(inbox, [(name, data)])
            assert [ack["ok"] for ack in outcome.acks] == [True], outcome
            assert (listener.folder / name).read_bytes() == data


async def test_new_offer_after_aborted_one_without_leave(listener: Listener) -> None:
    # a peer that vanished without `leave` (same socket, no session) and offers again
    sender = attacker()
    async with signaling(listener.url, sender) as client:
        async with offer_channel(client, LISTENER) as inbox:
            await send_hello(inbox, [{"name": "aborted.bin", "size": 10}])
        name = f"after-abort-{next(_attacker_serial)}.bin"
        data = os.urandom(20_000)
        async with offer_channel(client, LISTENER) as inbox:
            outcome = await send_files(inbox, [(name, data)])
    assert [ack["ok"] for ack in outcome.acks] == [True], outcome
    assert (listener.folder / name).read_bytes() == data


async def test_new_offer_after_leave(listener: Listener) -> None:
    sender = attacker()
    async with signaling(listener.url, sender) as client:
        async with offer_channel(client, LISTENER) as inbox:
            await send_hello(inbox, [{"name": "left.bin", "size": 10}])
            await client.relay("leave", LISTENER)
        name = f"after-leave-{next(_attacker_serial)}.bin"
        data = os.urandom(20_000)
        async with offer_channel(client, LISTENER) as inbox:
            outcome = await send_files(inbox, [(name, data)])
    assert [ack["ok"] for ack in outcome.acks] == [True], outcome
    assert (listener.folder / name).read_bytes() == data


async def abort_after(listener: Listener, sender: str, name: str, data: bytes,
                      sent: int) -> None:
    """Offer ``data`` whole but send only ``sent`` bytes, then drop the connection."""
    async with channel_to(listener.url, sender, LISTENER) as inbox:
        outcome = await send_hello(inbox, [{"name": name, "size": len(data)}])
        assert outcome.reply is not None and outcome.reply["type"] == "accept", outcome
        inbox.send({"type": "file", "index": 0, "offset": outcome.reply["offsets"][0]})
        for start in range(0, sent, CHUNK_SIZE):
            inbox.send(data[start:min(start + CHUNK_SIZE, sent)])
        # a final control message proves every chunk before it was delivered in order
        inbox.send({"type": "teleport-probe"})
        await next_control(inbox, outcome, 30)
    await asyncio.to_thread(wait_for_event, listener.process, "transfer_failed", peer=sender)


async def test_interrupted_transfer_leaves_no_final_file_and_resumes(
        listener: Listener) -> None:
    name = f"resume-{next(_attacker_serial)}.bin"
    data = os.urandom(6 * CHUNK_SIZE)
    sender = attacker()
    await abort_after(listener, sender, name, data, 3 * CHUNK_SIZE)
    assert not (listener.folder / name).exists()
    async with channel_to(listener.url, sender, LISTENER) as inbox:
        outcome = await send_hello(inbox, [{"name": name, "size": len(data)}])
        assert outcome.reply is not None and outcome.reply["type"] == "accept", outcome
        offset = outcome.reply["offsets"][0]
        assert 0 <= offset <= 3 * CHUNK_SIZE, outcome
        await send_file(inbox, outcome, 0, data, offset=offset)
        await finish(inbox, outcome)
    assert [ack["ok"] for ack in outcome.acks] == [True], outcome
    assert (listener.folder / name).read_bytes() == data
    assert_contained(listener)


async def test_resume_with_different_content_never_keeps_a_mixed_file(
        listener: Listener) -> None:
    # same name and size, other bytes: the whole-file sha256 catches the stale prefix
    name = f"mixed-{next(_attacker_serial)}.bin"
    old, new = os.urandom(4 * CHUNK_SIZE), os.urandom(4 * CHUNK_SIZE)
    sender = attacker()
    await abort_after(listener, sender, name, old, 2 * CHUNK_SIZE)
    async with channel_to(listener.url, sender, LISTENER) as inbox:
        outcome = await send_hello(inbox, [{"name": name, "size": len(new)}])
        assert outcome.reply is not None and outcome.reply["type"] == "accept", outcome
        await send_file(inbox, outcome, 0, new, offset=outcome.reply["offsets"][0])
        await finish(inbox, outcome)
    final = listener.folder / name
    if final.exists():
        assert final.read_bytes() == new, "a file mixing two contents was kept"
    else:
        assert outcome.refused, outcome
    assert_contained(listener)
    await good_transfer_still_works(listener)


async def test_restart_from_zero_after_resume_offer(listener: Listener) -> None:
    # the receiver offered a resume offset; a sender starting at 0 anyway is an error
    # or is handled whole: never a corrupt final file
    name = f"restart-{next(_attacker_serial)}.bin"
    data = os.urandom(4 * CHUNK_SIZE)
    sender = attacker()
    await abort_after(listener, sender, name, data, 2 * CHUNK_SIZE)
    async with channel_to(listener.url, sender, LISTENER) as inbox:
        outcome = await send_hello(inbox, [{"name": name, "size": len(data)}])
        assert outcome.reply is not None and outcome.reply["type"] == "accept", outcome
        await send_file(inbox, outcome, 0, data, offset=0)
        if not outcome.errors:
            await finish(inbox, outcome)
    final = listener.folder / name
    assert not final.exists() or final.read_bytes() == data
    assert_contained(listener)
    await good_transfer_still_works(listener)


HOSTILE_SIGNALS: dict[str, dict[str, Any]] = {
    "offer-garbage-sdp": {"type": "offer", "offer": {"type": "offer", "sdp": "garbage"}},
    "offer-without-sdp": {"type": "offer", "offer": {"type": "offer"}},
    "offer-sdp-not-string": {"type": "offer", "offer": {"type": "offer", "sdp": 7}},
    "offer-typed-answer": {"type": "offer", "offer": {"type": "answer", "sdp": "v=0\r\n"}},
    "unsolicited-answer": {"type": "answer", "answer": {"type": "answer", "sdp": "v=0\r\n"}},
    "garbage-candidate": {"type": "candidate",
                          "candidate": {"candidate": "candidate:garbage", "sdpMid": "0",
                                        "sdpMLineIndex": 0}},
    "candidate-bad-index": {"type": "candidate",
                            "candidate": {"candidate": "candidate:1 1 UDP 1 1.2.3.4 9 typ host",
                                          "sdpMid": "9", "sdpMLineIndex": 99}},
    "leave-unknown": {"type": "leave", "session": "never-seen"},
}


@pytest.mark.parametrize("case", sorted(HOSTILE_SIGNALS))
async def test_hostile_signaling_to_listener(listener: Listener, case: str) -> None:
    # garbage relayed through the server to the listener: it keeps serving others
    async with signaling(listener.url, attacker()) as client:
        await client.send({**HOSTILE_SIGNALS[case], "name": client.name,
                           "othername": LISTENER})
        # whatever the listener answers (leave, nothing), it must not fall over
        await client.quiet(2.0, ignore=lambda message: message["type"] != "error")
        # and the same peer can still make a good offer right after
        name = f"after-{case}-{next(_attacker_serial)}.bin"
        async with offer_channel(client, LISTENER) as inbox:
            outcome = await send_files(inbox, [(name, b"ok\n")])
    assert [ack["ok"] for ack in outcome.acks] == [True], outcome
    assert listener.process.popen.poll() is None, listener.process.stderr
    await good_transfer_still_works(listener)


async def test_offer_without_rtcxfer_channel_is_survived(listener: Listener) -> None:
    # a connection whose only data channel has another label is not a transfer
    async with signaling(listener.url, attacker()) as client:
        connection = new_peer_connection()
        other = connection.createDataChannel("chat")
        try:
            await connection.setLocalDescription(await connection.createOffer())
            await client.relay("offer", LISTENER, description(connection.localDescription))
            reply = await client.reply(30)
            if reply["type"] == "answer":
                await connection.setRemoteDescription(
                    RTCSessionDescription(sdp=reply["answer"]["sdp"], type="answer"))
                await client.quiet(3.0, ignore=lambda message: message["type"] != "error")
                if other.readyState == "open":
                    other.send("hello?")
            else:
                assert reply["type"] == "leave", reply
        finally:
            await connection.close()
    assert listener.process.popen.poll() is None, listener.process.stderr
    await good_transfer_still_works(listener)


async def test_empty_hello_is_handled(listener: Listener) -> None:
    # zero files, total 0: accepted with no offsets and done, or declined; nothing breaks
    async with channel_to(listener.url, attacker(), LISTENER) as inbox:
        outcome = await send_hello(inbox, [])
        if outcome.reply is not None and outcome.reply.get("type") == "accept":
            assert outcome.reply["offsets"] == [], outcome
            assert await finish(inbox, outcome) == {"type": "done"}, outcome
        else:
            assert outcome.reply is not None and outcome.reply["type"] == "decline", outcome
    assert_contained(listener)
    await good_transfer_still_works(listener)


async def test_listener_verification_code_matches_docs_formula(listener: Listener) -> None:
    # docs/protocol.md "Verification code", computed by an outsider from the two SDPs
    sender = attacker()
    async with channel_to(listener.url, sender, LISTENER) as inbox:
        await send_files(inbox, [(f"code-{next(_attacker_serial)}.txt", b"c\n")])
        expected = verification_code(inbox.offer_sdp, inbox.answer_sdp)
    event = await asyncio.to_thread(wait_for_event, listener.process, "offer", peer=sender)
    assert event["code"] == expected, event


async def test_same_name_twice_loses_nothing(listener: Listener) -> None:
    # a second transfer of an existing name never destroys the first file
    name = f"twice-{next(_attacker_serial)}.txt"
    for content in (b"first version\n", b"second version\n"):
        async with channel_to(listener.url, attacker(), LISTENER) as inbox:
            outcome = await send_files(inbox, [(name, content)])
        assert [ack["ok"] for ack in outcome.acks] == [True], outcome
    contents = {path.read_bytes() for path in listener.folder.iterdir() if path.is_file()}
    assert {b"first version\n", b"second version\n"} <= contents


async def test_absurd_size_is_refused_without_allocating(listener: Listener) -> None:
    # 1 PB announced, 1000 bytes sent: refused, and no huge file appears on disk
    name = f"petabyte-{next(_attacker_serial)}.bin"
    async with channel_to(listener.url, attacker(), LISTENER) as inbox:
        outcome = await send_hello(inbox, [{"name": name, "size": 10**15}])
        if outcome.reply is not None and outcome.reply.get("type") == "accept":
            await send_file(inbox, outcome, 0, DATA_1000)
    assert outcome.refused, outcome
    assert not (listener.folder / name).exists()
    for path in listener.folder.rglob("*"):
        if path.is_file():
            assert path.stat().st_size < 10**8, path
    assert_contained(listener)
    await good_transfer_still_works(listener)


async def test_file_and_folder_of_same_name_in_one_offer(listener: Listener) -> None:
    # "x" as a file and "x/y" in one offer cannot both land: fail cleanly, keep serving
    stem = f"clash-{next(_attacker_serial)}"
    outcome = await attempt(listener, [(stem, b"file\n"), (f"{stem}/inner.txt", b"inner\n")])
    assert outcome.reply is not None, outcome
    assert_contained(listener)
    await good_transfer_still_works(listener)


async def test_offer_into_existing_file_as_folder_keeps_the_file(listener: Listener) -> None:
    stem = f"existing-{next(_attacker_serial)}"
    (listener.folder / stem).write_bytes(b"precious\n")
    await attempt(listener, [(f"{stem}/inner.txt", b"inner\n")])
    assert (listener.folder / stem).read_bytes() == b"precious\n"
    assert_contained(listener)
    await good_transfer_still_works(listener)


async def test_symlinked_folder_inside_download_dir_does_not_escape(
        listener: Listener) -> None:
    # D/link -> a folder outside D: "link/evil.txt" would land outside D
    outside = listener.root / f"outside-{next(_attacker_serial)}"
    outside.mkdir()
    link = listener.folder / f"link-{next(_attacker_serial)}"
    link.symlink_to(outside, target_is_directory=True)
    try:
        outcome = await attempt(listener, [(f"{link.name}/evil.txt", b"evil\n")])
        assert list(outside.iterdir()) == [], (outcome, list(outside.iterdir()))
        assert outcome.refused, outcome
    finally:
        link.unlink()
        for leaked in outside.iterdir():
            leaked.unlink()
        outside.rmdir()
    assert listener.process.popen.poll() is None
    await good_transfer_still_works(listener)


async def test_symlinked_file_inside_download_dir_is_not_written_through(
        listener: Listener) -> None:
    # D/name -> a file outside D: receiving "name" must not change the outside file
    outside = listener.root / f"outside-file-{next(_attacker_serial)}.txt"
    outside.write_bytes(b"untouched\n")
    link = listener.folder / f"flink-{next(_attacker_serial)}.txt"
    link.symlink_to(outside)
    try:
        await attempt(listener, [(link.name, b"overwritten?\n")])
        assert outside.read_bytes() == b"untouched\n"
    finally:
        link.unlink()
        outside.unlink()
    assert listener.process.popen.poll() is None
    await good_transfer_still_works(listener)


async def test_binary_after_eof_is_an_error(listener: Listener) -> None:
    # the stray frame after `eof` is a protocol error; a file acked before it stays whole
    name = f"after-eof-{next(_attacker_serial)}.bin"
    outcome = await raw_sequence(listener, name, [
        {"type": "file", "index": 0, "offset": 0}, DATA_1000,
        {"type": "eof", "index": 0, "sha256": sha256_hex(DATA_1000)}, b"stray"])
    assert outcome.errors or outcome.closed, outcome
    final = listener.folder / name
    if any(ack.get("ok") for ack in outcome.acks):
        assert final.read_bytes() == DATA_1000
    else:
        assert not final.exists() or final.read_bytes() == DATA_1000
    assert_contained(listener)
    await good_transfer_still_works(listener)


async def test_second_offer_replaces_one_that_never_connected(listener: Listener) -> None:
    # no `session`: one connection per pair, so a new offer from the same peer is the
    # connection now (a reloaded page, a retry); it must not be swallowed by the old one
    async with signaling(listener.url, attacker()) as client:
        abandoned = new_peer_connection()
        abandoned.createDataChannel("rtcxfer/1")
        try:
            await abandoned.setLocalDescription(await abandoned.createOffer())
            await client.relay("offer", LISTENER, description(abandoned.localDescription))
            while (await client.receive(30))["type"] != "answer":
                pass
        finally:
            await abandoned.close()
        name = f"retry-{next(_attacker_serial)}.bin"
        async with offer_channel(client, LISTENER) as inbox:
            outcome = await send_files(inbox, [(name, b"second offer wins\n")])
    assert [ack["ok"] for ack in outcome.acks] == [True], outcome
    assert (listener.folder / name).read_bytes() == b"second offer wins\n"


async def test_listener_keeps_its_signaling_socket_under_many_senders(tmp_path: Path) -> None:
    # a listener multiplexes every sender over one WebSocket: a burst of legitimate
    # senders must not get it closed by the server's per-connection rate limit
    folder = tmp_path / "busy"
    folder.mkdir()
    with running_server() as (url, server):
        busy = CliProcess(["listen", "--server", url, "--name", "busy-bob", "--yes",
                           "--dir", str(folder), "--json"])
        try:
            await asyncio.to_thread(wait_for_event, busy, "connected", timeout=60)

            async def one_sender(index: int) -> Outcome:
                async with channel_to(url, f"crowd-{index}", "busy-bob") as inbox:
                    return await send_files(inbox, [(f"crowd-{index}.txt", b"x\n")])

            outcomes = await asyncio.gather(
                *(asyncio.wait_for(one_sender(index), 25) for index in range(40)),
                return_exceptions=True)
            lost = json_events(busy, "disconnected")
            failed = json_events(busy, "transfer_failed")
            closes = [line for line in server.stderr_lines if "closing" in line]
            assert not lost, (f"listener lost its server socket {len(lost)} time(s); "
                              f"{len(failed)} transfers failed, e.g. {failed[:1]}; "
                              f"server: {closes[:3]}")
            failures = [outcome for outcome in outcomes if not isinstance(outcome, Outcome)]
            assert not failures, failures[:3]
            assert {path.name for path in folder.iterdir()} \
                >= {f"crowd-{index}.txt" for index in range(40)}
        finally:
            busy.stop()
