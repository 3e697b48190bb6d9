"""What the commands print: --json events and human output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtcxfer.progress import Output, OutputMode, format_size
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
                       "resumed_bytes": 1024, "seconds": 2.0, "mb_per_s": 2.0}

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
