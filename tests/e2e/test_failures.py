"""Every failure a user can meet ends with its own exit code and a clear message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from support import CliProcess, cli_env, free_port, json_events, running_server, wait_for_event

Start = Callable[..., CliProcess]
TIMEOUT = 90.0


def assert_fails(process: CliProcess, code: int, message: str) -> None:
    exit_code = process.wait(TIMEOUT)
    assert exit_code == code, f"exit {exit_code}\nstdout:\n{process.stdout}\n" \
                              f"stderr:\n{process.stderr}"
    assert message in process.stderr
    assert "Traceback" not in process.stderr
    (error,) = json_events(process, "error")
    assert error["exit_code"] == code
    assert message in error["message"]


def test_server_unreachable(tmp_path: Path, run: Start) -> None:
    nowhere = f"ws://127.0.0.1:{free_port()}"
    (tmp_path / "f").write_text("x")
    assert_fails(run("send", "--server", nowhere, "--json", "bob", str(tmp_path / "f")),
                 3, "cannot reach the signaling server")
    assert_fails(run("listen", "--server", nowhere, "--json", "--dir", str(tmp_path)),
                 3, "cannot reach the signaling server")
    assert_fails(run("users", "--server", nowhere, "--json"), 3,
                 "cannot reach the signaling server")


def test_name_taken(tmp_path: Path, listen: Start, run: Start, server: str) -> None:
    listen("bob", tmp_path / "one")
    assert_fails(run("listen", "--server", server, "--name", "bob", "--json",
                     "--dir", str(tmp_path / "two")), 4, "'bob' is taken")


def test_peer_offline(tmp_path: Path, send: Start) -> None:
    (tmp_path / "f").write_text("x")
    assert_fails(send("alice", "nobody", tmp_path / "f"), 5, "nobody is not online")


def test_missing_source_fails_before_connecting(tmp_path: Path, send: Start) -> None:
    process = send("alice", "bob", tmp_path / "missing.txt")
    assert process.wait(TIMEOUT) == 1
    assert "missing.txt" in process.stderr
    assert not json_events(process, "connected")


def test_empty_folder_is_nothing_to_send(tmp_path: Path, send: Start) -> None:
    (tmp_path / "empty" / "inner").mkdir(parents=True)
    process = send("alice", "bob", tmp_path / "empty")
    assert process.wait(TIMEOUT) == 1
    assert "nothing to send" in process.stderr


def test_listener_without_terminal_or_yes_declines(tmp_path: Path, listen: Start,
                                                   send: Start) -> None:
    (tmp_path / "f").write_text("x")
    inbox = tmp_path / "in"
    listener = listen("bob", inbox)
    assert_fails(send("alice", "bob", tmp_path / "f"), 6,
                 "receiver is not interactive; run listen with --yes")
    wait_for_event(listener, "declined", peer="alice")
    assert list(inbox.iterdir()) == []


def test_from_refuses_other_senders(tmp_path: Path, listen: Start, send: Start) -> None:
    (tmp_path / "f").write_text("x")
    inbox = tmp_path / "in"
    listen("bob", inbox, "--yes", "--from", "carol")
    assert_fails(send("alice", "bob", tmp_path / "f"), 6, "not accepting files from alice")
    assert list(inbox.iterdir()) == []
    carol = send("carol", "bob", tmp_path / "f")
    assert carol.wait(TIMEOUT) == 0, carol.stderr
    assert (inbox / "f").read_text() == "x"


def test_users_lists_everyone_but_itself(tmp_path: Path, listen: Start, run: Start,
                                         server: str) -> None:
    listen("bob", tmp_path / "b")
    listen("carol", tmp_path / "c")
    plain = run("users", "--server", server)
    assert plain.wait(TIMEOUT) == 0, plain.stderr
    assert plain.stdout_lines == ["bob", "carol"]
    scripted = run("users", "--server", server, "--json")
    assert scripted.wait(TIMEOUT) == 0
    (users,) = json_events(scripted, "users")
    assert users["users"] == ["bob", "carol"]


def test_server_with_a_token(tmp_path: Path, run: Start) -> None:
    with running_server("--token", "s3cret") as (url, _server):
        refused = run("users", "--server", url, "--json")
        assert_fails(refused, 1, "requires an access token")
        wrong = run("users", "--server", url, "--token", "guess", "--json")
        assert_fails(wrong, 1, "wrong access token")
        allowed = CliProcess(["users", "--server", url], env=cli_env(RTCXFER_TOKEN="s3cret"))
        try:
            assert allowed.wait(TIMEOUT) == 0, allowed.stderr
        finally:
            allowed.stop()


def test_listener_tells_a_person_who_comes_and_goes(tmp_path: Path, run: Start,
                                                    server: str) -> None:
    listener = run("listen", "--server", server, "--name", "bob", "--dir", str(tmp_path))
    listener.wait_for_line(lambda line: line == "online: nobody else", stream="stderr")
    visitor = run("listen", "--server", server, "--name", "carol", "--dir", str(tmp_path),
                  "--json")
    wait_for_event(visitor, "users", users=["bob"])
    listener.wait_for_line(lambda line: line == "+ carol", stream="stderr")
    visitor.stop()
    listener.wait_for_line(lambda line: line == "- carol", stream="stderr")
    assert listener.stdout_lines == []
