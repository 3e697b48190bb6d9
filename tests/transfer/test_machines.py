"""The sender and receiver state machines, driven by hand: no network, no disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcxfer.protocol.transfer import (
    Accept,
    Ack,
    Decline,
    Done,
    Eof,
    Error,
    FileEntry,
    FileStart,
    Hello,
)
from rtcxfer.transfer.machines import (
    AskDecision,
    Declined,
    DiscardFile,
    Fail,
    FileOutcome,
    Finished,
    OpenFile,
    ReceiverMachine,
    ReceiverState,
    Send,
    SenderMachine,
    SenderState,
    StreamFile,
    VerifyFile,
    WriteChunk,
)

A = FileEntry("a.txt", 10, None)
B = FileEntry("dir/b.txt", 0, 1.5)
SHA = "ab" * 32


def sent(actions: tuple[object, ...]) -> list[object]:
    return [action.message for action in actions if isinstance(action, Send)]


def is_violation(actions: tuple[object, ...]) -> bool:
    messages = sent(actions)
    return (
        len(messages) == 1 and isinstance(messages[0], Error)
        and messages[0].message.startswith("protocol violation")
        and isinstance(actions[-1], Fail) and actions[-1].close_channel
    )


# Sender ---------------------------------------------------------------------------


def started_sender(*files: FileEntry) -> SenderMachine:
    machine = SenderMachine(files)
    assert sent(machine.start()) == [Hello(files=files, total=sum(f.size for f in files))]
    assert machine.state is SenderState.AWAITING_ACCEPT
    return machine


def test_sender_happy_path() -> None:
    machine = started_sender(A, B)
    assert machine.receive_message(Accept((4, 0))) == (
        Send(FileStart(0, 4)), StreamFile(0, 4))
    assert machine.state is SenderState.SENDING_FILE
    assert machine.file_sent(0, SHA) == (Send(Eof(0, SHA)),)
    assert machine.state is SenderState.AWAITING_ACK
    assert machine.receive_message(Ack(0, True)) == (
        FileOutcome(0, True, None), Send(FileStart(1, 0)), StreamFile(1, 0))
    machine.file_sent(1, SHA)
    assert machine.receive_message(Ack(1, True)) == (FileOutcome(1, True, None), Send(Done()))
    assert machine.state is SenderState.AWAITING_DONE
    assert machine.receive_message(Done()) == (Finished(()),)
    assert machine.state is SenderState.DONE


def test_sender_with_no_files_goes_straight_to_done() -> None:
    machine = started_sender()
    assert machine.receive_message(Accept(())) == (Send(Done()),)
    assert machine.receive_message(Done()) == (Finished(()),)


def test_sender_keeps_going_after_a_refused_file_and_reports_it() -> None:
    machine = started_sender(A, B)
    machine.receive_message(Accept((0, 0)))
    machine.file_sent(0, SHA)
    actions = machine.receive_message(Ack(0, False, "sha256 mismatch"))
    assert actions[0] == FileOutcome(0, False, "sha256 mismatch")
    assert StreamFile(1, 0) in actions
    machine.file_sent(1, SHA)
    machine.receive_message(Ack(1, True))
    assert machine.receive_message(Done()) == (Finished(((0, "sha256 mismatch"),)),)


def test_sender_declined() -> None:
    machine = started_sender(A)
    assert machine.receive_message(Decline("no thanks")) == (Declined("no thanks"),)
    assert machine.state is SenderState.DECLINED
    assert machine.receive_message(Accept((0,))) == ()


def test_sender_peer_error_fails_without_closing_ourselves() -> None:
    machine = started_sender(A)
    machine.receive_message(Accept((0,)))
    actions = machine.receive_message(Error("out of space"))
    assert actions == (Fail("the receiver reported an error: out of space", False),)
    assert machine.state is SenderState.FAILED


@pytest.mark.parametrize("offsets", [(), (0, 0, 0), (11, 0)])
def test_sender_rejects_bad_accept(offsets: tuple[int, ...]) -> None:
    machine = started_sender(A, B)
    assert is_violation(machine.receive_message(Accept(offsets)))
    assert machine.state is SenderState.FAILED


@pytest.mark.parametrize("message", [
    Ack(0, True), Done(), FileStart(0, 0), Hello(files=(), total=0), Eof(0, SHA),
])
def test_sender_rejects_out_of_order_messages_before_accept(message: object) -> None:
    machine = started_sender(A)
    assert is_violation(machine.receive_message(message))  # type: ignore[arg-type]


def test_sender_rejects_ack_while_streaming_and_ack_for_another_file() -> None:
    streaming = started_sender(A, B)
    streaming.receive_message(Accept((0, 0)))
    assert is_violation(streaming.receive_message(Ack(0, True)))
    waiting = started_sender(A, B)
    waiting.receive_message(Accept((0, 0)))
    waiting.file_sent(0, SHA)
    assert is_violation(waiting.receive_message(Ack(1, True)))


def test_sender_rejects_binary_frames_and_early_done() -> None:
    machine = started_sender(A)
    assert is_violation(machine.receive_chunk(10))
    early = started_sender(A)
    early.receive_message(Accept((0,)))
    early.file_sent(0, SHA)
    assert is_violation(early.receive_message(Done()))


def test_sender_channel_closed_and_abort() -> None:
    machine = started_sender(A)
    machine.receive_message(Accept((0,)))
    (fail,) = machine.channel_closed()
    assert isinstance(fail, Fail) and not fail.close_channel
    assert machine.channel_closed() == ()
    aborting = started_sender(A)
    actions = aborting.abort("cannot read a.txt")
    assert sent(actions) == [Error("cannot read a.txt")]
    assert aborting.abort("again") == ()


def test_sender_cannot_start_twice_or_report_an_unstarted_file() -> None:
    machine = started_sender(A)
    with pytest.raises(RuntimeError):
        machine.start()
    with pytest.raises(RuntimeError):
        machine.file_sent(0, SHA)


# Receiver -------------------------------------------------------------------------


def accepted_receiver(*files: FileEntry, offsets: tuple[int, ...] | None = None,
                      ) -> ReceiverMachine:
    machine = ReceiverMachine()
    actions = machine.receive_message(Hello(files=files, total=sum(f.size for f in files)))
    assert len(actions) == 1 and isinstance(actions[0], AskDecision)
    assert actions[0].offer.files == files
    assert machine.state is ReceiverState.DECIDING
    held = offsets if offsets is not None else (0,) * len(files)
    assert sent(machine.decide(None, held)) == [Accept(held)]
    assert machine.state is ReceiverState.AWAITING_FILE
    return machine


def test_receiver_happy_path() -> None:
    machine = accepted_receiver(A, B, offsets=(4, 0))
    assert machine.receive_message(FileStart(0, 4)) == (OpenFile(0, A, 4),)
    assert machine.state is ReceiverState.RECEIVING_FILE
    assert machine.receive_chunk(3) == (WriteChunk(0),)
    assert machine.receive_chunk(3) == (WriteChunk(0),)
    assert machine.receive_message(Eof(0, SHA)) == (VerifyFile(0, SHA),)
    assert machine.receive_message(FileStart(1, 0)) == (OpenFile(1, B, 0),)
    assert machine.receive_message(Eof(1, SHA)) == (VerifyFile(1, SHA),)
    assert machine.receive_message(Done()) == ()  # verifications still running
    path = Path("/downloads/a.txt")
    # File 0 resumed from byte 4: its ack says so (extension, docs/protocol.md).
    assert machine.file_verified(0, True, None, path) == (
        Send(Ack(0, True, resumed_from=4)), FileOutcome(0, True, None, path, resumed_from=4))
    actions = machine.file_verified(1, True, None, None)
    assert sent(actions) == [Ack(1, True), Done()]
    assert actions[-1] == Finished(())
    assert machine.state is ReceiverState.DONE


def test_receiver_decline_by_user() -> None:
    machine = ReceiverMachine()
    machine.receive_message(Hello(files=(A,), total=10))
    assert machine.decide("busy", ()) == (Send(Decline("busy")), Declined("busy"))
    assert machine.state is ReceiverState.DECLINED


def test_receiver_declines_hostile_names_without_asking() -> None:
    machine = ReceiverMachine()
    actions = machine.receive_message(Hello(files=(FileEntry("../x", 1, None),), total=1))
    (decline,) = sent(actions)
    assert isinstance(decline, Decline) and "'../x'" in decline.reason
    assert isinstance(actions[-1], Declined)


def test_receiver_rejects_offsets_that_do_not_fit_the_offer() -> None:
    machine = ReceiverMachine()
    machine.receive_message(Hello(files=(A,), total=10))
    with pytest.raises(ValueError):
        machine.decide(None, (11,))


def test_receiver_size_that_lies_upward_fails_the_file_at_once() -> None:
    machine = accepted_receiver(A, B)
    machine.receive_message(FileStart(0, 0))
    assert machine.receive_chunk(8) == (WriteChunk(0),)
    assert machine.receive_chunk(8) == (DiscardFile(0),)
    assert machine.receive_chunk(8) == ()  # dropped until eof
    actions = machine.receive_message(Eof(0, SHA))
    (ack,) = sent(actions)
    assert ack == Ack(0, False, "the sender sent more than the announced 10 bytes")
    assert machine.state is ReceiverState.AWAITING_FILE
    assert machine.receive_message(FileStart(1, 0)) == (OpenFile(1, B, 0),)


def test_receiver_size_that_lies_downward_fails_at_eof() -> None:
    machine = accepted_receiver(A)
    machine.receive_message(FileStart(0, 0))
    machine.receive_chunk(4)
    actions = machine.receive_message(Eof(0, SHA))
    assert actions[0] == DiscardFile(0)
    assert sent(actions) == [Ack(0, False, "the sender announced 10 bytes but sent 4")]


def test_receiver_local_write_failure_refuses_the_file_at_eof() -> None:
    machine = accepted_receiver(A)
    machine.receive_message(FileStart(0, 0))
    machine.fail_current(0, "the receiver's disk is full")
    assert machine.receive_chunk(10) == ()
    assert sent(machine.receive_message(Eof(0, SHA))) == [
        Ack(0, False, "the receiver's disk is full")]


def test_receiver_failed_verification_is_acked_false_and_reported_in_finished() -> None:
    machine = accepted_receiver(B)
    machine.receive_message(FileStart(0, 0))
    machine.receive_message(Eof(0, SHA))
    assert sent(machine.file_verified(0, False, "sha256 mismatch", None)) == [
        Ack(0, False, "sha256 mismatch")]
    assert machine.receive_message(Done())[-1] == Finished(((0, "sha256 mismatch"),))


@pytest.mark.parametrize(("setup", "message"), [
    ("hello", Eof(0, SHA)),
    ("hello", Done()),
    ("hello", FileStart(1, 0)),
    ("hello", FileStart(0, 5)),
    ("hello", Hello(files=(A,), total=10)),
    ("hello", Ack(0, True)),
    ("file", Eof(1, SHA)),
    ("file", FileStart(1, 0)),
    ("file", Done()),
    ("file", Accept((0,))),
])
def test_receiver_rejects_out_of_order_messages(setup: str, message: object) -> None:
    machine = accepted_receiver(A, B, offsets=(4, 0))
    if setup == "file":
        machine.receive_message(FileStart(0, 0))
    assert is_violation(machine.receive_message(message))  # type: ignore[arg-type]
    assert machine.state is ReceiverState.FAILED
    assert machine.receive_chunk(1) == ()


def test_receiver_rejects_anything_before_hello_and_while_deciding() -> None:
    assert is_violation(ReceiverMachine().receive_message(FileStart(0, 0)))
    assert is_violation(ReceiverMachine().receive_chunk(1))
    deciding = ReceiverMachine()
    deciding.receive_message(Hello(files=(A,), total=10))
    assert is_violation(deciding.receive_message(FileStart(0, 0)))
    assert deciding.decide(None, (0,)) == ()  # too late: the transfer is over


def test_receiver_rejects_chunk_between_files_and_duplicate_hello() -> None:
    machine = accepted_receiver(A)
    assert is_violation(machine.receive_chunk(1))
    again = accepted_receiver(A)
    assert is_violation(again.receive_message(Hello(files=(A,), total=10)))


def test_receiver_resumed_file_counts_from_its_offset() -> None:
    machine = accepted_receiver(A, offsets=(10,))
    machine.receive_message(FileStart(0, 10))
    assert machine.receive_chunk(1) == (DiscardFile(0),)


def test_receiver_sender_may_restart_below_the_offered_offset() -> None:
    machine = accepted_receiver(A, offsets=(6,))
    assert machine.receive_message(FileStart(0, 2)) == (OpenFile(0, A, 2),)
    assert machine.receive_chunk(8) == (WriteChunk(0),)


def test_receiver_peer_error_channel_close_and_abort() -> None:
    machine = accepted_receiver(A)
    assert machine.receive_message(Error("bye")) == (
        Fail("the sender reported an error: bye", False),)
    closed = accepted_receiver(A)
    (fail,) = closed.channel_closed()
    assert isinstance(fail, Fail) and "closed" in fail.reason
    aborted = accepted_receiver(A)
    assert sent(aborted.abort("the receiver was interrupted")) == [
        Error("the receiver was interrupted")]
    assert aborted.channel_closed() == ()


def test_receiver_rejects_a_file_past_the_last_one() -> None:
    machine = accepted_receiver(B)
    machine.receive_message(FileStart(0, 0))
    machine.receive_message(Eof(0, SHA))
    assert is_violation(machine.receive_message(FileStart(1, 0)))


# Any sequence of peer input: the machines answer with actions, never an exception ------

_indices = st.integers(min_value=0, max_value=3)
_sizes = st.integers(min_value=0, max_value=20)
_entries = st.builds(FileEntry, st.sampled_from(["a", "b/c", "d.txt"]), _sizes,
                     st.none() | st.floats(0, 1e9))
_messages = st.one_of(
    st.builds(lambda files: Hello(files=tuple(files), total=sum(f.size for f in files)),
              st.lists(_entries, max_size=3, unique_by=lambda entry: entry.name)),
    st.builds(Accept, st.lists(_sizes, max_size=4).map(tuple)),
    st.builds(Decline, st.just("no")),
    st.builds(FileStart, _indices, _sizes),
    st.builds(Eof, _indices, st.just(SHA)),
    st.builds(Ack, _indices, st.booleans()),
    st.just(Done()),
    st.builds(Error, st.just("boom")),
)
_peer_input = st.one_of(_messages, _sizes)  # an int is a binary frame of that length


@settings(deadline=None, max_examples=300)
@given(st.lists(st.one_of(_peer_input, st.just("verify"), st.just("decide")), max_size=30))
def test_receiver_survives_any_input(events: list[object]) -> None:
    machine = ReceiverMachine()
    for event in events:
        if event == "decide":
            machine.decide(None, [0] * len(machine.files))
        elif event == "verify":
            for index in sorted(machine.verifying):
                machine.file_verified(index, True, None, None)
        elif isinstance(event, int):
            machine.receive_chunk(event)
        else:
            machine.receive_message(event)  # type: ignore[arg-type]
    assert isinstance(machine.state, ReceiverState)


@settings(deadline=None, max_examples=300)
@given(st.lists(st.one_of(_peer_input, st.just("sent")), max_size=30))
def test_sender_survives_any_input(events: list[object]) -> None:
    machine = SenderMachine([A, B])
    machine.start()
    for event in events:
        if event == "sent":
            if machine.state is SenderState.SENDING_FILE:
                machine.file_sent(machine.current, SHA)
        elif isinstance(event, int):
            machine.receive_chunk(event)
        else:
            machine.receive_message(event)  # type: ignore[arg-type]
    assert isinstance(machine.state, SenderState)


def test_receiver_ack_says_saved_as_when_the_name_differs() -> None:
    machine = accepted_receiver(A, B)
    machine.receive_message(FileStart(0, 0))
    machine.receive_chunk(10)
    machine.receive_message(Eof(0, SHA))
    renamed = Path("/downloads/a (1).txt")
    actions = machine.file_verified(0, True, None, renamed, "a (1).txt")
    assert sent(actions) == [Ack(0, True, saved_as="a (1).txt")]
    assert actions[1] == FileOutcome(0, True, None, renamed, saved_as="a (1).txt")
    machine.receive_message(FileStart(1, 0))
    machine.receive_message(Eof(1, SHA))
    # Its own name: no saved_as; a refused file never carries the extensions.
    assert sent(machine.file_verified(1, True, None, None, B.name)) == [Ack(1, True)]


def test_receiver_refused_file_ack_has_no_extensions() -> None:
    machine = accepted_receiver(A, offsets=(4,))
    machine.receive_message(FileStart(0, 4))
    machine.receive_chunk(6)
    machine.receive_message(Eof(0, SHA))
    assert sent(machine.file_verified(0, False, "sha256 mismatch", None, "x")) == [
        Ack(0, False, "sha256 mismatch")]


def test_sender_passes_ack_extensions_to_its_outcome() -> None:
    machine = SenderMachine([A])
    machine.start()
    machine.receive_message(Accept((4,)))
    machine.file_sent(0, SHA)
    actions = machine.receive_message(Ack(0, True, saved_as="a (1).txt", resumed_from=4))
    assert actions[0] == FileOutcome(0, True, None, saved_as="a (1).txt", resumed_from=4)
