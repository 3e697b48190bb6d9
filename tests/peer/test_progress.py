"""What the commands print: --json events and human output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtcxfer.progress import LISTED_PATHS, MIB, Output, OutputMode, _Bar, format_size
from rtcxfer.transfer import FileEntry, TransferReport

ENTRY = FileEntry(name="a/b.bin", size=10 * 1024 * 1024, mtime=None)


def events(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_json_observer_events_are_rate_limited(capsys: pytest.CaptureFixture[str]) -> None:
    observer = Output(OutputMode.JSON).observer(peer="bob", session="s1", direction="send")
    observer.transfer_started([ENTRY], [1024])
    observer.file_started(0, ENTRY, 1024)
    for done in range(1024, ENTRY.size + 1, 16 * 1024):
        observer.file_progress(0, done)
    observer.file_finished(0, ENTRY, True, None, Path("/data/a/b.bin"))
    observer.transfer_finished(True)

    printed = events(capsys)
    kinds = [event["event"] for event in printed]
    assert kinds[0] == "file_started" and kinds[-1] == "file_done"
    assert printed[0] == {"event": "file_started", "offset": 1024, "peer": "bob",
                          "session": "s1", "index": 0, "name": "a/b.bin", "size": ENTRY.size}
    # 640 progress calls in far less than a second: at most one event got through.
    assert kinds.count("file_progress") <= 2
    assert printed[-1]["ok"] is True and printed[-1]["path"] == "/data/a/b.bin"


def test_summary_event_and_human_line(capsys: pytest.CaptureFixture[str]) -> None:
    report = TransferReport(files=2, bytes=4 * 1024 * 1024, resumed_bytes=1024, seconds=2.0,
                            ok=True)
    Output(OutputMode.JSON).summary(report, peer="bob", session="s", direction="send")
    (summary,) = events(capsys)
    assert summary == {"event": "summary", "ok": True, "peer": "bob", "session": "s",
                       "direction": "send", "files": 2, "bytes": 4 * 1024 * 1024,
                       "resumed_bytes": 1024, "seconds": 2.0, "mb_per_s": 2.0,
                       "renamed": 0, "resumed": 0}

    Output(OutputMode.HUMAN).summary(report, peer="bob", session="s", direction="receive")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "2 files, 4.0 MiB (1.0 KiB resumed) received from bob in 2.0 s (2.0 MiB/s)" \
        in captured.err


def test_quiet_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    output = Output.from_flags(json_events=False, quiet=True)
    output.report("connected", "connected", server="ws://x", name="n")
    observer = output.observer(peer="bob", session="", direction="receive")
    observer.transfer_started([ENTRY], [0])
    observer.file_started(0, ENTRY, 0)
    observer.file_progress(0, ENTRY.size)
    observer.file_finished(0, ENTRY, True, None, None)
    observer.transfer_finished(True)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(("size", "text"), [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"),
                                            (5 * 1024**3, "5.0 GiB"),
                                            (3 * 1024**4, "3.0 TiB")])
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


def test_bar_sizes_use_the_units_of_every_message() -> None:
    output = Output(OutputMode.HUMAN)
    small = _Bar("from bob", 12, output.stream)
    small.update(12)
    shown = str(small)
    small.close()
    assert "12 B / 12 B" in shown and "12.0" not in shown
    big = _Bar("from bob", 300 * MIB, output.stream, initial=256 * MIB)
    shown = str(big)
    big.close()
    # A resumed transfer starts at its offset, in MiB.
    assert "256.0 MiB / 300.0 MiB" in shown and " 85%" in shown


def test_an_empty_transfer_shows_a_finished_bar() -> None:
    output = Output(OutputMode.HUMAN)
    empty = _Bar("from bob", 0, output.stream)
    empty.finish()
    shown = str(empty)
    empty.close()
    assert "100%" in shown and "0 B / 0 B" in shown and "0 B/s" in shown


def test_receiver_reports_renamed_and_sender_summary_says_what_was_kept(
        capsys: pytest.CaptureFixture[str]) -> None:
    hello = FileEntry(name="hello.txt", size=12, mtime=None)
    report = FileEntry(name="docs/report.pdf", size=300 * MIB, mtime=None)
    receiving = Output(OutputMode.JSON)
    observer = receiving.observer(peer="alice", session="r", direction="receive")
    observer.transfer_started([hello, report], [0, 256 * MIB])
    observer.file_finished(0, hello, True, None, Path("/in/hello (1).txt"),
                           saved_as="hello (1).txt")
    observer.file_finished(1, report, True, None, Path("/in/docs/report.pdf"),
                           resumed_from=256 * MIB)
    observer.transfer_finished(True)
    printed = events(capsys)
    renamed = [e for e in printed if e["event"] == "renamed"]
    assert renamed and renamed[0]["saved_as"] == "hello (1).txt"
    done = [e for e in printed if e["event"] == "file_done"]
    assert [(e["saved_as"], e["resumed_from"]) for e in done] == [
        ("hello (1).txt", None), (None, 256 * MIB)]

    sending = Output(OutputMode.HUMAN)
    observer = sending.observer(peer="bob", session="s", direction="send")
    observer.transfer_started([hello, report], [0, 256 * MIB])
    observer.file_finished(0, hello, True, None, Path("/out/hello.txt"),
                           saved_as="hello (1).txt")
    observer.file_finished(1, report, True, None, Path("/out/report.pdf"),
                           resumed_from=256 * MIB)
    observer.transfer_finished(True)
    sending.summary(TransferReport(files=2, bytes=44 * MIB, resumed_bytes=256 * MIB,
                                   seconds=2.0, ok=True),
                    peer="bob", session="s", direction="send")
    err = capsys.readouterr().err
    assert "bob kept 1 under its own name, renamed 1, resumed 1" in err
    assert "hello.txt was saved as hello (1).txt" in err


def test_receiver_lists_each_saved_path_or_the_folder_when_many(
        capsys: pytest.CaptureFixture[str]) -> None:
    entries = [FileEntry(name=f"f{i}.txt", size=1, mtime=None) for i in range(3)]
    observer = Output(OutputMode.HUMAN).observer(peer="a", session="x", direction="receive")
    observer.transfer_started(entries, [0, 0, 0])
    for i, entry in enumerate(entries):
        observer.file_finished(i, entry, True, None, Path(f"/in/{entry.name}"))
    observer.transfer_finished(True)
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("saved")] == [
        "saved /in/f0.txt", "saved /in/f1.txt", "saved /in/f2.txt"]

    many = [FileEntry(name=f"d/f{i}.txt", size=1, mtime=None) for i in range(LISTED_PATHS + 1)]
    observer = Output(OutputMode.HUMAN).observer(peer="a", session="y", direction="receive")
    observer.transfer_started(many, [0] * len(many))
    for i, entry in enumerate(many):
        landed = "d/f0 (1).txt" if i == 0 else entry.name
        observer.file_finished(i, entry, True, None, Path("/in") / landed)
    observer.transfer_finished(True)
    err = capsys.readouterr().err
    assert f"saved {LISTED_PATHS + 1} files into /in, 1 of them renamed:" in err
    assert "  d/f0.txt -> d/f0 (1).txt" in err
    assert "warning: d/f0.txt already exists: saved as /in/d/f0 (1).txt" in err
    assert "saved /in/d/f1.txt" not in err
