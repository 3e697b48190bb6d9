"""The signaling core without sockets: frames in, actions out (rtcxfer.server.core)."""

from __future__ import annotations

import json

import pytest

from rtcxfer.server.core import (
    Claim,
    Close,
    CoreConfig,
    Deliver,
    Release,
    Send,
    SignalingCore,
)

OFFER = {"type": "offer", "sdp": "v=0\r\n"}


def sent(actions) -> list[dict]:  # type: ignore[no-untyped-def]
    assert all(isinstance(action, Send) for action in actions), actions
    return [json.loads(action.payload) for action in actions]


def logged_in(core: SignalingCore, name: str, room: str = "", users=None):  # type: ignore[no-untyped-def]
    conn = core.new_conn(0.0)
    login = {"type": "login", "name": name}
    if room:
        login["room"] = room
    [claim] = core.receive(conn, json.dumps(login), 0.0)
    assert isinstance(claim, Claim)
    assert (claim.room, claim.name) == (room, name)
    replies = sent(core.claimed(conn, room, name, users or [name]))
    assert replies[0] == {"type": "login", "success": True}
    return conn


def test_login_claims_the_name_then_answers_with_the_userlist():
    core = SignalingCore(CoreConfig())
    conn = core.new_conn(0.0)
    [claim] = core.receive(conn, '{"type":"login","name":"alice"}', 0.0)
    assert claim == Claim(conn, "", "alice")
    assert conn.name is None and conn.claiming
    assert sent(core.claimed(conn, "", "alice", ["bob", "alice"])) == [
        {"type": "login", "success": True}, {"type": "userlist", "users": ["bob", "alice"]}]
    assert conn.name == "alice" and core.online == 1


def test_a_refused_claim_is_a_failed_login_and_the_connection_may_try_again():
    core = SignalingCore(CoreConfig())
    conn = core.new_conn(0.0)
    core.receive(conn, '{"type":"login","name":"alice"}', 0.0)
    assert sent(core.claimed(conn, "", "alice", None, 'name "alice" is already taken')) == [
        {"type": "login", "success": False, "message": 'name "alice" is already taken'}]
    assert isinstance(core.receive(conn, '{"type":"login","name":"al"}', 0.0)[0], Claim)


def test_login_reply_extras_join_only_a_successful_reply():
    core = SignalingCore(CoreConfig(login_reply_extras=lambda name: {
        "iceServers": [{"urls": f"stun:{name}.example"}], "success": "never overrides"}))
    conn = core.new_conn(0.0)
    core.receive(conn, '{"type":"login","name":"alice"}', 0.0)
    assert sent(core.claimed(conn, "", "alice", ["alice"]))[0] == {
        "type": "login", "success": True, "iceServers": [{"urls": "stun:alice.example"}]}


@pytest.mark.parametrize(("frame", "message"), [
    ('{"type":"login","name":"a","room":""}', "room must not be empty"),
    ('{"type":"login","name":"a","room":5}', '"room" must be a string'),
    ('{"type":"login","name":"a","room":" x"}', "room must not start or end with a space"),
    ('{"type":"login","name":"a","room":"' + "r" * 65 + '"}', "room must be at most 64"),
    ('{"type":"login","name":"a","room":"a\\u0000b"}', "room must not contain control"),
])
def test_room_follows_the_name_rules(frame, message):
    core = SignalingCore(CoreConfig())
    [reply] = sent(core.receive(core.new_conn(0.0), frame, 0.0))
    assert reply["success"] is False
    assert message in reply["message"]


def test_room_required_refuses_a_login_without_room():
    core = SignalingCore(CoreConfig(room_required=True))
    conn = core.new_conn(0.0)
    [reply] = sent(core.receive(conn, '{"type":"login","name":"a"}', 0.0))
    assert reply["success"] is False and "requires a room" in reply["message"]
    [claim] = core.receive(conn, '{"type":"login","name":"a","room":"team"}', 0.0)
    assert claim == Claim(conn, "team", "a")


def test_a_second_login_while_one_is_out_or_done_is_refused():
    core = SignalingCore(CoreConfig())
    conn = core.new_conn(0.0)
    core.receive(conn, '{"type":"login","name":"a"}', 0.0)
    [reply] = sent(core.receive(conn, '{"type":"login","name":"b"}', 0.0))
    assert reply["message"] == "a login is already in progress"
    core.claimed(conn, "", "a", ["a"])
    [reply] = sent(core.receive(conn, '{"type":"login","name":"b"}', 0.0))
    assert reply["message"] == 'already logged in as "a"'


