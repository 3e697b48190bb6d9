"""Every server rule of PROTOCOL.md 1.3 (and docs/protocol.md), over real WebSockets.

Each test runs twice (the ``backend`` fixture): against one in-memory server, and
against two instances sharing a real redis-server, the clients alternating
between the instances.
"""

from __future__ import annotations

import pytest


@pytest.fixture
async def server(start_deployment):  # type: ignore[no-untyped-def]
    return await start_deployment()

OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\n"}
CANDIDATE = {"candidate": "candidate:1 1 UDP 2122260223 127.0.0.1 50000 typ host",
             "sdpMid": "0", "sdpMLineIndex": 0}


async def test_example_exchange_of_protocol_1_4(server, peer_factory):
    bob = await peer_factory(server)
    assert await bob.login("bob") == ["bob"]
    alice = await peer_factory(server)

    await alice.send({"type": "login", "name": "alice"})
    assert await alice.recv() == {"type": "login", "success": True}
    assert await alice.recv() == {"type": "userlist", "users": ["bob", "alice"]}
    assert await bob.recv() == {"type": "updata", "action": "login", "name": "alice"}

    await alice.send({"type": "offer", "name": "alice", "othername": "bob", "offer": OFFER})
    assert await bob.recv() == {"type": "offer", "name": "alice", "offer": OFFER}
    await bob.send({"type": "answer", "name": "bob", "othername": "alice", "answer": ANSWER})
    assert await alice.recv() == {"type": "answer", "name": "bob", "answer": ANSWER}
    await alice.send({"type": "candidate", "name": "alice", "othername": "bob",
                      "candidate": CANDIDATE})
    assert await bob.recv() == {"type": "candidate", "name": "alice", "candidate": CANDIDATE}
    await alice.sync()
    await bob.sync()


async def test_relayed_name_is_the_login_name_never_the_claimed_one(server, logged_in):
    bob = await logged_in("bob")
    mallory = await logged_in("mallory")
    assert await bob.recv() == {"type": "updata", "action": "login", "name": "mallory"}

    await mallory.send({"type": "offer", "name": "alice", "othername": "bob", "offer": OFFER})
    assert await bob.recv() == {"type": "offer", "name": "mallory", "offer": OFFER}
    await mallory.send({"type": "candidate", "othername": "bob", "candidate": None})
    assert await bob.recv() == {"type": "candidate", "name": "mallory", "candidate": None}
    await mallory.send({"type": "leave", "name": ["not", "a", "name"], "othername": "bob"})
    assert await bob.recv() == {"type": "leave", "name": "mallory"}


async def test_session_is_forwarded_untouched_and_unknown_fields_are_dropped(server, logged_in):
    bob = await logged_in("bob")
    alice = await logged_in("alice")
    await bob.recv()  # updata alice

    await alice.send({"type": "offer", "othername": "bob", "offer": OFFER,
                      "session": "0123456789abcdef", "extra": {"leak": True}, "othername2": 1})
    assert await bob.recv() == {"type": "offer", "name": "alice", "offer": OFFER,
                                "session": "0123456789abcdef"}
    await bob.send({"type": "answer", "othername": "alice", "answer": ANSWER, "session": ""})
    assert await alice.recv() == {"type": "answer", "name": "bob", "answer": ANSWER,
                                  "session": ""}


async def test_duplicate_name_is_refused_and_the_owner_is_not_disturbed(server, peer_factory):
    owner = await peer_factory(server)
    await owner.login("alice")
    impostor = await peer_factory(server)

    await impostor.send({"type": "login", "name": "alice"})
    reply = await impostor.recv()
    assert reply["type"] == "login"
    assert reply["success"] is False
    assert "alice" in reply["message"]
    await owner.sync()
    # The refused socket may still log in under another name.
    assert await impostor.login("alice2") == ["alice", "alice2"]
    assert await owner.recv() == {"type": "updata", "action": "login", "name": "alice2"}


async def test_a_socket_logs_in_at_most_once(server, logged_in, peer_factory):
    alice = await logged_in("alice")
    await alice.send({"type": "login", "name": "carol"})
    reply = await alice.recv()
    assert reply["success"] is False
    assert "already logged in" in reply["message"]
    # Still alice, and carol was never taken.
    carol = await peer_factory(server)
    assert await carol.login("carol") == ["alice", "carol"]
    assert await alice.recv() == {"type": "updata", "action": "login", "name": "carol"}


async def test_userlist_and_updata_login_and_offline(server, peer_factory):
    first = await peer_factory(server)
    assert await first.login("first") == ["first"]
    second = await peer_factory(server)
    assert await second.login("second") == ["first", "second"]
    assert await first.recv() == {"type": "updata", "action": "login", "name": "second"}
    third = await peer_factory(server)
    assert await third.login("third") == ["first", "second", "third"]
    assert await first.recv() == {"type": "updata", "action": "login", "name": "third"}
    assert await second.recv() == {"type": "updata", "action": "login", "name": "third"}

    await second.close()
    assert await first.recv() == {"type": "updata", "action": "offline", "name": "second"}
    assert await third.recv() == {"type": "updata", "action": "offline", "name": "second"}
    # The name is free again.
    again = await peer_factory(server)
    assert await again.login("second") == ["first", "third", "second"]


