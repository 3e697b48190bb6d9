"""The page takes its room from its URL (/r/NAME or /#room=NAME), shows it and logs in to it."""

from __future__ import annotations

import contextlib
import json

import pytest
from browser.pages import PeerFactory
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.browser


def log_in(stack: contextlib.ExitStack, url: str, name: str,
           room: str | None) -> ClientConnection:
    websocket = stack.enter_context(connect(url))
    login = {"type": "login", "name": name}
    if room is not None:
        login["room"] = room
    websocket.send(json.dumps(login))
    assert json.loads(websocket.recv(10))["success"] is True
    websocket.recv(10)  # userlist
    return websocket


@pytest.mark.parametrize("path", ["r/team%201", "#room=team%201"])
def test_the_page_logs_in_to_the_room_of_its_url(peers: PeerFactory, path: str) -> None:
    server = peers.server
    with contextlib.ExitStack() as stack:
        in_room = log_in(stack, server.ws_url, "roommate", "team 1")
        log_in(stack, server.ws_url, "outsider", None)
        peer = peers.open()
        page = peer.page
        page.goto(server.http_url + path)
        page.wait_for_selector("body[data-ready]")
        assert page.text_content("#room") == "room: team 1"
        peers.log_in(peer, "alice")
        assert json.loads(in_room.recv(10)) == {"type": "updata", "action": "login",
                                                 "name": "alice"}
        peer.wait_for_user("roommate")
        listed = page.text_content("#user-list") or ""
        assert "outsider" not in listed
