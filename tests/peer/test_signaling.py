"""The signaling client against the real `rtcxfer serve`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from support import free_port, running_server

from rtcxfer.errors import NameTaken, ServerUnreachable
from rtcxfer.peer.signaling import NO_SESSION, Signal, SignalingClient

TIMEOUT = 20.0


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server() as (url, _process):
        yield url


@pytest.fixture
async def clients(server: str) -> AsyncIterator[list[SignalingClient]]:
    opened: list[SignalingClient] = []
    yield opened
    for client in opened:
        await client.close()


async def log_in(server: str, name: str, clients: list[SignalingClient]) -> SignalingClient:
    client = SignalingClient(server, name)
    await client.connect()
    clients.append(client)
    return client


async def next_item(queue: asyncio.Queue) -> object:  # type: ignore[type-arg]
    return await asyncio.wait_for(queue.get(), TIMEOUT)


async def test_users_follow_logins_and_departures(server: str,
                                                  clients: list[SignalingClient]) -> None:
    anna = await log_in(server, "anna", clients)
    seen: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
    anna.on_presence = lambda name, online: seen.put_nowait((name, online))
    ben = await log_in(server, "ben", clients)
    assert ben.users[-2:] == ["anna", "ben"]
    assert await next_item(seen) == ("ben", True)
    assert "ben" in anna.users

    await ben.close()
    assert await next_item(seen) == ("ben", False)
    assert "ben" not in anna.users
    assert not ben.is_open


async def test_taken_name(server: str, clients: list[SignalingClient]) -> None:
    await log_in(server, "carl", clients)
    with pytest.raises(NameTaken, match="'carl' is taken"):
        await log_in(server, "carl", clients)


async def test_unreachable_server() -> None:
    with pytest.raises(ServerUnreachable, match="cannot reach the signaling server"):
        await SignalingClient(f"ws://127.0.0.1:{free_port()}", "dora").connect()
    with pytest.raises(ServerUnreachable, match="not a ws:// or wss:// URL"):
        await SignalingClient("http//nonsense", "dora").connect()


async def test_relay_dispatch_by_peer_and_session(server: str,
                                                  clients: list[SignalingClient]) -> None:
    eve = await log_in(server, "eve", clients)
    fred = await log_in(server, "fred", clients)
    unrouted: asyncio.Queue[Signal] = asyncio.Queue()
    first: asyncio.Queue[Signal] = asyncio.Queue()
    second: asyncio.Queue[Signal] = asyncio.Queue()
    fred.on_new_offer = unrouted.put_nowait
    fred.route("eve", "s1", first.put_nowait)
    fred.route("eve", "s2", second.put_nowait)

    await eve.send_offer("fred", "s3", {"type": "offer", "sdp": "v=0"})
    await eve.send_candidate("fred", "s1", None)
    await eve.send_leave("fred", "s2")
    assert await next_item(unrouted) == Signal("offer", "eve", "s3",
                                               {"type": "offer", "sdp": "v=0"})
    assert await next_item(first) == Signal("candidate", "eve", "s1", None)
    assert await next_item(second) == Signal("leave", "eve", "s2", None)

    # A leave without session ends every session with that peer.
    await eve.send_leave("fred", NO_SESSION)
    assert await next_item(first) == Signal("leave", "eve", NO_SESSION, None)
    assert await next_item(second) == Signal("leave", "eve", NO_SESSION, None)


async def test_a_new_offer_replaces_the_connection_it_names(
        server: str, clients: list[SignalingClient]) -> None:
    gina = await log_in(server, "gina", clients)
    hank = await log_in(server, "hank", clients)
    offers: asyncio.Queue[Signal] = asyncio.Queue()
    old_connection: asyncio.Queue[Signal] = asyncio.Queue()
    hank.on_new_offer = offers.put_nowait
    hank.route("gina", NO_SESSION, old_connection.put_nowait)

    await gina.send_offer("hank", NO_SESSION, {"type": "offer", "sdp": "v=0"})
    assert await next_item(old_connection) == Signal("leave", "gina", NO_SESSION, None)
    assert await next_item(offers) == Signal("offer", "gina", NO_SESSION,
                                             {"type": "offer", "sdp": "v=0"})

    # The replaced connection's cleanup must not unroute its successor.
    successor: asyncio.Queue[Signal] = asyncio.Queue()
    hank.route("gina", NO_SESSION, successor.put_nowait)
    hank.unroute("gina", NO_SESSION, old_connection.put_nowait)
    await gina.send_candidate("hank", NO_SESSION, None)
    assert await next_item(successor) == Signal("candidate", "gina", NO_SESSION, None)


async def test_a_peer_that_does_not_echo_session_reaches_its_only_connection(
        server: str, clients: list[SignalingClient]) -> None:
    ivan = await log_in(server, "ivan", clients)
    jane = await log_in(server, "jane", clients)
    only: asyncio.Queue[Signal] = asyncio.Queue()
    ivan.route("jane", "3f2a9c", only.put_nowait)

    await jane.send_answer("ivan", NO_SESSION, {"type": "answer", "sdp": "v=0"})
    assert await next_item(only) == Signal("answer", "jane", NO_SESSION,
                                           {"type": "answer", "sdp": "v=0"})

    # With two connections to jane, a message without session is ambiguous: dropped.
    other: asyncio.Queue[Signal] = asyncio.Queue()
    ivan.route("jane", "77e1b0", other.put_nowait)
    await jane.send_candidate("ivan", NO_SESSION, None)
    await jane.send_candidate("ivan", "77e1b0", None)
    assert await next_item(other) == Signal("candidate", "jane", "77e1b0", None)
    assert only.empty()


async def test_relay_to_an_offline_user_reports_the_server_error(
        server: str, clients: list[SignalingClient]) -> None:
    gus = await log_in(server, "gus", clients)
    errors: asyncio.Queue[str] = asyncio.Queue()
    gus.on_server_error = errors.put_nowait
    await gus.send_leave("nobody-here", "s")
    assert "nobody-here" in str(await next_item(errors))
