"""rtcxfer/2 through real CLI processes: folders, streams, text, v1 fallback."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from support import CliProcess, json_events

SEND_TIMEOUT = 300.0

Start = Callable[..., CliProcess]


def make_tree(root: Path, count: int, *, size: int = 1024, depth: int = 3) -> dict[str, bytes]:
    """``count`` files (some empty) spread over nested folders; name -> content."""
    made: dict[str, bytes] = {}
    for number in range(count):
        parts = [f"d{(number // 10 ** level) % 10}" for level in range(1, depth + 1)]
        relative = Path(*parts, f"f{number}.bin")
        data = b"" if number % 97 == 0 else os.urandom(size)
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        made[str(Path(root.name, relative))] = data
    return made


def assert_sent(process: CliProcess, timeout: float = SEND_TIMEOUT) -> dict:
    code = process.wait(timeout)
    assert code == 0, f"send exited {code}\nstdout:\n{process.stdout[-3000:]}\n" \
                      f"stderr:\n{process.stderr[-3000:]}"
    (summary,) = json_events(process, "summary")
    assert summary["ok"] is True
    return summary


def assert_tree(inbox: Path, made: dict[str, bytes]) -> None:
    for name, data in made.items():
        assert (inbox / name).read_bytes() == data, name
    landed = [p for p in inbox.rglob("*") if p.is_file()]
    assert len(landed) == len(made)


def test_folder_of_5000_files(tmp_path: Path, listen: Start, send: Start) -> None:
    made = make_tree(tmp_path / "out" / "tree", 5000, size=200)
    inbox = tmp_path / "in"
    listen("bob", inbox, "--yes")
    summary = assert_sent(send("alice", "bob", tmp_path / "out" / "tree"))
    assert summary["files"] == 5000
    assert_tree(inbox, made)
