"""Rooms (ext field "room" of login, docs/protocol.md): presence and relays scoped to a room."""

from __future__ import annotations

import subprocess
import sys

import pytest
from server.test_http import http_request
from support import cli_env, running_server

OFFER = {"type": "offer", "sdp": "v=0\r\n"}


@pytest.fixture
async def deployment(start_deployment):  # type: ignore[no-untyped-def]
    """One in-memory server, or two instances on Redis (clients alternate)."""
    return await start_deployment()


async def test_rooms_scope_userlist_updata_and_names(deployment, peer_factory):
    server = deployment
    lobby = await peer_factory(server)
    assert await lobby.login("alice") == ["alice"]
    red = await peer_factory(server)
    assert await red.login("alice", room="red") == ["alice"]  # same name, other room
    bob = await peer_factory(server)
    assert await bob.login("bob", room="red") == ["alice", "bob"]
    assert await red.recv() == {"type": "updata", "action": "login", "name": "bob"}
    # Nobody outside "red" heard of bob; a third "alice" in red is refused.
    await lobby.sync()
    again = await peer_factory(server)
    await again.send({"type": "login", "name": "alice", "room": "red"})
    reply = await again.recv()
    assert reply["success"] is False and "taken" in reply["message"]

    await bob.close()
    assert await red.recv() == {"type": "updata", "action": "offline", "name": "bob"}
    await lobby.sync()


async def test_a_relay_across_rooms_gets_the_offline_error(deployment, peer_factory):
    server = deployment
    lobby = await peer_factory(server)
    await lobby.login("carol")
    red = await peer_factory(server)
    await red.login("dave", room="red")
    await red.send({"type": "offer", "othername": "carol", "offer": OFFER})
    assert await red.recv() == {"type": "error", "message": 'user "carol" is not online'}
    await lobby.send({"type": "offer", "othername": "dave", "offer": OFFER})
    assert await lobby.recv() == {"type": "error", "message": 'user "dave" is not online'}
    # Within a room everything works as in the default room.
    erin = await peer_factory(server)
    await erin.login("erin", room="red")
    await red.recv()  # updata erin
    await red.send({"type": "offer", "othername": "erin", "offer": OFFER, "session": "s"})
    assert await erin.recv() == {"type": "offer", "name": "dave", "offer": OFFER,
                                 "session": "s"}
    await red.close()
    assert await erin.recv() == {"type": "leave", "name": "dave", "session": "s"}
    assert await erin.recv() == {"type": "updata", "action": "offline", "name": "dave"}


async def test_room_required(start_deployment, peer_factory):
    server = await start_deployment(room_required=True)
    peer = await peer_factory(server)
    await peer.send({"type": "login", "name": "alice"})
    reply = await peer.recv()
    assert reply["success"] is False and "requires a room" in reply["message"]
    assert await peer.login("alice", room="team") == ["alice"]


async def test_the_page_is_served_at_r_room(server, static_root):
    for target in ("/r/team", "/r/team%20one", "/r/%E5%90%8D"):
        status, headers, body = await http_request(server, target)
        assert status == 200, target
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert body == (static_root / "index.html").read_bytes()
    status, _, _ = await http_request(server, "/r/team/extra")
    assert status == 404


def test_users_lists_only_the_room():
    with running_server() as (url, _process):
        env = cli_env()

        def users(*extra: str) -> list[str]:
            done = subprocess.run([sys.executable, "-m", "rtcxfer", "users", "--server", url,
                                   *extra], env=env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout.split()

        import asyncio

        from websockets.asyncio.client import connect

        async def scenario() -> None:
            async with connect(url) as red, connect(url) as lobby:
                await red.send('{"type":"login","name":"in-red","room":"red"}')
                await red.recv()
                await lobby.send('{"type":"login","name":"in-lobby"}')
                await lobby.recv()
                assert await asyncio.to_thread(users, "--room", "red") == ["in-red"]
                env["RTCXFER_ROOM"] = "red"
                assert await asyncio.to_thread(users) == ["in-red"]
                del env["RTCXFER_ROOM"]
                assert await asyncio.to_thread(users) == ["in-lobby"]

        asyncio.run(scenario())
