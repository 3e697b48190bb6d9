"""Several instances on one Redis: a dead instance, a Redis restart, a CLI transfer across
instances (docs/scaling.md). Real redis-server, real `rtcxfer serve` processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest
from redis_support import LateLink, RedisServer
from server.conftest import WsPeer, needs_redis
from server.test_http import http_request
from support import CliProcess, running_server, sha256_of, wait_for_event, write_random_file
from websockets.asyncio.client import connect

pytestmark = needs_redis

OFFER = {"type": "offer", "sdp": "v=0\r\n"}


async def ws_peer(url: str) -> WsPeer:
    return WsPeer(await connect(url, open_timeout=10, max_queue=None))


async def test_a_killed_instance_is_offline_everywhere_within_ten_seconds(redis_url):
    with running_server("--redis", redis_url) as (url_a, instance_a), \
            running_server("--redis", redis_url) as (url_b, _instance_b):
        alice = await ws_peer(url_a)
        bob = await ws_peer(url_b)
        try:
            await alice.login("alice")
            assert await bob.login("bob") == ["alice", "bob"]
            assert await alice.recv() == {"type": "updata", "action": "login", "name": "bob"}
            await alice.send({"type": "offer", "othername": "bob", "offer": OFFER,
                              "session": "s1"})
            assert await bob.recv() == {"type": "offer", "name": "alice", "offer": OFFER,
                                        "session": "s1"}

            os.kill(instance_a.popen.pid, signal.SIGKILL)
            killed = time.monotonic()
            async with asyncio.timeout(10):
                assert await bob.connection.recv() == json.dumps(
                    {"type": "leave", "name": "alice", "session": "s1"}, separators=(",", ":"))
                assert json.loads(await bob.connection.recv()) == {
                    "type": "updata", "action": "offline", "name": "alice"}
            assert time.monotonic() - killed < 10
            # The name is free again, for a client of the surviving instance.
            again = await ws_peer(url_b)
            assert await again.login("alice") == ["bob", "alice"]
            await again.close()
        finally:
            await bob.close()
            await alice.connection.close()


async def wait_health(server, status: int) -> dict:  # type: ignore[no-untyped-def]
    for _ in range(200):
        got, _, body = await http_request(server, "/healthz")
        if got == status:
            return json.loads(body)
        await asyncio.sleep(0.05)
    raise AssertionError(f"/healthz never answered {status}")


async def test_redis_restart_instances_stay_up_refuse_logins_and_rebuild(
        tmp_path: Path, start_server, peer_factory):
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        a = await start_server(redis_url=redis.url)
        b = await start_server(redis_url=redis.url)
        alice = await peer_factory(a)
        await alice.login("alice")
        bob = await peer_factory(b)
        await bob.login("bob")
        dave = await peer_factory(b)
        await dave.login("dave")
        for _ in range(2):
            await alice.recv()  # updata bob, dave
        assert await bob.recv() == {"type": "updata", "action": "login", "name": "dave"}

        redis.stop()
        down = await wait_health(a, 503)
        assert down["status"] == "unavailable" and "Redis" in down["reason"]
        late = await peer_factory(a)
        await late.send({"type": "login", "name": "late"})
        reply = await late.recv()
        assert reply["success"] is False and "unavailable" in reply["message"]
        await dave.close()  # goes offline while Redis is away

        redis.start()  # same port, empty: everything must be rebuilt
        await wait_health(a, 200)
        await wait_health(b, 200)
        assert await alice.recv() == {"type": "updata", "action": "offline", "name": "dave"}
        carol = await peer_factory(b)
        assert sorted(await carol.login("carol")) == ["alice", "bob", "carol"]
        assert await alice.recv() == {"type": "updata", "action": "login", "name": "carol"}
        await alice.send({"type": "offer", "othername": "bob", "offer": OFFER})
        assert await bob.recv() == {"type": "updata", "action": "offline", "name": "dave"}
        assert await bob.recv() == {"type": "updata", "action": "login", "name": "carol"}
        assert await bob.recv() == {"type": "offer", "name": "alice", "offer": OFFER}
        # A name still held on one instance cannot be taken on the other.
        thief = await peer_factory(b)
        await thief.send({"type": "login", "name": "alice"})
        assert (await thief.recv())["success"] is False
    finally:
        redis.stop()


async def test_relays_across_instances_keep_their_order(start_deployment, backend,
                                                        peer_factory):
    cluster = await start_deployment()
    alice = await peer_factory(cluster)
    await alice.login("alice")
    bob = await peer_factory(cluster)
    await bob.login("bob")
    await alice.recv()
    for index in range(300):
        await alice.send({"type": "candidate", "othername": "bob",
                          "candidate": {"candidate": f"candidate:{index}", "sdpMid": "0"}})
    for index in range(300):
        assert (await bob.recv())["candidate"]["candidate"] == f"candidate:{index}"


async def test_a_relay_right_after_a_login_elsewhere_reaches_the_new_user(
        redis_server, redis_url, start_server, peer_factory):
    """A user's login reply means every instance can relay to it at once, even one that
    hears of the login late (docs/scaling.md): code mode relays to a name that never
    shows up in anyone's list, right after it logged in."""
    link = LateLink(redis_server.port, delay=0.3)
    try:
        far = await start_server(redis_url=await link.start())
        near = await start_server(redis_url=redis_url)
        await wait_health(far, 200)
        alice = await peer_factory(far)
        await alice.login("alice")
        waiting = await peer_factory(near)
        await waiting.login("rtcxfer-code-7")
        await alice.send({"type": "candidate", "othername": "rtcxfer-code-7",
                          "candidate": None})
        assert await waiting.recv() == {"type": "candidate", "name": "alice",
                                        "candidate": None}
        await alice.send({"type": "candidate", "othername": "rtcxfer-code-7",
                          "candidate": {"candidate": "second", "sdpMid": "0"}})
        assert (await waiting.recv())["candidate"]["candidate"] == "second"
        # A name online nowhere still gets its error, once Redis said so.
        await alice.send({"type": "candidate", "othername": "nobody", "candidate": None})
        assert await alice.recv() == {"type": "error", "message": 'user "nobody" is not online'}
        await alice.sync()
        await waiting.sync()
    finally:
        await link.close()


