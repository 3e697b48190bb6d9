"""Names relayed by a hostile server reach the terminal escaped (issue 8).

rtcxfer's own server refuses such names; a server written by someone else may
not. The fake server here is a few lines of websockets on loopback.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from support import CliProcess
from websockets.asyncio.server import ServerConnection, serve

TIMEOUT = 60.0
EVIL = "mallory\x1b]0;owned\x07\x1b[2J\u202eexe.png\u2028\x9b31m"


async def fake_server(connection: ServerConnection) -> None:
    login = json.loads(await connection.recv())
    await connection.send(json.dumps({"type": "login", "success": True}))
    await connection.send(json.dumps({"type": "userlist", "users": [login["name"], EVIL]}))
    await connection.send(json.dumps({"type": "updata", "action": "login", "name": EVIL}))
    async for _message in connection:
        pass


def assert_escaped(text: str) -> None:
    for raw in ("\x1b", "\x07", "\u202e", "\u2028", "\x9b"):
        assert raw not in text, repr(text)
    assert "mallory\\x1b]0;owned\\x07\\x1b[2J\\u202eexe.png\\u2028\\x9b31m" in text, text


async def test_users_and_listen_escape_names_from_the_server(tmp_path: Path) -> None:
    async with serve(fake_server, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"ws://127.0.0.1:{port}"
        users = CliProcess(["users", "--server", url])
        try:
            assert await asyncio.to_thread(users.wait, TIMEOUT) == 0, users.stderr
        finally:
            users.stop()
        assert_escaped(users.stdout)

        listener = CliProcess(["listen", "--server", url, "--name", "bob", "--dir",
                               str(tmp_path / "in")])
        try:
            await asyncio.to_thread(listener.wait_for_line, lambda line: line.startswith("+ "),
                                    stream="stderr", timeout=TIMEOUT)
        finally:
            listener.stop()
        online = next(line for line in listener.stderr_lines if line.startswith("online: "))
        joined = next(line for line in listener.stderr_lines if line.startswith("+ "))
        assert_escaped(online)
        assert_escaped(joined)


def test_log_lines_escape_what_came_from_outside() -> None:
    import logging

    from rtcxfer.cli import PrintableFormatter

    formatter = PrintableFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("rtcxfer.server", logging.WARNING, __file__, 1,
                               "refused login from %s", (EVIL,), None)
    assert_escaped(formatter.format(record))
