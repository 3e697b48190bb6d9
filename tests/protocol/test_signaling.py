"""The signaling message layer: any input yields a typed message or a precise error.

Property-based (hypothesis): arbitrary JSON values, text and bytes never make
an exception other than InvalidMessage escape; every parsed message serializes
to valid UTF-8 JSON that parses back to the same message.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcxfer.protocol.signaling import (
    MAX_FRAME_BYTES,
    MAX_NAME_LENGTH,
    Error,
    InvalidLogin,
    InvalidMessage,
    Login,
    LoginResult,
    Relay,
    Relayed,
    Updata,
    UserList,
    encode,
    name_problem,
    parse_client_message,
    parse_server_message,
    quote,
    serialize,
)

PARSERS = [parse_client_message, parse_server_message]
MESSAGE_TYPES = ["login", "offer", "answer", "candidate", "leave", "userlist", "updata",
                 "error", "", "LOGIN", "foo"]
FIELDS = ["type", "name", "othername", "offer", "answer", "candidate", "session", "token",
          "success", "message", "users", "action"]

json_scalars = (st.none() | st.booleans() | st.integers() | st.text()
                | st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
# Objects that look like messages, so that the interesting branches are reached.
message_like = st.fixed_dictionaries(
    {"type": st.sampled_from(MESSAGE_TYPES) | json_values},
    optional={field: json_values | st.text(max_size=70) for field in FIELDS if field != "type"},
)
names = st.text(min_size=1, max_size=MAX_NAME_LENGTH).filter(lambda name: name_problem(name)
                                                              is None)
sessions = st.none() | st.text(max_size=64)
descriptions = st.dictionaries(st.text(max_size=10), json_values, max_size=4)


def check_total(parse, frame) -> None:  # type: ignore[no-untyped-def]
    """``parse(frame)`` returns a message that round-trips, or raises InvalidMessage."""
    try:
        message = parse(frame)
    except InvalidMessage as error:
        assert str(error)
        return
    text = serialize(message)
    assert encode(message) == text.encode("utf-8")
    assert parse(text) == message


@pytest.mark.parametrize("parse", PARSERS)
@given(value=json_values | message_like)
@settings(max_examples=300, deadline=None)
def test_any_json_value_parses_or_fails_precisely(parse, value):
    check_total(parse, json.dumps(value))
    check_total(parse, json.dumps(value, ensure_ascii=False))


@pytest.mark.parametrize("parse", PARSERS)
@given(frame=st.text(max_size=200) | st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_any_text_or_bytes_parses_or_fails_precisely(parse, frame):
    check_total(parse, frame)


@given(name=st.text(max_size=80), token=st.none() | st.text(max_size=10))
@settings(max_examples=300, deadline=None)
def test_login_names_follow_the_rules(name, token):
    frame = json.dumps({"type": "login", "name": name, "token": token})
    problem = name_problem(name)
    if problem is None:
        assert parse_client_message(frame) == Login(name, token)
    else:
        with pytest.raises(InvalidLogin, match=problem):
            parse_client_message(frame)


client_messages = (
    st.builds(Login, names, st.none() | st.text(max_size=20))
    | st.builds(Relay, st.just("offer"), st.text(max_size=70), descriptions, sessions,
                st.none() | names)
    | st.builds(Relay, st.just("answer"), st.text(max_size=70), descriptions, sessions)
    | st.builds(Relay, st.just("candidate"), st.text(max_size=70),
                st.none() | descriptions, sessions)
    | st.builds(Relay, st.just("leave"), st.text(max_size=70), st.none(), sessions)
)
server_messages = (
    st.builds(LoginResult, st.booleans(), st.none() | st.text())
    | st.builds(UserList, st.lists(st.text(), max_size=5).map(tuple))
    | st.builds(Updata, st.sampled_from(["login", "offline"]), st.text())
    | st.builds(Relayed, st.sampled_from(["offer", "answer"]), st.text(), descriptions,
                sessions)
    | st.builds(Relayed, st.just("candidate"), st.text(), st.none() | descriptions, sessions)
    | st.builds(Relayed, st.just("leave"), st.text(), st.none(), sessions)
    | st.builds(Error, st.text())
)


@given(message=client_messages)
@settings(max_examples=300, deadline=None)
def test_client_messages_round_trip(message):
    assert parse_client_message(serialize(message)) == message


@given(message=server_messages)
@settings(max_examples=300, deadline=None)
def test_server_messages_round_trip(message):
    assert parse_server_message(encode(message).decode()) == message


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{", "invalid JSON"),
        ('{"type":"x","n":NaN}', "invalid JSON"),
        ('{"type":"x","n":-Infinity}', "invalid JSON"),
        ('{"type":"x","n":1e400}', "invalid JSON"),
        ("[" * 100_000 + "]" * 100_000, "frame too large"),
        ("[" * 30_000, "invalid JSON"),
        ("1" * 5000, "invalid JSON"),
        ("[]", "message must be a JSON object"),
        ("{}", 'message has no "type" field'),
        ('{"type":["login"]}', '"type" must be a string'),
        ('{"type":"' + "x" * 500 + '"}', 'unknown message type "' + "x" * 64 + '…"'),
        (b"{}", "binary frames are not supported"),
        (bytearray(b"{}"), "binary frames are not supported"),
        ('{"type":"offer","othername":"b","offer":[]}', '"offer" must be an object'),
        ('{"type":"candidate","othername":"b"}', 'candidate message has no "candidate" field'),
        ('{"type":"leave","othername":"b","session":{"id":1}}', '"session" must be a string'),
    ],
)
def test_precise_errors(frame, reason):
    with pytest.raises(InvalidMessage) as raised:
        parse_client_message(frame)
    assert str(raised.value) == reason or reason in str(raised.value)


def test_frame_limit_counts_utf8_bytes():
    envelope = '{"type":"login","name":"a","pad":"%s"}'
    fits = envelope % ("x" * (MAX_FRAME_BYTES - len(envelope) + 2))
    assert len(fits.encode()) == MAX_FRAME_BYTES
    assert parse_client_message(fits) == Login("a")
    # Fewer characters than the limit, more bytes.
    too_big = envelope % ("é" * (MAX_FRAME_BYTES // 2))
    assert len(too_big) < MAX_FRAME_BYTES < len(too_big.encode())
    with pytest.raises(InvalidMessage, match="frame too large"):
        parse_client_message(too_big)


def test_relays_keep_exactly_the_protocol_fields():
    frame = json.dumps({"type": "candidate", "name": "eve", "othername": "bob",
                        "candidate": None, "session": "s", "extra": 1})
    relay = parse_client_message(frame)
    assert relay == Relay("candidate", "bob", None, "s", "eve")
    forwarded = Relayed(relay.type, "alice", relay.payload, relay.session)
    assert json.loads(serialize(forwarded)) == {"type": "candidate", "name": "alice",
                                                "candidate": None, "session": "s"}
    assert json.loads(serialize(Relayed("leave", "alice"))) == {"type": "leave",
                                                                "name": "alice"}


def test_unpaired_surrogates_stay_escaped_on_the_wire():
    relay = parse_client_message('{"type":"offer","othername":"b","offer":{"sdp":"\\ud800"}}')
    text = serialize(Relayed(relay.type, "a", relay.payload))
    text.encode("utf-8")
    assert "\\ud800" in text
    assert parse_server_message(text) == Relayed("offer", "a", {"sdp": "\ud800"})


def test_quote_shortens_long_input():
    assert quote("bob") == '"bob"'
    assert quote("a\nb") == '"a\\nb"'
    assert len(quote("x" * 1000)) < 80
