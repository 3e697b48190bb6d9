"""ICE servers handed out at login: TURN REST API credentials, the iceservers refresh."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import sys

import pytest

from rtcxfer.server.ice import (
    IceServerPolicy,
    IceUrlError,
    check_url,
    credential_expiry,
    turn_rest_credentials,
)

SECRET = "north-wind"
POLICY = IceServerPolicy(stun=("stun:stun.example:3478",),
                         turn=("turn:turn.example:3478", "turn:turn.example:3478?transport=tcp",
                               "turns:turn.example:5349"),
                         turn_secret=SECRET, turn_ttl=600)


def test_credentials_follow_the_turn_rest_api() -> None:
    username, credential = turn_rest_credentials(SECRET, "alice", 1_900_000_000)
    assert username == "1900000000:alice"
    expected = hmac.new(SECRET.encode(), b"1900000000:alice", hashlib.sha1).digest()
    assert base64.b64decode(credential) == expected
    assert credential_expiry(username) == 1_900_000_000
    assert credential_expiry("alice") is None


def test_ice_servers_carry_expiring_credentials_and_never_the_secret() -> None:
    servers = POLICY.ice_servers("bob", now=1000.4)
    assert servers[0] == {"urls": ["stun:stun.example:3478"]}
    turn = servers[1]
    assert turn["urls"] == list(POLICY.turn)
    assert turn["username"] == "1600:bob"
    assert turn["credential"] == turn_rest_credentials(SECRET, "bob", 1600)[1]
    assert SECRET not in repr(servers)


def test_login_reply_extras_use_the_clock() -> None:
    extras = POLICY.login_reply_extras(lambda: 50.0)
    assert extras("carol")["iceServers"][1]["username"] == "650:carol"


@pytest.mark.parametrize("url", ["turn:host", "turn:host:3478?transport=tcp", "turns:h:5349",
                                 "turn:[2001:db8::1]:3478", "turn:10.0.0.1"])
def test_good_turn_urls(url: str) -> None:
    assert check_url(url, ("turn", "turns")) == url


@pytest.mark.parametrize("url", ["stun:host", "turn:", "turn://host", "turn:host:99999",
                                 "turn:host?transport=sctp", "http://host", "turn:ho st",
                                 "turn:host\n"])
def test_bad_turn_urls(url: str) -> None:
    with pytest.raises(IceUrlError):
        check_url(url, ("turn", "turns"))


def test_turn_needs_a_secret_and_a_sane_ttl() -> None:
    with pytest.raises(IceUrlError, match="--turn-secret"):
        IceServerPolicy(turn=("turn:h",))
    with pytest.raises(IceUrlError, match="--turn-ttl"):
        IceServerPolicy(turn=("turn:h",), turn_secret="s", turn_ttl=5)
    with pytest.raises(IceUrlError, match="STUN URL takes no"):
        IceServerPolicy(stun=("stun:h?transport=tcp",))
    assert not IceServerPolicy().enabled


async def test_login_reply_carries_ice_servers(start_server, peer_factory) -> None:
    server = await start_server(login_reply_extras=POLICY.login_reply_extras(lambda: 100.0))
    alice = await peer_factory(server)
    await alice.send({"type": "login", "name": "alice"})
    reply = await alice.recv()
    assert reply == {"type": "login", "success": True,
                     "iceServers": POLICY.ice_servers("alice", 100.0)}
    assert (await alice.recv())["type"] == "userlist"
    await alice.send({"type": "iceservers"})
    assert await alice.recv() == {"type": "iceservers",
                                  "iceServers": POLICY.ice_servers("alice", 100.0)}


async def test_iceservers_needs_a_login_and_a_server_that_has_some(start_server,
                                                                    peer_factory) -> None:
    with_ice = await start_server(login_reply_extras=POLICY.login_reply_extras(lambda: 1.0))
    anonymous = await peer_factory(with_ice)
    await anonymous.send({"type": "iceservers"})
    assert await anonymous.recv() == {"type": "error", "message": "not logged in"}
    plain = await start_server()
    bob = await peer_factory(plain)
    assert await bob.login("bob") == ["bob"]  # no iceServers field at all
    await bob.send({"type": "iceservers"})
    assert (await bob.recv())["type"] == "error"


def test_serve_refuses_turn_without_secret() -> None:
    result = subprocess.run([sys.executable, "-m", "rtcxfer", "serve", "--turn", "turn:h"],
                            capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "--turn needs --turn-secret" in result.stderr
