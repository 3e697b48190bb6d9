"""Issue 14: the details a newcomer trips over, with the real CLI.

Server addresses as people copy them, TLS failures that say what to do, usage
errors before anything connects, ``users`` on a terminal, the config file,
shell completion and ``--help`` examples.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from support import RTCXFER, CliProcess, cli_env, free_port, make_certificate, running_server

from rtcxfer.peer.serverurl import BadServerUrl, normalise_server_url


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RTCXFER, *args], env=env or cli_env(), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("typed", "url"), [
    ("http://127.0.0.1:9090/", "ws://127.0.0.1:9090"),
    ("https://xfer.example.org/", "wss://xfer.example.org"),
    ("HTTPS://xfer.example.org:8443/index.html", "wss://xfer.example.org:8443"),
    ("ws://127.0.0.1:9090", "ws://127.0.0.1:9090"),
    ("wss://h:1/ws", "wss://h:1/ws"),
    ("192.168.1.20:9090", "ws://192.168.1.20:9090"),
    ("http://[::1]:9090/", "ws://[::1]:9090"),
])
def test_server_addresses_people_copy(typed: str, url: str) -> None:
    assert normalise_server_url(typed) == url


@pytest.mark.parametrize("typed", ["", "ftp://host", "http://", "http://u:p@host/",
                                   "ws://host:99999"])
def test_unusable_server_addresses(typed: str) -> None:
    with pytest.raises(BadServerUrl):
        normalise_server_url(typed)


def test_the_page_address_works_as_server(tmp_path: Path) -> None:
    with running_server() as (url, _server):
        listener = CliProcess(["listen", "--server", url, "--name", "carol", "--dir",
                               str(tmp_path), "--json"])
        try:
            listener.wait_for_line(lambda line: '"connected"' in line, timeout=60)
            page = url.replace("ws://", "http://") + "/"
            result = run_cli("users", "--server", page)
            assert result.returncode == 0, result.stderr
            assert result.stdout.split() == ["carol"]
        finally:
            listener.stop()


def test_wss_to_a_plain_server_says_it_does_not_speak_tls() -> None:
    with running_server() as (url, _server):
        result = run_cli("users", "--server", url.replace("ws://", "wss://"))
    assert result.returncode == 3
    assert "does not speak TLS" in result.stderr
    assert "answers on ws://" in result.stderr


def test_an_untrusted_certificate_says_how_to_trust_a_private_ca(tmp_path: Path) -> None:
    certfile, keyfile = make_certificate(tmp_path)
    with running_server("--certfile", str(certfile), "--keyfile", str(keyfile)) as (url, _s):
        refused = run_cli("users", "--server", url)
        trusted = run_cli("users", "--server", url, env=cli_env(SSL_CERT_FILE=str(certfile)))
    assert refused.returncode == 3
    assert "not trusted" in refused.stderr and "SSL_CERT_FILE" in refused.stderr
    assert trusted.returncode == 0, trusted.stderr


@pytest.mark.parametrize(("args", "complaint"), [
    (["users", "--server", "ftp://127.0.0.1:{port}"], "scheme"),
    (["send", "--name", "", "bob", "{file}"], "must not be empty"),
    (["send", "--name", "x" * 65, "bob", "{file}"], "at most 64"),
    (["send", "--name", "evil\x1b[2J", "bob", "{file}"], "control"),
    (["listen", "--name", " padded", "--dir", "{dir}"], "space"),
])
def test_usage_errors_exit_2_before_connecting(tmp_path: Path, args: list[str],
                                               complaint: str) -> None:
    # Nothing listens on the port: reaching the network would be exit 3, not 2.
    port = free_port()
    some_file = tmp_path / "a.txt"
    some_file.write_text("a")
    filled = [a.format(port=port, file=some_file, dir=tmp_path) for a in args]
    if "--server" not in filled:
        filled[1:1] = ["--server", f"ws://127.0.0.1:{port}"]
    result = run_cli(*filled)
    assert result.returncode == 2, result.stderr
    assert complaint in result.stderr
    assert "\x1b" not in result.stderr


def _run_with_terminal_stderr(*args: str) -> tuple[int, str, str]:
    """Run the CLI with stderr on a real pseudo-terminal and stdout on a pipe."""
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen([*RTCXFER, *args], env=cli_env(), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=follower, text=True)
        os.close(follower)
        stdout, _ = process.communicate(timeout=60)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        return process.returncode, stdout, b"".join(chunks).decode()
    finally:
        os.close(leader)


def test_users_on_a_terminal_says_nobody_is_online() -> None:
    with running_server() as (url, _server):
        code, stdout, terminal = _run_with_terminal_stderr("users", "--server", url)
        piped = run_cli("users", "--server", url)
    assert code == 0
    assert stdout == ""
    assert "nobody is online" in terminal
    # For scripts (no terminal) both streams stay empty.
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, "", "")


def test_users_does_not_offer_options_it_cannot_use() -> None:
    help_text = run_cli("users", "--help").stdout
    for option in ("--turn", "--stun", "--connect-timeout", "--fast-path", "--name"):
        assert option not in help_text
    assert run_cli("users", "--turn", "turn:x").returncode == 2


@pytest.mark.parametrize("command", ["serve", "listen", "send", "users", "demo", "config",
                                     "receive", "trust"])
def test_every_command_shows_real_examples(command: str) -> None:
    help_text = run_cli(command, "--help").stdout
    assert "Examples:" in help_text
    examples = [line for line in help_text.splitlines()
                if line.strip().startswith(("rtcxfer ", "RTCXFER_"))]
    assert len(examples) >= 2, help_text


# -- the config file --------------------------------------------------------------


def _config(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return cli_env(RTCXFER_CONFIG=str(path))


def test_config_file_is_used_and_flags_and_environment_override_it(tmp_path: Path) -> None:
    with running_server() as (url, _server):
        env = _config(tmp_path, f'server = "{url.replace("ws://", "http://")}/"\n'
                                'name = "from-file"\nstun = "stun:stun.example.org"\n')
        # The server comes from the file: this lists the users of the running server.
        listener = CliProcess(["listen", "--json", "--dir", str(tmp_path)], env=env)
        try:
            listener.wait_for_line(lambda line: '"connected"' in line, timeout=60)
            listed = run_cli("users", env=env)
            assert listed.returncode == 0, listed.stderr
            assert listed.stdout.split() == ["from-file"]
        finally:
            listener.stop()

    shown = json.loads(run_cli("config", "--json", env={**env, "RTCXFER_NAME": "from-env"})
                       .stdout)["settings"]
    assert shown["server"] == {"value": url, "source": f"config file ({tmp_path}/config.toml)"}
    assert shown["name"] == {"value": "from-env", "source": "environment (RTCXFER_NAME)"}
    assert shown["stun"]["value"] == ["stun:stun.example.org"]
    assert shown["token"]["source"] == "default"
    # A flag beats the file: the file's server is not tried.
    port = free_port()
    flagged = run_cli("users", "--server", f"ws://127.0.0.1:{port}", env=env)
    assert flagged.returncode == 3 and f"127.0.0.1:{port}" in flagged.stderr


def test_config_hides_secrets(tmp_path: Path) -> None:
    env = _config(tmp_path, 'token = "hunter2"\n')
    result = run_cli("config", env=env)
    assert result.returncode == 0
    assert "hunter2" not in result.stdout
    assert "token" in result.stdout and "(set, not shown)" in result.stdout


@pytest.mark.parametrize(("text", "complaint"), [
    ('server = "ws://x"\nbogus = 1\n', "unknown setting 'bogus'"),
    ("name = 5\n", "name must be a string"),
    ("name = \n", "config file"),
    ('[serve]\nnot-an-option = 1\n', "no option 'not-an-option'"),
])
def test_a_broken_config_file_is_a_usage_error(tmp_path: Path, text: str,
                                               complaint: str) -> None:
    result = run_cli("users", env=_config(tmp_path, text))
    assert result.returncode == 2
    assert complaint in result.stderr


def test_serve_options_from_the_config_file(tmp_path: Path) -> None:
    env = _config(tmp_path, '[serve]\nmax-users = 1\n')
    with running_server(env=env) as (url, _server):
        first = CliProcess(["listen", "--server", url, "--name", "one", "--json", "--dir",
                            str(tmp_path)])
        try:
            first.wait_for_line(lambda line: '"connected"' in line, timeout=60)
            second = run_cli("send", "--server", url, "--name", "two", "one",
                             str(tmp_path / "config.toml"))
            assert second.returncode != 0
            assert "full" in second.stderr or "users" in second.stderr, second.stderr
        finally:
            first.stop()


def test_shell_completion() -> None:
    # click names the completion variable after the program: the installed `rtcxfer`.
    program = str(Path(sys.executable).with_name("rtcxfer"))
    source = subprocess.run([program], env=cli_env(_RTCXFER_COMPLETE="bash_source"),
                            capture_output=True, text=True, timeout=60)
    assert "_rtcxfer_completion" in source.stdout
    words = subprocess.run([program], env=cli_env(_RTCXFER_COMPLETE="bash_complete",
                                                  COMP_WORDS="rtcxfer li", COMP_CWORD="1"),
                           capture_output=True, text=True, timeout=60)
    assert "plain,listen" in words.stdout.split()


# -- messages a person reads ---------------------------------------------------------


def test_not_online_suggests_the_closest_names(tmp_path: Path) -> None:
    payload = tmp_path / "a.txt"
    payload.write_text("a")
    with running_server() as (url, _server):
        listener = CliProcess(["listen", "--server", url, "--name", "alice", "--dir",
                               str(tmp_path / "in"), "--json"])
        try:
            listener.wait_for_line(lambda line: '"connected"' in line, timeout=60)
            typo = run_cli("send", "--server", url, "--name", "me", "alcie", str(payload))
            other = run_cli("send", "--server", url, "--name", "me", "zzz", str(payload))
        finally:
            listener.stop()
        alone = run_cli("send", "--server", url, "--name", "me", "alice", str(payload))
    assert typo.returncode == 5
    assert "alcie is not online" in typo.stderr and "did you mean alice?" in typo.stderr
    assert other.returncode == 5
    assert "online: alice" in other.stderr and "rtcxfer users" in other.stderr
    assert alone.returncode == 5 and "nobody else is online" in alone.stderr



@pytest.mark.parametrize(("args", "complaint"), [
    (["--turn", "turn:turn.example.org:3478"], "--turn needs --turn-user"),
    (["--stun", "http://stun.example.org"], "--stun"),
    (["--turn", "turn:", "--turn-user", "u", "--turn-password", "p"], "--turn"),
])
def test_unusable_ice_options_exit_2_before_connecting(tmp_path: Path, args: list[str],
                                                       complaint: str) -> None:
    payload = tmp_path / "a.txt"
    payload.write_text("a")
    nowhere = f"ws://127.0.0.1:{free_port()}"  # connecting would be exit 3
    result = run_cli("send", "--server", nowhere, *args, "bob", str(payload))
    assert result.returncode == 2, result.stderr
    assert complaint in result.stderr


def test_a_download_folder_that_is_not_writable_exits_2(tmp_path: Path) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs",
                              str(folder)], capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        nowhere = f"ws://127.0.0.1:{free_port()}"
        for command in (["listen", "--dir", str(folder)],
                        ["receive", "7-guitar-orbit", "--dir", str(folder)]):
            result = run_cli(*command, "--server", nowhere)
            assert result.returncode == 2, result.stderr
            assert "is not writable" in result.stderr
    finally:
        subprocess.run(["umount", str(folder)], check=False)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = run_cli("listen", "--dir", str(a_file), "--server", "ws://127.0.0.1:1")
    assert result.returncode == 2 and "folder" in result.stderr


def test_a_new_download_folder_is_created_and_shown_absolute(tmp_path: Path) -> None:
    with running_server() as (url, _server):
        listener = CliProcess(["listen", "--server", url, "--name", "dora", "--dir",
                               "inbox/new"], cwd=tmp_path)
        try:
            line = listener.wait_for_line(lambda text: "receiving into" in text,
                                          stream="stderr", timeout=60)
        finally:
            listener.stop()
    created = tmp_path / "inbox" / "new"
    assert str(created) in line
    assert created.is_dir() and (created.stat().st_mode & 0o777) == 0o700
