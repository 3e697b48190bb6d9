"""Signaling probe: every rule of PROTOCOL.md 1.1-1.4 against a real `rtcxfer serve`."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from conformance.wire import Closed, SignalingClient, signaling

OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\no=- 2 2 IN IP4 0.0.0.0\r\n"}
CANDIDATE = {"candidate": "candidate:1 1 UDP 2122260223 127.0.0.1 50000 typ host",
             "sdpMid": "0", "sdpMLineIndex": 0}
PAYLOADS: dict[str, Any] = {"offer": OFFER, "answer": ANSWER, "candidate": CANDIDATE}


def is_presence(message: dict[str, Any]) -> bool:
    return message["type"] == "updata"


async def expect_error(client: SignalingClient) -> dict[str, Any]:
    reply = await client.receive_type("error")
    assert set(reply) == {"type", "message"} and isinstance(reply["message"], str), reply
    return reply


async def still_serves(url: str, unique: Callable[[str], str]) -> None:
    """The server still logs people in and relays between them."""
    async with signaling(url, unique("witness-a")) as a, signaling(url, unique("witness-b")) as b:
        await a.relay("offer", b.name, OFFER)
        assert (await b.receive_type("offer"))["offer"] == OFFER


async def test_example_exchange_of_1_4(fresh_server, unique) -> None:
    # the whole example of 1.4, field sets exactly as in 1.2
    url, _ = fresh_server
    async with signaling(url, "bob") as bob, signaling(url) as alice:
        users = await alice.login("alice")
        assert sorted(users) == ["alice", "bob"]
        assert await bob.receive() == {"type": "updata", "action": "login", "name": "alice"}
        await alice.relay("offer", "bob", OFFER)
        assert await bob.receive() == {"type": "offer", "name": "alice", "offer": OFFER}
        await bob.relay("answer", "alice", ANSWER)
        assert await alice.receive() == {"type": "answer", "name": "bob", "answer": ANSWER}
        await alice.relay("candidate", "bob", CANDIDATE)
        assert await bob.receive() == {"type": "candidate", "name": "alice",
                                       "candidate": CANDIDATE}
        await alice.relay("leave", "bob")
        assert await bob.receive() == {"type": "leave", "name": "alice"}
        await alice.quiet()


async def test_userlist_has_everyone_and_updata_goes_to_others_only(fresh_server) -> None:
    url, _ = fresh_server
    async with signaling(url, "u1") as u1, signaling(url, "u2") as u2:
        assert await u1.receive() == {"type": "updata", "action": "login", "name": "u2"}
        async with signaling(url) as u3:
            assert sorted(await u3.login("u3")) == ["u1", "u2", "u3"]
            for other in (u1, u2):
                assert await other.receive() == {"type": "updata", "action": "login",
                                                 "name": "u3"}
            await u3.quiet()
        for other in (u1, u2):
            assert await other.receive() == {"type": "updata", "action": "offline",
                                             "name": "u3"}
        await u2.quiet()
        await u1.quiet()


async def test_forged_name_is_replaced_by_login_name(server_url, unique) -> None:
    async with signaling(server_url, unique("a")) as a, signaling(server_url, unique("b")) as b:
        for kind in ("offer", "answer", "candidate", "leave"):
            await a.send({"type": kind, "name": "mallory", "othername": b.name,
                          **({kind: PAYLOADS[kind]} if kind in PAYLOADS else {})})
            relayed = await b.receive_type(kind)
            assert relayed["name"] == a.name, relayed


async def test_relay_to_offline_user_errors_and_queues_nothing(server_url, unique) -> None:
    ghost = unique("ghost")
    async with signaling(server_url, unique("a")) as a:
        for kind in ("offer", "answer", "candidate", "leave"):
            await a.relay(kind, ghost, PAYLOADS.get(kind))
            reply = await expect_error(a)
            assert ghost in reply["message"], reply
        async with signaling(server_url, ghost) as late:
            await late.quiet()


async def test_duplicate_login_refused_and_owner_undisturbed(server_url, unique) -> None:
    name = unique("owner")
    async with signaling(server_url, name) as owner, signaling(server_url) as thief, \
            signaling(server_url, unique("friend")) as friend:
        await thief.send({"type": "login", "name": name})
        reply = await thief.receive_type("login")
        assert reply["success"] is False and isinstance(reply.get("message"), str), reply
        assert set(reply) == {"type", "success", "message"}, reply
        await friend.relay("offer", name, OFFER)
        assert (await owner.receive_type("offer"))["name"] == friend.name
        await thief.quiet()
        # the refused socket may still log in under a free name
        free_name = unique("thief")
        assert free_name in await thief.login(free_name)


async def test_second_login_on_same_socket_refused(server_url, unique) -> None:
    first, second = unique("first"), unique("second")
    async with signaling(server_url, first) as client, signaling(server_url, unique("o")) as other:
        await client.send({"type": "login", "name": second})
        reply = await client.reply()
        assert reply["type"] in {"error", "login"} and reply.get("success") is not True, reply
        # still logged in as the first name; the second name is still free
        await other.relay("offer", first, OFFER)
        assert (await client.receive_type("offer"))["name"] == other.name
        async with signaling(server_url, second):
            pass


@pytest.mark.parametrize("name", ["", "x" * 65, "a\x00b", "a\nb", "tab\there", "a\x7fb",
                                  "bell\x07", " lead", "trail ", " ",
                                  "a\u0085b"])
async def test_invalid_names_refused(server_url, name: str) -> None:
    async with signaling(server_url) as client:
        await client.send({"type": "login", "name": name})
        reply = await client.receive()
        assert reply["type"] in {"login", "error"} and reply.get("success") is not True, reply


@pytest.mark.parametrize("name", [None, 42, ["a"], {"n": 1}, True])
async def test_non_string_name_refused(server_url, name: Any) -> None:
    async with signaling(server_url) as client:
        await client.send({"type": "login", "name": name})
        reply = await client.receive()
        assert reply["type"] in {"login", "error"} and reply.get("success") is not True, reply


@pytest.mark.parametrize("stem", ["Zoë", "李雷", "émile ok", "x" * 60, "😀user", "a-b_c.d"])
async def test_fine_unicode_names_accepted(server_url, unique, stem: str) -> None:
    name = unique(stem)[:64]
    async with signaling(server_url) as client, signaling(server_url, unique("peer")) as peer:
        assert name in await client.login(name)
        await peer.relay("offer", name, OFFER)
        assert (await client.receive_type("offer"))["name"] == peer.name


async def test_sixty_four_char_name_accepted(server_url) -> None:
    name = "n" * 60 + "6464"
    async with signaling(server_url) as client:
        assert name in await client.login(name)


@pytest.mark.parametrize("message", [
    {"type": "offer", "name": "a", "othername": "b", "offer": OFFER},
    {"type": "answer", "name": "a", "othername": "b", "answer": ANSWER},
    {"type": "candidate", "name": "a", "othername": "b", "candidate": CANDIDATE},
    {"type": "leave", "name": "a", "othername": "b"},
    {"type": "userlist"},
    {"type": "nonsense"},
])
async def test_everything_but_login_before_login_is_an_error(server_url, unique,
                                                              message) -> None:
    target = unique("target")
    async with signaling(server_url, target) as victim, signaling(server_url) as client:
        await client.send({**message, "othername": target})
        await expect_error(client)
        await victim.quiet()
        # and the socket may still log in afterwards
        late_name = unique("late")
        assert late_name in await client.login(late_name)


async def test_close_sends_offline_to_all_and_leave_to_negotiating_peers_only(
        server_url, unique) -> None:
    async with signaling(server_url, unique("peer")) as peer, \
            signaling(server_url, unique("bystander")) as bystander:
        async with signaling(server_url, unique("closer")) as closer:
            closer_name = closer.name
            await closer.relay("offer", peer.name, OFFER)
            await peer.receive_type("offer")
        leave = await peer.receive_type("leave")
        assert leave == {"type": "leave", "name": closer_name}, leave
        messages: list[dict[str, Any]] = []
        while True:
            try:
                messages.append(await bystander.receive(1.0))
            except TimeoutError:
                break
        assert {"type": "updata", "action": "offline", "name": closer_name} in messages
        assert all(m["type"] == "updata" for m in messages), messages


async def test_close_sends_leave_per_session(server_url, unique) -> None:
    async with signaling(server_url, unique("peer")) as peer:
        async with signaling(server_url, unique("closer")) as closer:
            closer_name = closer.name
            await closer.relay("offer", peer.name, OFFER, session="s-one")
            await closer.relay("offer", peer.name, OFFER, session="s-two")
            await peer.receive_type("offer")
            await peer.receive_type("offer")
        leaves = [await peer.receive_type("leave"), await peer.receive_type("leave")]
        assert sorted(leave.get("session") for leave in leaves) == ["s-one", "s-two"]
        assert all(leave["name"] == closer_name for leave in leaves)


async def test_close_sends_leave_to_answerer_side_too(server_url, unique) -> None:
    # the peer that only answered is also "negotiating" with the one who offered
    async with signaling(server_url, unique("offerer")) as offerer:
        async with signaling(server_url, unique("answerer")) as answerer:
            answerer_name = answerer.name
            await offerer.relay("offer", answerer.name, OFFER)
            await answerer.receive_type("offer")
            await answerer.relay("answer", offerer.name, ANSWER)
            await offerer.receive_type("answer")
        leave = await offerer.receive_type("leave")
        assert leave == {"type": "leave", "name": answerer_name}


@pytest.mark.parametrize("kind", ["offer", "answer", "candidate", "leave"])
async def test_session_forwarded_untouched_and_absence_kept(server_url, unique,
                                                           kind: str) -> None:
    async with signaling(server_url, unique("a")) as a, signaling(server_url, unique("b")) as b:
        session = "Sess-ion_01 é/"
        await a.relay(kind, b.name, PAYLOADS.get(kind), session=session)
        with_session = await b.receive_type(kind)
        assert with_session.get("session") == session, with_session
        await a.relay(kind, b.name, PAYLOADS.get(kind))
        without = await b.receive_type(kind)
        assert "session" not in without, without
        expected = {"type", "name"} | ({kind} if kind in PAYLOADS else set())
        assert set(without) == expected, without


async def test_candidate_null_and_empty_relayed_as_is(server_url, unique) -> None:
    async with signaling(server_url, unique("a")) as a, signaling(server_url, unique("b")) as b:
        await a.relay("candidate", b.name, None)
        relayed = await b.receive_type("candidate")
        assert "candidate" in relayed and relayed["candidate"] is None, relayed
        end = {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}
        await a.relay("candidate", b.name, end)
        assert (await b.receive_type("candidate"))["candidate"] == end


BAD_FRAMES: list[Any] = [
    "{not json",
    "",
    "[1, 2, 3]",
    "42",
    '"login"',
    "null",
    "true",
    json.dumps({"name": "x"}),
    json.dumps({"type": "unknown-kind"}),
    json.dumps({"type": 7}),
    json.dumps({"type": None}),
    json.dumps({"type": ["login"]}),
    b"\x00\x01binary",
    b'{"type":"login","name":"bin"}',
    '{"type": "login", "name": "x"',
]


@pytest.mark.parametrize("frame", BAD_FRAMES, ids=[repr(f)[:30] for f in BAD_FRAMES])
async def test_bad_frame_gets_error_and_session_survives(server_url, unique, frame) -> None:
    async with signaling(server_url, unique("bad")) as client, \
            signaling(server_url, unique("other")) as other:
        await client.send(frame)
        await expect_error(client)
        # one bad frame does not end the session: relays both ways still work
        await client.relay("offer", other.name, OFFER)
        assert (await other.receive_type("offer"))["name"] == client.name
        await other.relay("answer", client.name, ANSWER)
        assert (await client.receive_type("answer"))["name"] == other.name


@pytest.mark.parametrize("frame", BAD_FRAMES[:6] + BAD_FRAMES[12:14],
                         ids=[repr(f)[:30] for f in BAD_FRAMES[:6] + BAD_FRAMES[12:14]])
async def test_bad_frame_before_login_then_login_works(server_url, unique, frame) -> None:
    async with signaling(server_url) as client:
        await client.send(frame)
        await expect_error(client)
        name = unique("after-garbage")
        assert name in await client.login(name)


WRONG_FIELDS: list[dict[str, Any]] = [
    {"type": "offer", "othername": 5, "offer": OFFER},
    {"type": "offer", "othername": None, "offer": OFFER},
    {"type": "offer", "othername": ["x"], "offer": OFFER},
    {"type": "offer", "offer": OFFER},
    {"type": "offer", "othername": "TARGET"},
    {"type": "offer", "othername": "TARGET", "offer": "v=0"},
    {"type": "offer", "othername": "TARGET", "offer": 12},
    {"type": "offer", "othername": "TARGET", "offer": [OFFER]},
    {"type": "offer", "othername": "TARGET", "offer": None},
    {"type": "answer", "othername": "TARGET", "answer": "sdp"},
    {"type": "answer", "othername": "TARGET"},
    {"type": "answer", "othername": 1.5, "answer": ANSWER},
    {"type": "candidate", "othername": "TARGET", "candidate": "candidate:1"},
    {"type": "candidate", "othername": "TARGET", "candidate": 3},
    {"type": "candidate", "othername": "TARGET", "candidate": [CANDIDATE]},
    {"type": "candidate", "othername": "TARGET"},
    {"type": "leave", "othername": 0},
    {"type": "leave"},
    {"type": "offer", "othername": "TARGET", "offer": OFFER, "session": 5},
    {"type": "offer", "othername": "TARGET", "offer": OFFER, "session": None},
    {"type": "offer", "othername": "TARGET", "offer": OFFER, "session": "s" * 65},
    {"type": "leave", "othername": "TARGET", "session": {"a": 1}},
    {"type": "candidate", "othername": "TARGET", "candidate": CANDIDATE, "session": ["s"]},
]


@pytest.mark.parametrize("message", WRONG_FIELDS, ids=[json.dumps(m)[:60] for m in WRONG_FIELDS])
async def test_wrong_field_types_get_error_and_nothing_relayed(server_url, unique,
                                                                message) -> None:
    async with signaling(server_url, unique("sender")) as client, \
            signaling(server_url, unique("target")) as target:
        concrete = {key: (target.name if value == "TARGET" else value)
                    for key, value in message.items()}
        await client.send(concrete)
        await expect_error(client)
        await target.quiet()


async def test_login_with_unknown_extra_field_works(server_url, unique) -> None:
    # extra unknown fields in login are ignored (extensions must not be required)
    name = unique("extra")
    async with signaling(server_url) as client:
        await client.send({"type": "login", "name": name, "future": {"x": 1}})
        assert (await client.receive())["success"] is True


async def test_exactly_64_kib_frame_is_relayed(server_url, unique) -> None:
    async with signaling(server_url, unique("big")) as a, signaling(server_url, unique("b")) as b:
        message = {"type": "offer", "name": a.name, "othername": b.name,
                   "offer": {"type": "offer", "sdp": ""}}
        padding = 65536 - len(json.dumps(message).encode())
        message["offer"]["sdp"] = "v" * padding
        frame = json.dumps(message)
        assert len(frame.encode()) == 65536
        await a.send(frame)
        assert (await b.receive_type("offer"))["offer"] == message["offer"]


async def test_oversized_frame_refused_and_others_unaffected(server_url, unique) -> None:
    async with signaling(server_url, unique("huge")) as a, signaling(server_url, unique("b")) as b:
        message = {"type": "offer", "name": a.name, "othername": b.name,
                   "offer": {"type": "offer", "sdp": ""}}
        message["offer"]["sdp"] = "v" * (65537 - len(json.dumps(message).encode()))
        frame = json.dumps(message)
        assert len(frame.encode()) == 65537
        await a.send(frame)
        try:
            reply = await a.reply()
            assert reply["type"] == "error", reply
        except Closed as closed:
            assert closed.code in {1008, 1009}, closed.code
        await b.quiet(ignore=is_presence)
        await still_serves(server_url, unique)


async def test_flood_closes_that_client_with_1008_only(server_url, unique) -> None:
    async with signaling(server_url, unique("flooder")) as flooder, \
            signaling(server_url, unique("calm")) as calm:
        async def flood() -> None:
            for _ in range(3000):
                try:
                    await flooder.relay("candidate", calm.name, CANDIDATE)
                except Exception:  # the server closed us mid-flood: that is the point
                    return
        await asyncio.wait_for(flood(), 60)
        assert await flooder.close_code(30) == 1008
        # the calm client is still connected and served
        while True:
            try:
                message = await calm.receive(1.0)
            except TimeoutError:
                break
            assert message["type"] in {"candidate", "updata", "leave"}, message
        async with signaling(server_url, unique("c")) as c:
            await c.relay("offer", calm.name, OFFER)
            assert (await calm.receive_type("offer"))["name"] == c.name


async def test_garbage_flood_closes_with_1008(server_url, unique) -> None:
    async with signaling(server_url) as flooder:
        async def flood() -> None:
            for _ in range(3000):
                try:
                    await flooder.send("{garbage")
                except Exception:  # closed by the server, as it should
                    return
        await asyncio.wait_for(flood(), 60)
        assert await flooder.close_code(30) == 1008
    await still_serves(server_url, unique)


def test_healthz(server_url) -> None:
    parts = urlsplit(server_url)
    with urllib.request.urlopen(f"http://{parts.netloc}/healthz", timeout=10) as response:
        assert response.status == 200


async def test_name_free_again_once_its_socket_closed(server_url, unique) -> None:
    name = unique("reborn")
    async with signaling(server_url, name):
        pass
    async with signaling(server_url) as again:
        assert name in await again.login(name)


async def test_burst_within_rate_limit_is_relayed_whole(server_url, unique) -> None:
    # a normal trickle burst (well under the documented 2x burst) is not "abuse"
    async with signaling(server_url, unique("a")) as a, signaling(server_url, unique("b")) as b:
        for index in range(60):
            await a.relay("candidate", b.name, {**CANDIDATE, "sdpMLineIndex": index})
        indexes = [(await b.receive_type("candidate"))["candidate"]["sdpMLineIndex"]
                   for _ in range(60)]
        assert indexes == list(range(60))


DEEP = 20000


@pytest.mark.parametrize("frame", [
    "[" * DEEP + "]" * DEEP,
    '{"type":"login","name":' + "[" * DEEP + "]" * DEEP + "}",
    '{"type":"offer","othername":"TARGET","offer":' + '{"a":' * DEEP + "1" + "}" * DEEP + "}",
    '{"type":"login","name":' + "9" * 5000 + "}",
], ids=["deep-array", "deep-login-name", "deep-offer", "5000-digit-int"])
async def test_pathological_json_gets_error_and_session_survives(server_url, unique,
                                                                 frame: str) -> None:
    # nesting past the parser's recursion limit, or ints past Python's digit limit
    async with signaling(server_url, unique("deep")) as client, \
            signaling(server_url, unique("target")) as target:
        await client.send(frame.replace("TARGET", target.name))
        reply = await client.reply()
        assert reply["type"] == "error", reply
        await client.relay("offer", target.name, OFFER)
        assert (await target.receive_type("offer"))["name"] == client.name
    await still_serves(server_url, unique)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_non_json_constants_never_relayed(server_url, unique, constant: str) -> None:
    # NaN/Infinity are not JSON (RFC 8259): refuse them, never forward them to a browser
    async with signaling(server_url, unique("nan")) as client, \
            signaling(server_url, unique("target")) as target:
        candidate = '{"candidate":"","sdpMid":"0","sdpMLineIndex":' + constant + "}"
        await client.send(json.dumps({"type": "candidate", "othername": target.name,
                                      "candidate": "CANDIDATE"})
                          .replace('"CANDIDATE"', candidate))
        reply = await client.reply()
        assert reply["type"] == "error", reply
        await target.quiet(ignore=is_presence)


async def test_lone_surrogate_name_refused_and_others_unharmed(server_url, unique) -> None:
    # "\ud800" parses in Python but cannot be encoded as UTF-8 for the other users
    async with signaling(server_url, unique("watcher")) as watcher, \
            signaling(server_url) as client:
        await client.send('{"type":"login","name":"bad\\ud800name"}')
        reply = await client.reply()
        assert reply["type"] in {"login", "error"} and reply.get("success") is not True, reply
        await watcher.quiet(ignore=is_presence)
    await still_serves(server_url, unique)


async def test_lone_surrogate_in_relay_does_not_hurt_target(server_url, unique) -> None:
    # refused, or relayed escaped as valid JSON text; either way both sockets live on
    async with signaling(server_url, unique("src")) as client, \
            signaling(server_url, unique("dst")) as target:
        await client.send(json.dumps({"type": "offer", "othername": target.name,
                                      "offer": {"type": "offer", "sdp": "v=0SURROGATE"}})
                          .replace("SURROGATE", "\\udc00"))
        await client.relay("offer", target.name, OFFER)
        while (relayed := await target.receive_type("offer"))["offer"] != OFFER:
            assert relayed["name"] == client.name, relayed
        await client.quiet(ignore=lambda message: message["type"] in {"error", "updata"})


async def test_close_of_offer_target_sends_leave_to_offerer(server_url, unique) -> None:
    # the target that received an offer (and never answered) is negotiating too
    async with signaling(server_url, unique("offerer")) as offerer:
        async with signaling(server_url, unique("target")) as target:
            target_name = target.name
            await offerer.relay("offer", target.name, OFFER, session="abc")
            await target.receive_type("offer")
        leave = await offerer.receive_type("leave")
        assert leave == {"type": "leave", "name": target_name, "session": "abc"}, leave


async def test_session_of_64_chars_relayed(server_url, unique) -> None:
    async with signaling(server_url, unique("a")) as a, signaling(server_url, unique("b")) as b:
        await a.relay("offer", b.name, OFFER, session="s" * 64)
        assert (await b.receive_type("offer"))["session"] == "s" * 64


async def test_sockets_not_logged_in_get_no_presence(server_url, unique) -> None:
    async with signaling(server_url) as anonymous:
        async with signaling(server_url, unique("someone")):
            pass
        await anonymous.quiet()


async def test_name_length_counts_characters_not_bytes(server_url) -> None:
    # "1-64 characters": 64 three-byte characters are fine, 65 are not
    async with signaling(server_url) as fine, signaling(server_url) as too_long:
        assert "李" * 64 in await fine.login("李" * 64)
        await too_long.send({"type": "login", "name": "字" * 65})
        reply = await too_long.reply()
        assert reply.get("success") is not True, reply