async def test_relay_to_an_offline_user_is_an_error_and_nothing_is_queued(server, logged_in,
                                                                           peer_factory):
    alice = await logged_in("alice")
    for kind, payload in (("offer", OFFER), ("answer", ANSWER), ("candidate", CANDIDATE),
                          ("leave", None)):
        message = {"type": kind, "name": "alice", "othername": "bob"}
        if payload is not None:
            message[kind] = payload
        await alice.send(message)
        assert await alice.recv() == {"type": "error", "message": 'user "bob" is not online'}

    bob = await peer_factory(server)
    assert await bob.login("bob") == ["alice", "bob"]
    await bob.sync()


async def test_everything_but_login_is_refused_before_login(server, peer_factory):
    anonymous = await peer_factory(server)
    await anonymous.send({"type": "offer", "name": "x", "othername": "y", "offer": OFFER})
    assert await anonymous.recv() == {"type": "error", "message": "not logged in"}
    await anonymous.send({"type": "leave", "othername": "y"})
    assert await anonymous.recv() == {"type": "error", "message": "not logged in"}
    await anonymous.send({"type": "userlist"})
    assert await anonymous.recv() == {"type": "error",
                                      "message": 'unknown message type "userlist"'}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("x" * 65, "at most 64"),
        (" alice", "space"),
        ("alice ", "space"),
        ("ali\nce", "control"),
        ("ali\x00ce", "control"),
        ("\x7f", "control"),
        (42, '"name" string'),
        (None, '"name" string'),
    ],
)
async def test_name_rules(server, peer_factory, name, reason):
    peer = await peer_factory(server)
    await peer.send({"type": "login", "name": name})
    reply = await peer.recv()
    assert reply["type"] == "login"
    assert reply["success"] is False
    assert reason in reply["message"]
    await peer.sync()


@pytest.mark.parametrize("name", ["x", "x" * 64, "ünïcødé 名前", "a b", "🦊", "bob@example"])
async def test_valid_names(server, peer_factory, name):
    peer = await peer_factory(server)
    assert await peer.login(name) == [name]


async def test_leave_goes_to_every_peer_of_a_closing_socket_once_per_session(server, logged_in):
    alice = await logged_in("alice")
    bob = await logged_in("bob")
    carol = await logged_in("carol")
    dave = await logged_in("dave")
    for expected in ("bob", "carol", "dave"):
        assert (await alice.recv())["name"] == expected
    for expected in ("carol", "dave"):
        assert (await bob.recv())["name"] == expected
    assert (await carol.recv())["name"] == "dave"

    # alice negotiates with bob in two sessions and with carol without a session.
    await alice.send({"type": "offer", "othername": "bob", "offer": OFFER, "session": "s1"})
    await alice.send({"type": "offer", "othername": "bob", "offer": OFFER, "session": "s2"})
    await alice.send({"type": "candidate", "othername": "carol", "candidate": CANDIDATE})
    assert (await bob.recv())["session"] == "s1"
    assert (await bob.recv())["session"] == "s2"
    assert (await carol.recv())["type"] == "candidate"
    # carol answers a session of her own; session s1 with bob ends by a relayed leave.
    await carol.send({"type": "answer", "othername": "alice", "answer": ANSWER, "session": "c"})
    assert (await alice.recv())["session"] == "c"
    await alice.send({"type": "leave", "othername": "bob", "session": "s1"})
    assert await bob.recv() == {"type": "leave", "name": "alice", "session": "s1"}

    await alice.close()
    assert await bob.recv() == {"type": "leave", "name": "alice", "session": "s2"}
    assert await bob.recv() == {"type": "updata", "action": "offline", "name": "alice"}
    carol_leaves = [await carol.recv(), await carol.recv()]
    assert {"type": "leave", "name": "alice"} in carol_leaves
    assert {"type": "leave", "name": "alice", "session": "c"} in carol_leaves
    assert await carol.recv() == {"type": "updata", "action": "offline", "name": "alice"}
    # dave never talked to alice: no leave, only the updata.
    assert await dave.recv() == {"type": "updata", "action": "offline", "name": "alice"}
    for peer in (bob, carol, dave):
        await peer.sync()


async def test_leave_without_session_ends_every_session_of_the_pair(server, logged_in):
    alice = await logged_in("alice")
    bob = await logged_in("bob")
    await alice.recv()
    for session in ("s1", "s2"):
        await alice.send({"type": "offer", "othername": "bob", "offer": OFFER,
                          "session": session})
        await bob.recv()
    await bob.send({"type": "leave", "othername": "alice"})
    assert await alice.recv() == {"type": "leave", "name": "bob"}

    await bob.close()
    assert await alice.recv() == {"type": "updata", "action": "offline", "name": "bob"}
    await alice.sync()