def test_relay_is_stamped_with_the_login_name_and_scoped_to_the_room():
    core = SignalingCore(CoreConfig())
    alice = logged_in(core, "alice", room="team")
    [deliver] = core.receive(alice, json.dumps(
        {"type": "offer", "name": "mallory", "othername": "bob", "offer": OFFER,
         "session": "s1", "extra": 1}), 0.0)
    assert isinstance(deliver, Deliver)
    assert (deliver.room, deliver.target, deliver.kind, deliver.session) == (
        "team", "bob", "offer", "s1")
    assert json.loads(deliver.payload) == {"type": "offer", "name": "alice", "offer": OFFER,
                                           "session": "s1"}
    assert sent(core.undeliverable(alice, "bob")) == [
        {"type": "error", "message": 'user "bob" is not online'}]


def test_before_login_everything_but_login_is_an_error():
    core = SignalingCore(CoreConfig())
    assert sent(core.receive(core.new_conn(0.0), '{"type":"leave","othername":"x"}', 0.0)) == [
        {"type": "error", "message": "not logged in"}]


def test_the_rate_limit_closes_with_policy_violation():
    core = SignalingCore(CoreConfig(message_rate=1.0, message_burst=3))
    conn = core.new_conn(0.0)
    for _ in range(3):
        core.receive(conn, "{}", 0.0)
    [close] = core.receive(conn, "{}", 0.0)
    assert close == Close(conn, 1008, "message rate limit exceeded")
    # One second later one more message is allowed.
    assert isinstance(core.receive(conn, "{}", 1.0)[0], Send)


def test_too_many_login_attempts_close_the_connection():
    core = SignalingCore(CoreConfig(max_login_attempts=2))
    conn = core.new_conn(0.0)
    for _ in range(2):
        assert isinstance(core.receive(conn, '{"type":"login","name":""}', 0.0)[0], Send)
    assert core.receive(conn, '{"type":"login","name":""}', 0.0) == [
        Close(conn, 1008, "too many login attempts")]


def test_a_partner_gets_one_leave_per_session_when_the_other_side_goes():
    core = SignalingCore(CoreConfig())
    alice = logged_in(core, "alice")
    bob = logged_in(core, "bob")
    for session in ("s1", "s2", None):
        message = {"type": "offer", "othername": "bob", "offer": OFFER}
        if session:
            message["session"] = session
        [deliver] = core.receive(alice, json.dumps(message), 0.0)
        core.delivered(bob, "alice", deliver.kind, deliver.session)
    # alice ends s1 herself: neither side remembers it any more.
    [deliver] = core.receive(alice, '{"type":"leave","othername":"bob","session":"s1"}', 0.0)
    core.delivered(bob, "alice", "leave", "s1")
    [release] = core.closed(alice)
    assert release == Release(alice, "", "alice", ("bob",))
    assert sent(core.partner_gone(bob, "alice")) == [
        {"type": "leave", "name": "alice", "session": "s2"}, {"type": "leave", "name": "alice"}]
    assert core.partner_gone(bob, "alice") == []
    assert core.online == 1


def test_session_records_are_capped():
    core = SignalingCore(CoreConfig(max_sessions=2))
    bob = logged_in(core, "bob")
    for session in ("a", "b", "c"):
        core.delivered(bob, "alice", "offer", session)
    assert [leave["session"] for leave in sent(core.partner_gone(bob, "alice"))] == ["b", "c"]


def test_relaying_to_oneself_leaves_no_record():
    core = SignalingCore(CoreConfig())
    alice = logged_in(core, "alice")
    core.receive(alice, '{"type":"candidate","othername":"alice","candidate":null}', 0.0)
    core.delivered(alice, "alice", "candidate", None)
    assert core.closed(alice) == [Release(alice, "", "alice", ())]


def test_a_full_server_refuses_logins():
    core = SignalingCore(CoreConfig(max_users=1))
    logged_in(core, "a")
    [reply] = sent(core.receive(core.new_conn(0.0), '{"type":"login","name":"b"}', 0.0))
    assert reply["message"] == "server is full (1 users)"
