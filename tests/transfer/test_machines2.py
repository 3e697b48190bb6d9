"""The rtcxfer/2 machines driven by hand: the shared vectors, windows, memory per file."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from rtcxfer.protocol.transfer import Done, FileStart
from rtcxfer.protocol.transfer2 import (
    LIST_AHEAD,
    WINDOW,
    Accept2,
    Acks,
    Entry,
    Eof2,
    Have,
    Hello2,
    ListBatch,
)
from rtcxfer.transfer.machines2 import (
    Fail,
    Finished,
    ListMore,
    LookupOffsets,
    ReceiverMachine2,
    Send,
    SenderMachine2,
    StreamFile,
    VerifyFile,
)

VECTORS = Path(__file__).parents[1] / "vectors"
SHA = "cd" * 32


def _load_replay():  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location("vectors_machines2", VECTORS / "machines2.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


replayer = _load_replay()


@pytest.mark.parametrize("path", replayer.vector_files(), ids=lambda path: path.stem)
def test_vector(path: Path) -> None:
    vector = json.loads(path.read_text())
    got = replayer.replay(vector)
    for number, (item, actions) in enumerate(zip(vector["steps"], got, strict=True)):
        assert actions == item["expect"], f"step {number}: {item['event']}"


def test_there_are_vectors_for_both_machines() -> None:
    machines = {json.loads(path.read_text())["machine"] for path in replayer.vector_files()}
    assert machines == {"sender", "receiver"}


def _entries(first: int, count: int) -> tuple[Entry, ...]:
    return tuple(Entry(f"d{index % 50}/file-{index}.bin", 1, 1.0) for index in
                 range(first, first + count))


def _accepted_receiver(count: int, batch: int) -> ReceiverMachine2:
    receiver = ReceiverMachine2()
    receiver.receive_message(Hello2(version=2, count=count, total=count,
                                    files=_entries(0, batch)))
    receiver.decide(None, [0] * batch)
    return receiver


def test_receiver_refuses_a_file_beyond_the_window() -> None:
    receiver = _accepted_receiver(WINDOW + 1, WINDOW + 1)
    for index in range(WINDOW):
        assert receiver.receive_message(FileStart(index, 0))
        receiver.receive_chunk(1)
        (verify,) = receiver.receive_message(Eof2(index, SHA, None))
        assert isinstance(verify, VerifyFile)
    actions = receiver.receive_message(FileStart(WINDOW, 0))
    assert any(isinstance(a, Fail) and "window" in a.reason for a in actions)


def test_receiver_accepts_the_next_file_once_the_window_moves() -> None:
    receiver = _accepted_receiver(WINDOW + 1, WINDOW + 1)
    for index in range(WINDOW):
        receiver.receive_message(FileStart(index, 0))
        receiver.receive_chunk(1)
        receiver.receive_message(Eof2(index, SHA, None))
    (ack,) = receiver.files_settled([(0, None)])
    assert isinstance(ack, Send) and ack.message == Acks(upto=1)
    (opened,) = receiver.receive_message(FileStart(WINDOW, 0))
    assert type(opened).__name__ == "OpenFile"


def test_receiver_refuses_a_list_beyond_list_ahead() -> None:
    receiver = _accepted_receiver(LIST_AHEAD + 10, 10)
    (lookup,) = receiver.receive_message(ListBatch(10, _entries(10, LIST_AHEAD - 10)))
    assert isinstance(lookup, LookupOffsets)
    actions = receiver.receive_message(ListBatch(LIST_AHEAD, _entries(LIST_AHEAD, 1)))
    assert any(isinstance(a, Fail) and str(LIST_AHEAD) in a.reason for a in actions)


def test_sender_keeps_to_its_window_and_list_ahead() -> None:
    count = LIST_AHEAD * 2
    sender = SenderMachine2(count, count)
    sender.start(_entries(0, 100), compatible=False)
    actions = sender.receive_message(Accept2(offsets=(0,) * 100, version=2))
    (more,) = [a for a in actions if isinstance(a, ListMore)]
    assert more.limit == LIST_AHEAD - 100
    sender.list_batch(_entries(100, more.limit))
    sender.receive_message(Have(100, (0,) * more.limit))
    started = 1
    for index in range(WINDOW - 1):
        actions = sender.file_sent(index, SHA, 1)
        started += sum(isinstance(a, StreamFile) for a in actions)
    assert started == WINDOW
    assert not [a for a in sender.file_sent(WINDOW - 1, SHA, 1) if isinstance(a, StreamFile)]
    actions = sender.receive_message(Acks(upto=1))
    assert [a for a in actions if isinstance(a, StreamFile)] == [StreamFile(WINDOW, 0)]
    assert any(isinstance(a, ListMore) and a.limit == 1 for a in actions)


def _run_receiver(count: int, batch: int) -> ReceiverMachine2:
    receiver = _accepted_receiver(count, batch)
    listed = batch
    next_file = 0
    while next_file < count:
        if listed < count and listed < receiver.settled + LIST_AHEAD - batch:
            size = min(batch, count - listed)
            (lookup,) = receiver.receive_message(ListBatch(listed, _entries(listed, size)))
            assert isinstance(lookup, LookupOffsets)
            receiver.offsets_found(listed, [0] * size)
            listed += size
        for _ in range(batch):
            if next_file >= min(listed, count):
                break
            receiver.receive_message(FileStart(next_file, 0))
            receiver.receive_chunk(1)
            receiver.receive_message(Eof2(next_file, SHA, None))
            receiver.file_settled(next_file, None)
            next_file += 1
    actions = receiver.receive_message(Done())
    assert any(isinstance(a, Finished) and a.failed == 0 for a in actions)
    return receiver


def test_receiver_state_per_file_is_small() -> None:
    """Memory that stays after a transfer of N files, per file (docs: < 512 bytes)."""
    small, large = 2_000, 42_000
    tracemalloc.start()
    try:
        first = _run_receiver(small, 1000)
        before = tracemalloc.get_traced_memory()[0]
        second = _run_receiver(large, 1000)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    per_file = (after - before) / (large - small)
    print(f"receiver machine: {per_file:.0f} bytes per file")
    assert first.settled == small and second.settled == large
    assert per_file < 512


@pytest.mark.parametrize(("names", "problem"), [
    (["d/x", "d/y", "d/x/z"], "inside another file"),
    (["d/e/f", "d/e/g", "d/e"], "both a file and a folder"),
    (["d/e/f", "d/e/g", "d"], "both a file and a folder"),
    (["a/b", "A/b"], None),
    (["x/Ǆ", "x/ǆ"], None),
])
def test_name_guard(names: list[str], problem: str | None) -> None:
    from rtcxfer.transfer.names2 import NameGuard
    from rtcxfer.transfer.paths import UnsafeName

    guard = NameGuard(fold_case=False)
    if problem is None:
        for name in names:
            guard.add(name)
        folded = NameGuard(fold_case=True)
        folded.add(names[0])
        with pytest.raises(UnsafeName, match="twice"):
            folded.add(names[1])
        return
    for name in names[:-1]:
        guard.add(name)
    with pytest.raises(UnsafeName, match=problem):
        guard.add(names[-1])
