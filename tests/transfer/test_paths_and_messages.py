"""Name validation and the rtcxfer/1 message codec."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcxfer.protocol.transfer import (
    MAX_TEXT_LENGTH,
    Accept,
    Ack,
    Decline,
    Done,
    Eof,
    Error,
    FileEntry,
    FileStart,
    Hello,
    TransferProtocolError,
    encode_message,
    parse_message,
)
from rtcxfer.transfer.paths import UnsafeName, split_name, validate_offer

ROOT = "/srv/downloads"


@settings(deadline=None)  # the machine is shared: wall-clock deadlines would flake
@given(st.text(min_size=1, max_size=300))
def test_every_accepted_name_stays_inside_the_download_folder(name: str) -> None:
    try:
        components = split_name(name)
    except UnsafeName:
        return
    joined = os.path.normpath(os.path.join(ROOT, name))
    assert joined.startswith(ROOT + "/")
    assert os.path.relpath(joined, ROOT).split("/") == list(components)


@settings(deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "..", ".", "", "c.txt", "CON", "x\x00"]),
                min_size=1, max_size=6))
def test_names_built_from_dangerous_parts(parts: list[str]) -> None:
    name = "/".join(parts)
    bad = {"..", ".", "", "CON", "x\x00"}
    if bad & set(parts):
        with pytest.raises(UnsafeName):
            split_name(name)
    else:
        assert split_name(name) == tuple(parts)


@pytest.mark.parametrize("name", [
    "report.pdf", "docs/a.pdf", ".bashrc", "..hidden", "a..b", "meeting 10:30.txt",
    "ünïcødé/日本語.txt", "COM10", "console.txt", "x" * 255, "a b/c d",
])
def test_ordinary_names_are_accepted(name: str) -> None:
    assert split_name(name) == tuple(name.split("/"))


@pytest.mark.parametrize(("name", "reason"), [
    ("../x", "'..'"), ("/etc/passwd", "absolute"), ("c:x", "drive letter"),
    ("a\\b", "backslash"), ("a\x00b", "control character"), ("a\nb", "control character"),
    ("a\x85b", "control character"), ("aux.tar.gz", "AUX"), ("dir/Lpt9", "LPT9"),
    ("nul ", "NUL"), ("é" * 128, "255 bytes"), ("a/" * 2048 + "b", "4096 bytes"),
    ("\ud800", "Unicode"), ("x.rtcxfer-part", "partial download"),
    ("x.rtcxfer-part.json", "partial download"), ("", "empty"),
])
def test_hostile_names_are_refused_with_a_reason(name: str, reason: str) -> None:
    with pytest.raises(UnsafeName, match=reason):
        split_name(name)


def offer(*names: str) -> Hello:
    return Hello(files=tuple(FileEntry(name, 1, None) for name in names), total=len(names))


@pytest.mark.parametrize(("names", "reason"), [
    (("a", "a"), "twice"),
    (("a/b", "a"), "both a file and a folder"),
    (("a", "a/b"), "inside another file"),
])
def test_offers_with_clashing_names_are_refused(names: tuple[str, ...], reason: str) -> None:
    with pytest.raises(UnsafeName, match=reason):
        validate_offer(offer(*names))


def test_offer_with_shared_folders_is_fine() -> None:
    result = validate_offer(offer("d/a", "d/b", "d/e/f"))
    assert [entry.name for entry in result.files] == ["d/a", "d/b", "d/e/f"]


MESSAGES = [
    Hello(files=(FileEntry("a", 3, 1.5), FileEntry("b/c", 0, None)), total=3),
    Accept((0, 7)), Decline("busy"), FileStart(2, 10), Eof(1, "0f" * 32),
    Ack(0, True), Ack(1, False, "sha256 mismatch"), Done(), Error("oops"),
]


@pytest.mark.parametrize("message", MESSAGES)
def test_every_message_survives_a_round_trip(message: object) -> None:
    assert parse_message(encode_message(message)) == message  # type: ignore[arg-type]


def test_wire_shapes_match_the_contract() -> None:
    assert json.loads(encode_message(MESSAGES[0])) == {
        "type": "hello", "version": 1, "total": 3,
        "files": [{"name": "a", "size": 3, "mtime": 1.5}, {"name": "b/c", "size": 0}],
    }
    assert json.loads(encode_message(FileStart(2, 10))) == {
        "type": "file", "index": 2, "offset": 10}
    assert json.loads(encode_message(Ack(0, True))) == {"type": "ack", "index": 0, "ok": True}


@pytest.mark.parametrize(("frame", "complaint"), [
    ("{", "not valid JSON"), ("[]", "not a JSON object"), ('{"type":1}', "no string 'type'"),
    ('{"type":"warp"}', "unknown control message type"),
    ('{"type":"hello","version":1,"files":{},"total":0}', "'files' must be an array"),
    ('{"type":"hello","version":true,"files":[],"total":0}', "unsupported version"),
    ('{"type":"hello","version":1,"files":[{"name":1,"size":1}],"total":1}', "'name'"),
    ('{"type":"hello","version":1,"files":[{"name":"a","size":1.5}],"total":1.5}', "'size'"),
    ('{"type":"hello","version":1,"files":[{"name":"a","size":true}],"total":1}', "'size'"),
    ('{"type":"hello","version":1,"files":[{"name":"a","size":1,"mtime":"x"}],"total":1}',
     "'mtime'"),
    ('{"type":"hello","version":1,"files":[],"total":4}', "add up to 0"),
    ('{"type":"accept","offsets":[-1]}', "'offsets'"),
    ('{"type":"file","index":0}', "'offset'"),
    ('{"type":"eof","index":0,"sha256":"zz"}', "64 hexadecimal"),
    ('{"type":"ack","index":0,"ok":"yes"}', "'ok'"),
])
def test_malformed_frames_are_named(frame: str, complaint: str) -> None:
    with pytest.raises(TransferProtocolError, match=complaint):
        parse_message(frame)


def test_too_many_files_is_refused_before_anything_else() -> None:
    files = [{"name": f"f{index}", "size": 0} for index in range(100_001)]
    frame = json.dumps({"type": "hello", "version": 1, "files": files, "total": 0})
    with pytest.raises(TransferProtocolError, match="more than 100000 files"):
        parse_message(frame)


def test_long_texts_from_the_peer_are_cut() -> None:
    message = parse_message(json.dumps({"type": "error", "message": "x" * 10_000}))
    assert isinstance(message, Error) and len(message.message) == MAX_TEXT_LENGTH


def test_uppercase_sha256_is_accepted_and_normalised() -> None:
    assert parse_message('{"type":"eof","index":0,"sha256":"' + "AB" * 32 + '"}') == Eof(
        0, "ab" * 32)


def test_ack_extensions_round_trip_and_are_optional() -> None:
    ack = Ack(index=2, ok=True, saved_as="docs/hello (1).txt", resumed_from=268435456)
    frame = encode_message(ack)
    assert json.loads(frame) == {"type": "ack", "index": 2, "ok": True,
                                 "saved_as": "docs/hello (1).txt", "resumed_from": 268435456}
    assert parse_message(frame) == ack
    # A plain ack (a peer written to PROTOCOL.md alone) has neither, and says neither.
    assert parse_message('{"type":"ack","index":0,"ok":true}') == Ack(0, True)
    assert json.loads(encode_message(Ack(0, True))) == {"type": "ack", "index": 0, "ok": True}


@pytest.mark.parametrize("extra", [
    '"saved_as":5', '"saved_as":""', '"saved_as":null', '"resumed_from":"7"',
    '"resumed_from":-1', '"resumed_from":true', '"resumed_from":1.5', '"resumed_from":0',
])
def test_malformed_ack_extensions_are_ignored(extra: str) -> None:
    assert parse_message('{"type":"ack","index":1,"ok":true,' + extra + "}") == Ack(1, True)


def test_ack_extensions_of_a_refused_file_are_ignored() -> None:
    frame = '{"type":"ack","index":1,"ok":false,"reason":"x","saved_as":"y","resumed_from":3}'
    assert parse_message(frame) == Ack(1, False, "x")


def test_saved_as_is_cut_like_other_peer_text() -> None:
    long = "a" * 5000
    ack = parse_message('{"type":"ack","index":0,"ok":true,"saved_as":"' + long + '"}')
    assert isinstance(ack, Ack) and ack.saved_as is not None and len(ack.saved_as) == 1000
