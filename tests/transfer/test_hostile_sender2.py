"""A hostile rtcxfer/2 sender against the real receiver: every rule, across batches."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from transfer.peers import WAIT_SECONDS, RecordingObserver, connected_pair

from rtcxfer.errors import TransferFailed
from rtcxfer.protocol.transfer import Error
from rtcxfer.protocol.transfer2 import LIST_AHEAD, Acks, parse_message2
from rtcxfer.transfer import IncomingOffer, TransferReport
from rtcxfer.transfer.receiver2 import receive_any

pytestmark = pytest.mark.usefixtures("loopback_ice")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hello(count: int, total: int, files: list[dict[str, Any]]) -> str:
    return json.dumps({"type": "hello", "version": 2, "count": count, "total": total,
                       "files": files})


def entry(name: str, size: int | None) -> dict[str, Any]:
    return {"name": name, "size": size}


async def _accept(offer: IncomingOffer) -> None:
    return None


async def run_script(inbox: Path, frames: list[str | bytes], *, wait_for: int = 1,
                     ) -> tuple[list[Any], TransferReport | Exception]:
    """Send ``frames`` (waiting for the accept after the first) and collect the replies."""
    replies: list[Any] = []
    got = asyncio.Event()
    task: asyncio.Future[TransferReport] | None = None

    def on_datachannel(channel: Any) -> None:
        nonlocal task
        task = asyncio.ensure_future(receive_any(
            channel, download_dir=inbox, decide=_accept, overwrite=False,
            observer=RecordingObserver()))

    async with connected_pair(on_datachannel) as link:
        def on_message(data: str | bytes) -> None:
            assert isinstance(data, str)
            replies.append(parse_message2(data))
            got.set()

        link.channel.on("message", on_message)
        link.channel.send(frames[0])
        await asyncio.wait_for(got.wait(), WAIT_SECONDS)
        for frame in frames[1:]:
            link.channel.send(frame)
        assert task is not None
        try:
            outcome: TransferReport | Exception = await asyncio.wait_for(task, WAIT_SECONDS)
        except TransferFailed as error:
            outcome = error
    return replies, outcome


def names_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob("*") if path.is_file())


def outside_untouched(tmp_path: Path, inbox: Path) -> None:
    strays = [p for p in tmp_path.rglob("*") if p.is_file() and inbox not in p.parents]
    assert strays == []


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "deep" / "inbox"
    folder.mkdir(parents=True)
    return folder


def first_batch_then(second: list[dict[str, Any]], total: int) -> list[str | bytes]:
    data = b"first"
    return [
        hello(1 + len(second), total, [entry("ok/first.txt", len(data))]),
        json.dumps({"type": "file", "index": 0, "offset": 0}), data,
        json.dumps({"type": "eof", "index": 0, "sha256": sha(data)}),
        json.dumps({"type": "list", "first": 1, "files": second}),
    ]


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "ok/../../x", "a\\b",
                                  "C:evil", "nul.txt", "x\x1b[2J", "ok/first.txt",
                                  "ok/first.txt/inside", "ok", ".y.rtcxfer-part", ""])
async def test_bad_name_in_a_later_batch_ends_the_transfer(tmp_path: Path, inbox: Path,
                                                           name: str) -> None:
    replies, outcome = await run_script(inbox, first_batch_then([entry(name, 0)], 5))
    assert isinstance(outcome, TransferFailed)
    errors = [r for r in replies if isinstance(r, Error)]
    assert errors and "refused file name" in errors[0].message
    # The first batch's file was acked and stays; nothing of the bad batch is written.
    assert (inbox / "ok" / "first.txt").read_bytes() == b"first"
    assert names_in(inbox) == ["first.txt"]
    outside_untouched(tmp_path, inbox)


async def test_total_exceeded_in_a_later_batch(tmp_path: Path, inbox: Path) -> None:
    _replies, outcome = await run_script(inbox, first_batch_then([entry("b", 10)], 5))
    assert isinstance(outcome, TransferFailed) and "total" in str(outcome)


async def test_more_bytes_than_announced_fails_that_file_only(inbox: Path) -> None:
    data = os.urandom(4000)
    frames: list[str | bytes] = [
        hello(2, 10, [entry("a", 5), entry("b", 5)]),
        json.dumps({"type": "file", "index": 0, "offset": 0}), data,
        json.dumps({"type": "eof", "index": 0, "sha256": sha(data)}),
        json.dumps({"type": "file", "index": 1, "offset": 0}), b"12345",
        json.dumps({"type": "eof", "index": 1, "sha256": sha(b"12345")}),
        json.dumps({"type": "done"}),
    ]
    replies, outcome = await run_script(inbox, frames)
    assert isinstance(outcome, TransferReport) and not outcome.ok
    acks = [r for r in replies if isinstance(r, Acks)]
    assert acks[-1].upto == 2
    assert [index for a in acks for index, _ in a.failed] == [0]
    assert names_in(inbox) == ["b"]


async def test_wrong_sha256_leaves_nothing(inbox: Path) -> None:
    frames: list[str | bytes] = [
        hello(1, 5, [entry("a", 5)]),
        json.dumps({"type": "file", "index": 0, "offset": 0}), b"12345",
        json.dumps({"type": "eof", "index": 0, "sha256": sha(b"54321")}),
        json.dumps({"type": "done"}),
    ]
    replies, _outcome = await run_script(inbox, frames)
    acks = [r for r in replies if isinstance(r, Acks)]
    assert acks[-1].failed and "sha256" in acks[-1].failed[0][1]
    assert names_in(inbox) == []


async def test_stream_whose_eof_lies_about_its_size(inbox: Path) -> None:
    frames: list[str | bytes] = [
        hello(1, 0, [entry("s", None)]),
        json.dumps({"type": "file", "index": 0, "offset": 0}), b"abc",
        json.dumps({"type": "eof", "index": 0, "sha256": sha(b"abc"), "size": 4}),
        json.dumps({"type": "done"}),
    ]
    replies, _outcome = await run_script(inbox, frames)
    acks = [r for r in replies if isinstance(r, Acks)]
    assert acks[-1].failed
    assert names_in(inbox) == []


async def test_list_beyond_list_ahead(inbox: Path) -> None:
    frames: list[str | bytes] = [hello(LIST_AHEAD + 2, 0, [entry("f0", 0)])]
    first = 1
    while first <= LIST_AHEAD:
        batch = [entry(f"f{i}", 0) for i in range(first, min(first + 2000, LIST_AHEAD + 2))]
        frames.append(json.dumps({"type": "list", "first": first, "files": batch}))
        first += len(batch)
    _replies, outcome = await run_script(inbox, frames)
    assert isinstance(outcome, TransferFailed) and str(LIST_AHEAD) in str(outcome)


async def test_text_that_is_not_utf8(inbox: Path) -> None:
    bad = b"\xff\xfe"
    frames: list[str | bytes] = [
        json.dumps({"type": "hello", "version": 2, "count": 1, "total": 2,
                    "files": [{"name": "text", "size": 2, "text": True}]}),
        json.dumps({"type": "file", "index": 0, "offset": 0}), bad,
        json.dumps({"type": "eof", "index": 0, "sha256": sha(bad)}),
        json.dumps({"type": "done"}),
    ]
    replies, _outcome = await run_script(inbox, frames)
    acks = [r for r in replies if isinstance(r, Acks)]
    assert acks[-1].failed and "UTF-8" in acks[-1].failed[0][1]


async def test_symlink_in_the_download_folder_is_not_followed(tmp_path: Path,
                                                              inbox: Path) -> None:
    (inbox / "link").symlink_to(tmp_path)
    frames: list[str | bytes] = [
        hello(1, 3, [entry("link/x", 3)]),
        json.dumps({"type": "file", "index": 0, "offset": 0}), b"abc",
        json.dumps({"type": "eof", "index": 0, "sha256": sha(b"abc")}),
        json.dumps({"type": "done"}),
    ]
    replies, _outcome = await run_script(inbox, frames)
    acks = [r for r in replies if isinstance(r, Acks)]
    assert acks[-1].failed
    assert not (tmp_path / "x").exists()
    outside_untouched(tmp_path, inbox)


def pack(*files: tuple[int, int, bytes]) -> str:
    return json.dumps({"type": "pack", "files": [
        {"index": index, "offset": offset, "length": len(data), "sha256": sha(data)}
        for index, offset, data in files]})


async def test_pack_lands_several_files(inbox: Path) -> None:
    frames: list[str | bytes] = [
        hello(3, 6, [entry("a", 1), entry("b", 0), entry("c", 5)]),
        pack((0, 0, b"a"), (1, 0, b""), (2, 0, b"ccccc")), b"accccc",
        json.dumps({"type": "done"}),
    ]
    _replies, outcome = await run_script(inbox, frames)
    assert isinstance(outcome, TransferReport) and outcome.ok and outcome.files == 3
    assert (inbox / "c").read_bytes() == b"ccccc" and (inbox / "b").read_bytes() == b""


@pytest.mark.parametrize("frames", [
    # The binary frame is shorter than the pack says.
    [pack((0, 0, b"aaaa")), b"aaa"],
    # A pack that covers less than the whole file.
    [pack((0, 0, b"aa")), b"aa"],
    # A control message where the pack's frame is due.
    [pack((0, 0, b"aaaa")), json.dumps({"type": "done"})],
    # A pack for a file out of order.
    [pack((1, 0, b"")), b""],
])
async def test_broken_packs_are_protocol_violations(inbox: Path,
                                                    frames: list[str | bytes]) -> None:
    script: list[str | bytes] = [hello(2, 4, [entry("a", 4), entry("b", 0)]),
                                 *[frame for frame in frames if frame != b""]]
    _replies, outcome = await run_script(inbox, script)
    assert isinstance(outcome, TransferFailed) and "protocol" in str(outcome)
    # Only a part file (kept for a resume, as after any broken transfer) may be left.
    assert [name for name in names_in(inbox) if ".rtcxfer-part" not in name] == []