async def test_tracked_sessions_are_capped_per_connection(start_deployment, peer_factory):
    server = await start_deployment(max_sessions=3)
    alice = await peer_factory(server)
    await alice.login("alice")
    bob = await peer_factory(server)
    await bob.login("bob")
    await alice.recv()
    sessions = [f"s{index}" for index in range(5)]
    for session in sessions:
        await alice.send({"type": "offer", "othername": "bob", "offer": OFFER,
                          "session": session})
        await bob.recv()

    await alice.close()
    leaves = [await bob.recv() for _ in range(3)]
    assert [leave["session"] for leave in leaves] == sessions[-3:]
    assert await bob.recv() == {"type": "updata", "action": "offline", "name": "alice"}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"type": "offer", "othername": "bob", "offer": "v=0"}, '"offer" must be an object'),
        ({"type": "offer", "othername": "bob"}, 'no "offer" field'),
        ({"type": "answer", "othername": "bob", "answer": None}, '"answer" must be an object'),
        ({"type": "candidate", "othername": "bob", "candidate": "candidate:1"},
         '"candidate" must be an object or null'),
        ({"type": "offer", "othername": 7, "offer": OFFER}, '"othername" string'),
        ({"type": "leave"}, '"othername" string'),
        ({"type": "offer", "othername": "bob", "offer": OFFER, "session": 5},
         '"session" must be a string'),
        ({"type": "offer", "othername": "bob", "offer": OFFER, "session": None},
         '"session" must be a string'),
        ({"type": "leave", "othername": "bob", "session": "s" * 65}, "at most 64"),
    ],
)
async def test_wrong_field_types_get_a_precise_error(server, logged_in, message, reason):
    alice = await logged_in("alice")
    bob = await logged_in("bob")
    await alice.recv()
    await alice.send(message)
    error = await alice.recv()
    assert error["type"] == "error"
    assert reason in error["message"]
    await bob.sync()


async def test_token_is_required_when_configured(start_deployment, peer_factory):
    server = await start_deployment(token="s3cret")
    peer = await peer_factory(server)
    await peer.send({"type": "login", "name": "alice"})
    assert await peer.recv() == {"type": "login", "success": False,
                                 "message": "this server requires an access token"}
    await peer.send({"type": "login", "name": "alice", "token": "guess"})
    assert await peer.recv() == {"type": "login", "success": False,
                                 "message": "wrong access token"}
    await peer.send({"type": "login", "name": "alice", "token": 1234})
    assert (await peer.recv())["success"] is False
    assert await peer.login("alice", token="s3cret") == ["alice"]


async def test_max_users(start_server, peer_factory):
    # --max-users counts the users of one instance: tested on one in-memory server.
    server = await start_server(max_users=2)
    first = await peer_factory(server)
    await first.login("first")
    second = await peer_factory(server)
    await second.login("second")
    assert (await first.recv())["action"] == "login"
    third = await peer_factory(server)
    await third.send({"type": "login", "name": "third"})
    reply = await third.recv()
    assert reply["success"] is False
    assert "server is full" in reply["message"]

    await second.close()
    assert (await first.recv())["action"] == "offline"
    assert await third.login("third") == ["first", "third"]


async def test_relaying_to_oneself_works_and_leaves_no_trace(server, logged_in):
    alice = await logged_in("alice")
    await alice.send({"type": "candidate", "othername": "alice", "candidate": None,
                      "session": "loop"})
    assert await alice.recv() == {"type": "candidate", "name": "alice", "candidate": None,
                                  "session": "loop"}
    bob = await logged_in("bob")
    await alice.recv()
    await alice.close()
    assert await bob.recv() == {"type": "updata", "action": "offline", "name": "alice"}
    await bob.sync()


async def test_unlisted_names_are_never_listed_nor_announced(server, peer_factory):
    """docs/protocol.md, "Unlisted names": `rtcxfer users` looking at the list (and code
    mode waiting) does not show up to everyone as a user coming and going."""
    alice = await peer_factory(server)
    assert await alice.login("alice") == ["alice"]
    probe = await peer_factory(server)
    # Its own userlist includes it (PROTOCOL.md); nobody else hears of it.
    assert await probe.login("rtcxfer-users-0123456789abcdef") == [
        "alice", "rtcxfer-users-0123456789abcdef"]
    bob = await peer_factory(server)
    assert await bob.login("bob") == ["alice", "bob"]
    assert await alice.recv() == {"type": "updata", "action": "login", "name": "bob"}
    await probe.close()
    # Relays still reach an unlisted name while it is online.
    waiting = await peer_factory(server)
    await waiting.login("rtcxfer-code-42")
    await bob.send({"type": "candidate", "name": "bob", "othername": "rtcxfer-code-42",
                    "candidate": None})
    assert await waiting.recv() == {"type": "candidate", "name": "bob", "candidate": None}
    await waiting.close()
    # Its partner still gets its leave (PROTOCOL.md 1.3), but no updata.
    assert await bob.recv() == {"type": "leave", "name": "rtcxfer-code-42"}
    await alice.sync()  # no updata for the probe or the code name, in or out
    await bob.sync()