@pytest.mark.slow
def test_cli_transfer_between_instances(tmp_path: Path, redis_url: str) -> None:
    source = write_random_file(tmp_path / "out" / "data.bin", 2_000_000)
    inbox = tmp_path / "in"
    processes: list[CliProcess] = []
    try:
        with running_server("--redis", redis_url) as (url_a, _a), \
                running_server("--redis", redis_url) as (url_b, _b):
            listener = CliProcess(["listen", "--server", url_a, "--name", "bob", "--dir",
                                   str(inbox), "--yes", "--json", "--room", "lab"])
            processes.append(listener)
            wait_for_event(listener, "connected", timeout=60)
            sender = CliProcess(["send", "--server", url_b, "--name", "alice", "--json",
                                 "--room", "lab", "bob", str(source)])
            processes.append(sender)
            code = sender.wait(120)
            assert code == 0, f"send exited {code}\n{sender.stdout}\n{sender.stderr}"
            assert sha256_of(inbox / "data.bin") == sha256_of(source)
    finally:
        for process in processes:
            process.stop()


async def test_a_user_who_left_during_a_short_outage_is_not_online_for_ever(
        tmp_path: Path, start_server, peer_factory):
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        a = await start_server(redis_url=redis.url)
        b = await start_server(redis_url=redis.url)
        alice = await peer_factory(a)
        await alice.login("alice")
        dave = await peer_factory(b)
        await dave.login("dave")
        await alice.recv()
        # Redis pauses (data kept): dave's release cannot reach it.
        os.kill(redis.process.pid, signal.SIGSTOP)  # type: ignore[union-attr]
        try:
            await dave.close()
            await wait_health(b, 503)
        finally:
            os.kill(redis.process.pid, signal.SIGCONT)  # type: ignore[union-attr]
        await wait_health(b, 200)
        assert await alice.recv() == {"type": "updata", "action": "offline", "name": "dave"}
        again = await peer_factory(a)
        assert await again.login("dave") == ["alice", "dave"]
    finally:
        redis.stop()


def test_an_instance_whose_redis_is_down_starts_and_says_so() -> None:
    import urllib.error
    import urllib.request

    from support import free_port

    with running_server("--redis", f"redis://127.0.0.1:{free_port()}/0") as (url, process):
        page = "http" + url.removeprefix("ws") + "/healthz"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(page, timeout=10)
        assert refused.value.code == 503
        body = json.loads(refused.value.read())
        assert body["status"] == "unavailable" and "Redis" in body["reason"]

        async def try_login() -> dict:
            async with connect(url) as websocket:
                await websocket.send('{"type":"login","name":"alice"}')
                return json.loads(await asyncio.wait_for(websocket.recv(), 10))

        reply = asyncio.run(try_login())
        assert reply["success"] is False and "unavailable" in reply["message"]
        assert "Traceback" not in process.stderr
