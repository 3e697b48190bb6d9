"""Signaling messages of PROTOCOL.md section 1, as typed values, with no I/O.

Parse a frame into a typed message or an :class:`InvalidMessage` whose text
says precisely what is wrong (the server sends that text back verbatim in an
``error``); serialize a typed message into a JSON frame. Both directions are
here: the server parses :data:`ClientMessage` and serializes
:data:`ServerMessage`, a client does the opposite.

Parsing never lets another exception escape, whatever the input, and never
produces a message that :func:`serialize` cannot turn back into valid UTF-8
JSON (property-tested in ``tests/protocol``).
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass
from typing import Literal, TypeAlias, cast, get_args

JSONValue: TypeAlias = (
    bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None
)
JSONObject: TypeAlias = dict[str, JSONValue]

RelayType = Literal["offer", "answer", "candidate", "leave"]
UpdataAction = Literal["login", "offline"]

RELAY_TYPES: frozenset[str] = frozenset(get_args(RelayType))
UPDATA_ACTIONS: frozenset[str] = frozenset(get_args(UpdataAction))

MAX_FRAME_BYTES = 64 * 1024
MAX_NAME_LENGTH = 64
MAX_SESSION_LENGTH = 64
MAX_ROOM_LENGTH = MAX_NAME_LENGTH
# Longest piece of client input quoted back in an error message.
_QUOTE_LIMIT = 64


class InvalidMessage(ValueError):
    """A frame that is not a valid message; ``str(error)`` says why."""


class InvalidLogin(InvalidMessage):
    """A ``login`` frame with wrong fields: answered by a failed ``login`` reply."""


# Client -> server


@dataclass(frozen=True, slots=True)
class Login:
    name: str
    token: str | None = None  # ext: shared access token
    room: str | None = None  # ext: the room to join (docs/protocol.md); None: the default room


@dataclass(frozen=True, slots=True)
class Relay:
    """``offer`` / ``answer`` / ``candidate`` / ``leave`` addressed to ``othername``.

    ``payload`` is the offer/answer description or the candidate init (``None``
    for end-of-candidates and always for ``leave``). ``name`` is the sender name
    the client claims: sent for compatibility, never trusted by the server.
    """

    type: RelayType
    othername: str
    payload: JSONObject | None = None
    session: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class IceServersRequest:
    """ext ``iceservers``: ask for fresh ``iceServers`` (docs/protocol.md)."""


# Server -> client


@dataclass(frozen=True, slots=True)
class LoginResult:
    success: bool
    message: str | None = None  # ext: why a login failed


@dataclass(frozen=True, slots=True)
class UserList:
    users: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Updata:
    action: UpdataAction
    name: str


@dataclass(frozen=True, slots=True)
class Relayed:
    """A negotiation message as the server forwards it, stamped with the sender ``name``."""

    type: RelayType
    name: str
    payload: JSONObject | None = None
    session: str | None = None


@dataclass(frozen=True, slots=True)
class Error:
    message: str


ClientMessage: TypeAlias = Login | Relay | IceServersRequest
ServerMessage: TypeAlias = LoginResult | UserList | Updata | Relayed | Error
Message: TypeAlias = ClientMessage | ServerMessage


def quote(text: str) -> str:
    """``text`` as a JSON string literal for an error message, shortened if long."""
    if len(text) > _QUOTE_LIMIT:
        return json.dumps(text[:_QUOTE_LIMIT], ensure_ascii=False)[:-1] + '…"'
    return json.dumps(text, ensure_ascii=False)


# ext (docs/protocol.md, "Unlisted names"): names under these prefixes are online
# for relays but never listed nor announced: `rtcxfer users` looking, code mode.
UNLISTED_PREFIXES = ("rtcxfer-users-", "rtcxfer-code-")


def is_unlisted_name(name: str) -> bool:
    """True for a name that is never in a ``userlist`` (but its own) nor in ``updata``."""
    return name.startswith(UNLISTED_PREFIXES)


def name_problem(name: str) -> str | None:
    """Why ``name`` breaks the name rules of PROTOCOL.md 1.3, or ``None`` if it is valid."""
    if not name:
        return "name must not be empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"name must be at most {MAX_NAME_LENGTH} characters"
    if name != name.strip():
        return "name must not start or end with a space"
    for char in name:
        category = unicodedata.category(char)
        if category == "Cc":
            return "name must not contain control characters"
        if category == "Cs":
            return "name must not contain unpaired surrogates"
    # Bidi controls, zero-width and other invisible characters make one name look
    # like another (or like nothing): refused too (rtcxfer.text, docs/protocol.md).
    from rtcxfer.text import invisible_problem

    if invisible_problem(name) is not None:
        return "name must not contain invisible or bidirectional characters"
    return None


def _reject_constant(constant: str) -> float:
    raise ValueError(f"{constant} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text}")
    return value


def _load_object(frame: str | bytes | bytearray | memoryview) -> JSONObject:
    if not isinstance(frame, str):
        raise InvalidMessage("binary frames are not supported")
    # Characters never outnumber UTF-8 bytes, so only long frames need encoding.
    if len(frame) > MAX_FRAME_BYTES or (
        len(frame) * 4 > MAX_FRAME_BYTES
        and len(frame.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES
    ):
        raise InvalidMessage(f"frame too large (limit {MAX_FRAME_BYTES} bytes)")
    try:
        value = json.loads(frame, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        raise InvalidMessage("invalid JSON") from None
    if not isinstance(value, dict):
        raise InvalidMessage("message must be a JSON object")
    return cast(JSONObject, value)


def _message_type(data: JSONObject) -> str:
    if "type" not in data:
        raise InvalidMessage('message has no "type" field')
    kind = data["type"]
    if not isinstance(kind, str):
        raise InvalidMessage('"type" must be a string')
    return kind


def _session(data: JSONObject) -> str | None:
    if "session" not in data:
        return None
    session = data["session"]
    if not isinstance(session, str):
        raise InvalidMessage('"session" must be a string')
    if len(session) > MAX_SESSION_LENGTH:
        raise InvalidMessage(f'"session" must be at most {MAX_SESSION_LENGTH} characters')
    return session


def room_problem(room: str) -> str | None:
    """Why ``room`` is not a valid room name (same character rules as user names), or None."""
    problem = name_problem(room)
    if problem is None:
        return None
    return "room " + problem.removeprefix("name ")


def _room(data: JSONObject) -> str | None:
    if "room" not in data:
        return None
    room = data["room"]
    if not isinstance(room, str):
        raise InvalidLogin('"room" must be a string')
    problem = room_problem(room)
    if problem is not None:
        raise InvalidLogin(problem)
    return room


def _payload(data: JSONObject, kind: RelayType) -> JSONObject | None:
    if kind == "leave":
        return None
    if kind not in data:
        raise InvalidMessage(f'{kind} message has no "{kind}" field')
    payload = data[kind]
    if isinstance(payload, dict):
        return payload
    if payload is None and kind == "candidate":
        return None
    expected = "an object or null" if kind == "candidate" else "an object"
    raise InvalidMessage(f'"{kind}" must be {expected}')


def parse_client_message(frame: str | bytes | bytearray | memoryview) -> ClientMessage:
    """Parse a frame a client sent to the server.

    Raises :class:`InvalidLogin` for a ``login`` with wrong fields and
    :class:`InvalidMessage` for anything else that is not a valid message.
    """
    data = _load_object(frame)
    kind = _message_type(data)
    if kind == "login":
        name = data.get("name")
        if not isinstance(name, str):
            raise InvalidLogin('login needs a "name" string')
        problem = name_problem(name)
        if problem is not None:
            raise InvalidLogin(problem)
        token = data.get("token")
        if token is not None and not isinstance(token, str):
            raise InvalidLogin('"token" must be a string')
        return Login(name, token, _room(data))
    if kind in RELAY_TYPES:
        relay_type = cast(RelayType, kind)
        othername = data.get("othername")
        if not isinstance(othername, str):
            raise InvalidMessage(f'{kind} message needs an "othername" string')
        claimed = data.get("name")
        return Relay(
            relay_type,
            othername,
            _payload(data, relay_type),
            _session(data),
            claimed if isinstance(claimed, str) else None,
        )
    if kind == "iceservers":
        return IceServersRequest()
    raise InvalidMessage(f"unknown message type {quote(kind)}")


def parse_server_message(frame: str | bytes | bytearray | memoryview) -> ServerMessage:
    """Parse a frame a server sent to a client; :class:`InvalidMessage` if it is not valid."""
    data = _load_object(frame)
    kind = _message_type(data)
    if kind == "login":
        success = data.get("success")
        if not isinstance(success, bool):
            raise InvalidMessage('login reply needs a "success" boolean')
        message = data.get("message")
        return LoginResult(success, message if isinstance(message, str) else None)
    if kind == "userlist":
        users = data.get("users")
        if not isinstance(users, list) or not all(isinstance(user, str) for user in users):
            raise InvalidMessage('userlist needs a "users" array of strings')
        return UserList(tuple(cast(list[str], users)))
    if kind == "updata":
        action = data.get("action")
        name = data.get("name")
        if not isinstance(action, str) or action not in UPDATA_ACTIONS:
            raise InvalidMessage('updata "action" must be "login" or "offline"')
        if not isinstance(name, str):
            raise InvalidMessage('updata needs a "name" string')
        return Updata(cast(UpdataAction, action), name)
    if kind in RELAY_TYPES:
        relay_type = cast(RelayType, kind)
        sender = data.get("name")
        if not isinstance(sender, str):
            raise InvalidMessage(f'{kind} message needs a "name" string')
        return Relayed(relay_type, sender, _payload(data, relay_type), _session(data))
    if kind == "error":
        message = data.get("message")
        if not isinstance(message, str):
            raise InvalidMessage('error needs a "message" string')
        return Error(message)
    raise InvalidMessage(f"unknown message type {quote(kind)}")


def to_json(message: Message) -> JSONObject:
    """The JSON object of ``message``, with exactly the fields PROTOCOL.md names."""
    match message:
        case Relayed(kind, name, payload, session):
            data: JSONObject = {"type": kind, "name": name}
            if kind != "leave":
                data[kind] = payload
            if session is not None:
                data["session"] = session
            return data
        case Relay(kind, othername, payload, session, name):
            data = {"type": kind}
            if name is not None:
                data["name"] = name
            data["othername"] = othername
            if kind != "leave":
                data[kind] = payload
            if session is not None:
                data["session"] = session
            return data
        case IceServersRequest():
            return {"type": "iceservers"}
        case Login(name, token, room):
            data = {"type": "login", "name": name}
            if token is not None:
                data["token"] = token
            if room is not None:
                data["room"] = room
            return data
        case LoginResult(success, reason):
            data = {"type": "login", "success": success}
            if reason is not None:
                data["message"] = reason
            return data
        case UserList(users):
            return {"type": "userlist", "users": list(users)}
        case Updata(action, name):
            return {"type": "updata", "action": action, "name": name}
        case Error(reason):
            return {"type": "error", "message": reason}
    raise TypeError(f"not a signaling message: {message!r}")


def _dump(data: JSONObject, *, ascii_only: bool) -> str:
    try:
        return json.dumps(
            data, ensure_ascii=ascii_only, separators=(",", ":"), allow_nan=False
        )
    except (ValueError, RecursionError):
        raise InvalidMessage("message cannot be serialized (nested too deeply)") from None


def encode(message: Message) -> bytes:
    """``message`` as the UTF-8 bytes of a compact JSON text frame.

    Raises :class:`InvalidMessage` if a payload cannot be serialized (nested
    too deeply for this interpreter).
    """
    data = to_json(message)
    try:
        return _dump(data, ascii_only=False).encode()
    except UnicodeEncodeError:
        # An unpaired surrogate arrived as a JSON escape: keep it escaped.
        return _dump(data, ascii_only=True).encode()


def serialize(message: Message) -> str:
    """``message`` as a compact JSON text frame that always encodes to valid UTF-8."""
    data = to_json(message)
    text = _dump(data, ascii_only=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        return _dump(data, ascii_only=True)
    return text
