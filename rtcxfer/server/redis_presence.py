"""A name space shared by several ``rtcxfer serve`` instances through Redis (``--redis``).

What lives in Redis (``rtcxfer:`` prefix; docs/scaling.md has the arithmetic):

- ``room:{room}:names``  hash name -> owning instance id; ``room:{room}:order`` sorted
  set name -> login sequence (the userlist's order); ``room:{room}:seq`` a counter
  that numbers the room's presence events;
- ``inst:{id}:alive`` the instance's lease (expires after :data:`LEASE_MS` unless its
  heartbeat renews it); ``inst:{id}:users`` the ``[room, name]`` pairs it holds;
  ``instances`` the ids of every instance;
- channel ``room:{room}``: presence events ``{"s": seq, "a": "login"|"offline",
  "n": name, "i": instance, "p": [partners]}``, published by the Lua script that
  changed the room, so their order is the order of the changes;
- channel ``inst:{id}``: relayed messages for users of that instance.

Claims and releases are Lua scripts: a name is claimed atomically (``HSETNX``
semantics across instances). Every command this instance sends goes through
one ordered queue, pipelined: relays from one instance to another arrive in
the order they were sent, after the presence changes sent before them.

Each instance subscribes to the rooms its users are in and keeps a *mirror* of
each: names and their instances, kept current by the events. A relay is then
routed without a round trip (to a local user, to another instance's channel);
a name the mirror lacks is looked up by a script in the queue (its login event
may not have arrived yet), and refused only when it is online nowhere. A dead
instance stops renewing its lease; any other instance then runs the reaper
script, which frees its names and publishes their ``offline`` events (partners
find their ``leave`` from their own session records). When Redis is unreachable
the instance says so (``/healthz`` 503 with the reason), refuses logins, and
once Redis answers again re-claims its users and re-reads every mirror, telling
its users what changed meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rtcxfer.errors import RtcxferError
from rtcxfer.protocol.signaling import quote
from rtcxfer.server.core import Conn, shown
from rtcxfer.server.presence import ClaimAnswer, Presence, PresenceSink, presence_frame

logger = logging.getLogger("rtcxfer.server")

PREFIX = "rtcxfer:"
LEASE_MS = 5000  # an instance silent for this long is dead
HEARTBEAT_INTERVAL = 1.0
REAP_INTERVAL = 2.0
RETRY_INTERVAL = 0.5  # between attempts to reach Redis again
REBUILD_SETTLE = 2.5  # seconds between re-claiming this instance's users and re-reading rooms
MAX_BATCH = 1024  # commands per pipeline
RECENT_EVENTS = 4096  # presence events a room mirror keeps for clients still logging in
COMMAND_TIMEOUT = 5.0


class RedisUnavailable(RtcxferError):
    """The redis extra is not installed, or the URL is not a Redis URL."""


def _keys(room: str) -> tuple[str, str, str, str]:
    base = f"{PREFIX}room:{room}"
    return f"{base}:names", f"{base}:order", f"{base}:seq", base


# KEYS: names, order, seq, instance users, alive.  ARGV: name, instance id,
# [room, name] as JSON, room channel.  -> {1, seq, order, names...} | {0} taken | {-1} no lease
CLAIM = """
if redis.call('EXISTS', KEYS[5]) == 0 then return {-1} end
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and current ~= ARGV[2] then return {0} end
local seq = redis.call('INCR', KEYS[3])
if not current then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[2], seq, ARGV[1])
  redis.call('SADD', KEYS[4], ARGV[3])
end
redis.call('PUBLISH', ARGV[4], cjson.encode({s=seq, a='login', n=ARGV[1], i=ARGV[2]}))
return {1, seq, redis.call('ZRANGE', KEYS[2], 0, -1), redis.call('HGETALL', KEYS[1])}
"""

# KEYS: names, order, seq, instance users.  ARGV: name, instance id, [room, name],
# room channel, partners as a JSON array.
RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[3])
local seq = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[4], cjson.encode({s=seq, a='offline', n=ARGV[1], i=ARGV[2],
                                             p=cjson.decode(ARGV[5])}))
return seq
"""

# KEYS: names (of one room).  ARGV: name, instance channel prefix, one framed relay.
# -> 1 published to the name's instance, 0 the name is online nowhere
ROUTE = """
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if not owner then return 0 end
redis.call('PUBLISH', ARGV[2] .. owner, ARGV[3])
return 1
"""

# What the ordered queue runs, by the kind of its operation.
QUEUED_SCRIPTS = {"claim": CLAIM, "release": RELEASE, "route": ROUTE}

# KEYS: order, names, seq (of one room).  -> {seq, order, names}
SNAPSHOT = """
return {tonumber(redis.call('GET', KEYS[3]) or '0'), redis.call('ZRANGE', KEYS[1], 0, -1),
        redis.call('HGETALL', KEYS[2])}
"""

# KEYS: alive, instances.  ARGV: instance id, lease ms.  -> 1 if the lease was still held
HEARTBEAT = """
local held = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return held
"""

# KEYS: the dead instance's alive and users keys, instances.  ARGV: dead id, prefix.
# Frees every name the dead instance held and publishes its offline event.
REAP = """
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local members = redis.call('SMEMBERS', KEYS[2])
for _, member in ipairs(members) do
  local pair = cjson.decode(member)
  local base = ARGV[2] .. 'room:' .. pair[1]
  if redis.call('HGET', base .. ':names', pair[2]) == ARGV[1] then
    redis.call('HDEL', base .. ':names', pair[2])
    redis.call('ZREM', base .. ':order', pair[2])
    local seq = redis.call('INCR', base .. ':seq')
    redis.call('PUBLISH', base, cjson.encode({s=seq, a='offline', n=pair[2], i=ARGV[1]}))
  end
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return #members
"""


@dataclass
class Mirror:
    """What this instance knows of one room: its users (login order) and their instances."""

    members: dict[str, str] = field(default_factory=dict)
    seq: int | None = None  # the last event applied; None until a snapshot arrived
    waiting: list[dict[str, Any]] = field(default_factory=list)  # events before the snapshot
    recent: collections.deque[tuple[int, str, str]] = field(
        default_factory=lambda: collections.deque(maxlen=RECENT_EVENTS))
    local: dict[str, Conn] = field(default_factory=dict)  # users of this instance, by name
    client_seq: dict[Conn, int] = field(default_factory=dict)  # each one's userlist snapshot
    claims: int = 0  # claims in flight for this room


class _Op:
    __slots__ = ("args", "future", "kind")

    def __init__(self, kind: str, args: tuple[Any, ...],
                 future: asyncio.Future[Any] | None) -> None:
        self.kind = kind
        self.args = args
        self.future = future


def _pairs(flat: Sequence[bytes]) -> dict[str, str]:
    return {flat[index].decode(): flat[index + 1].decode() for index in range(0, len(flat), 2)}


class RedisPresence(Presence):
    """Presence shared through Redis (see the module docstring)."""

    def __init__(self, sink: PresenceSink, url: str) -> None:
        super().__init__(sink)
        try:
            import redis.asyncio as aioredis
        except ImportError as error:
            raise RedisUnavailable(
                "--redis needs the redis extra: pip install 'rtcxfer[redis]'") from error
        try:
            self.redis = aioredis.Redis.from_url(
                url, socket_timeout=COMMAND_TIMEOUT, socket_connect_timeout=COMMAND_TIMEOUT,
                health_check_interval=0)
        except ValueError as error:
            raise RedisUnavailable(f"not a Redis URL: {url} ({error})") from error
        self.url = url
        self.id = secrets.token_hex(8)
        self.channel = f"{PREFIX}inst:{self.id}"
        self.alive_key = f"{PREFIX}inst:{self.id}:alive"
        self.users_key = f"{PREFIX}inst:{self.id}:users"
        self.instances_key = f"{PREFIX}instances"
        self.rooms: dict[str, Mirror] = {}
        self._claim = self.redis.register_script(CLAIM)
        self._release = self.redis.register_script(RELEASE)
        self._snapshot = self.redis.register_script(SNAPSHOT)
        self._heartbeat = self.redis.register_script(HEARTBEAT)
        self._reap = self.redis.register_script(REAP)
        self._queue: asyncio.Queue[_Op] = asyncio.Queue()
        self._available = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._pubsub: Any = None
        self._subscribed: set[str] = set()
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._unavailable: str | None = "connecting to Redis"
        self._registered = False
        self._registered_once = False
        self._rebuilding: asyncio.Task[None] | None = None
        self._reserved: set[tuple[str, str]] = set()

    # Lifecycle and health

    @property
    def unavailable(self) -> str | None:
        return self._unavailable

    def _down(self, error: BaseException) -> None:
        reason = f"Redis at {self.url} is unreachable ({type(error).__name__}: {error})"
        if self._unavailable is None:
            logger.error("%s: refusing logins until it is back", reason)
        self._unavailable = reason
        self._available.clear()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for coroutine in (self._writer(), self._reader(), self._heartbeats(), self._reaper()):
            self._tasks.append(loop.create_task(coroutine))
        # Wait a little for Redis so that a healthy start is available at once;
        # an instance whose Redis is down starts anyway and says so.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3.0):
                await self._available.wait()

    async def close(self) -> None:
        # Let the queued releases of the connections just closed reach Redis.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3.0):
                await self._queue.join()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self.redis.delete(self.alive_key)
                await self._reap(keys=[self.alive_key, self.users_key, self.instances_key],
                                 args=[self.id, PREFIX])
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    # The ordered command queue

    def _enqueue(self, kind: str, *args: Any, result: bool = False) -> asyncio.Future[Any] | None:
        future = asyncio.get_running_loop().create_future() if result else None
        self._queue.put_nowait(_Op(kind, args, future))
        return future

    async def _writer(self) -> None:
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < MAX_BATCH:
                batch.append(queue.get_nowait())
            try:
                await self._execute(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The queue's one consumer must outlive any bug in a batch.
                logger.exception("internal error sending %d commands to Redis", len(batch))
            finally:
                for _ in batch:
                    queue.task_done()

    async def _execute(self, batch: list[_Op]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        # One entry per pipelined command: the op waiting for its result, if any.
        slots: list[_Op | None] = []
        # Consecutive relays to one instance share one PUBLISH (length-prefixed),
        # in order; a claim or release between them keeps its place.
        relays: dict[str, list[bytes]] = {}

        def publish_relays() -> None:
            for channel, items in relays.items():
                pipe.publish(channel, b"".join(items))
                slots.append(None)
            relays.clear()

        for op in batch:
            if op.kind == "publish":
                channel, item = op.args
                relays.setdefault(channel, []).append(len(item).to_bytes(4, "big") + item)
                continue
            publish_relays()
            # EVAL, not a registered script: redis-py runs a pipeline holding scripts
            # only after a SCRIPT EXISTS round trip (a login would cost two).
            keys, args = op.args
            pipe.eval(QUEUED_SCRIPTS[op.kind], len(keys), *keys, *args)
            slots.append(op)
        publish_relays()
        try:
            results = await pipe.execute(raise_on_error=False)
        except Exception as error:
            self._down(error)
            dropped = sum(op.kind == "publish" for op in batch)
            if dropped:
                logger.warning("dropped %d relayed messages: Redis is unreachable",
                               dropped)
            for op in batch:
                if op.future is not None and not op.future.done():
                    op.future.set_exception(ConnectionError(str(error)))
            return
        for op, outcome in zip(slots, results, strict=True):
            if op is None or op.future is None or op.future.done():
                continue
            if isinstance(outcome, Exception):
                op.future.set_exception(outcome)
            else:
                op.future.set_result(outcome)

    # Subscriptions and incoming messages

    async def _subscribe(self, channel: str) -> None:
        """Subscribe and wait until Redis confirmed it (no event published later is missed)."""
        if channel not in self._subscribed:
            self._subscribed.add(channel)
            if self._pubsub is not None and channel not in self._confirmations:
                self._confirmations[channel] = asyncio.get_running_loop().create_future()
                await self._pubsub.subscribe(channel)
        waiter = self._confirmations.get(channel)
        if waiter is not None:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await asyncio.shield(waiter)

    async def _reader(self) -> None:
        while True:
            try:
                pubsub = self.redis.pubsub()
                channels = [self.channel, *self._subscribed]
                self._subscribed.add(self.channel)
                for channel in channels:
                    self._confirmations.setdefault(
                        channel, asyncio.get_running_loop().create_future())
                await pubsub.subscribe(*channels)
                self._pubsub = pubsub
                # listen() reads as data arrives; get_message(timeout) can leave
                # messages already parsed into the buffer waiting for its timeout.
                async for message in pubsub.listen():
                    self._on_message(message)
                raise ConnectionError("the Redis subscription ended")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._down(error)
                self._pubsub = None
                for waiter in self._confirmations.values():
                    if not waiter.done():
                        waiter.set_exception(ConnectionError(str(error)))
                        waiter.exception()  # retrieved: nobody may be waiting
                self._confirmations.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(RETRY_INTERVAL)

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel = message["channel"].decode()
        if kind == b"subscribe" or kind == "subscribe":
            waiter = self._confirmations.get(channel)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        if kind not in ("message", b"message"):
            return
        data: bytes = message["data"]
        try:
            if channel == self.channel:
                self._on_relay(data)
            elif channel.startswith(PREFIX + "room:"):
                self._on_event(channel[len(PREFIX) + 5:], json.loads(data))
        except Exception:
            logger.exception("bad message on Redis channel %s", shown(channel))

    def _on_relay(self, data: bytes) -> None:
        """Relayed messages for local users, each ``length (4 bytes) header \\n payload``."""
        offset, size = 0, len(data)
        rooms = self.rooms
        while offset + 4 <= size:
            end = offset + 4 + int.from_bytes(data[offset:offset + 4], "big")
            header, _, payload = data[offset + 4:end].partition(b"\n")
            offset = end
            room, target, sender, kind, session = json.loads(header)
            mirror = rooms.get(room)
            client = mirror.local.get(target) if mirror is not None else None
            if client is not None:
                self.sink.deliver_local(client, payload, sender, kind, session)

    def _on_event(self, room: str, event: dict[str, Any]) -> None:
        mirror = self.rooms.get(room)
        if mirror is None:
            return
        if mirror.seq is None:
            mirror.waiting.append(event)
            return
        self._apply(room, mirror, event)

    def _apply(self, room: str, mirror: Mirror, event: dict[str, Any]) -> None:
        seq = int(event["s"])
        if seq <= mirror.seq:  # type: ignore[operator]
            return
        mirror.seq = seq
        name = str(event["n"])
        action = str(event["a"])
        mirror.recent.append((seq, action, name))
        if action == "login":
            if name in mirror.members:
                mirror.members[name] = str(event["i"])
                return
            mirror.members[name] = str(event["i"])
            self._tell_local(mirror, seq, presence_frame("login", name), exclude=name)
        else:
            if mirror.members.get(name) != event.get("i", mirror.members.get(name)):
                return  # a stale event about an earlier owner of the name
            known = mirror.members.pop(name, None) is not None
            self._partners_gone(mirror, name, event.get("p"))
            if known:
                self._tell_local(mirror, seq, presence_frame("offline", name), exclude=name)

    def _partners_gone(self, mirror: Mirror, name: str, partners: Any) -> None:
        if isinstance(partners, list):
            candidates = [mirror.local[p] for p in partners if p in mirror.local]
        elif partners is None:  # reaped: no record of partners, look at everyone
            candidates = list(mirror.local.values())
        else:  # cjson turns an empty array into {}
            candidates = []
        for client in candidates:
            if client.name != name:
                self.sink.partner_gone(client, name)

    def _tell_local(self, mirror: Mirror, seq: int, frame: bytes, *, exclude: str) -> None:
        client_seq = mirror.client_seq
        self.sink.write_many([client for name, client in mirror.local.items()
                              if name != exclude and client_seq.get(client, 0) < seq], frame)

    # The backend interface

    def claim(self, client: Conn, room: str, name: str) -> ClaimAnswer | Any:
        if self._unavailable is not None:
            return None, "the server's shared name space is unavailable; try again later"
        mirror = self.rooms.get(room)
        if (mirror is not None and name in mirror.local) or (room, name) in self._reserved:
            return None, f"name {quote(name)} is already taken"
        return self._claim_remote(client, room, name)

    async def _claim_remote(self, client: Conn, room: str, name: str) -> ClaimAnswer:
        mirror = self.rooms.get(room)
        if mirror is None:
            mirror = self.rooms[room] = Mirror()
        mirror.claims += 1
        self._reserved.add((room, name))
        try:
            names, order, seq_key, channel = _keys(room)
            await self._subscribe(channel)
            future = self._enqueue(
                "claim", [names, order, seq_key, self.users_key, self.alive_key],
                [name, self.id, json.dumps([room, name]), channel], result=True)
            assert future is not None
            reply = await future
        except Exception as error:
            self._down(error)
            return None, "the server's shared name space is unavailable; try again later"
        finally:
            mirror.claims -= 1
            self._reserved.discard((room, name))
        status = int(reply[0])
        if status == 0:
            return None, f"name {quote(name)} is already taken"
        if status < 0:
            self._lease_lost()
            return None, "the server's shared name space is being rebuilt; try again"
        seq = int(reply[1])
        users = [user.decode() for user in reply[2]]
        if mirror.seq is None:
            mirror.members = dict.fromkeys(users, "")
            mirror.members.update(_pairs(reply[3]))
            mirror.seq = seq
            waiting, mirror.waiting = mirror.waiting, []
            for event in waiting:
                self._apply(room, mirror, event)
        mirror.local[name] = client
        mirror.client_seq[client] = seq
        # mirror.members learns of the new user from its own login event, which
        # also tells the other local users of the room.
        # Events of this room that arrived before the answer: the new user hears of
        # those after its snapshot.
        for event_seq, action, other in mirror.recent:
            if event_seq > seq and other != name:
                self.sink.write(client, presence_frame(action, other), urgent=False)
        return users, None

    def release(self, client: Conn, room: str, name: str, partners: Sequence[str]) -> None:
        mirror = self.rooms.get(room)
        if mirror is not None and mirror.local.get(name) is client:
            del mirror.local[name]
            mirror.client_seq.pop(client, None)
        names, order, seq_key, channel = _keys(room)
        self._enqueue("release", [names, order, seq_key, self.users_key],
                      [name, self.id, json.dumps([room, name]), channel, json.dumps(partners)])

    def members(self, room: str) -> list[str]:
        mirror = self.rooms.get(room)
        return list(mirror.members) if mirror is not None else []

    def deliver(self, room: str, target: str, sender: str, kind: str, session: str | None,
                payload: bytes) -> bool | Awaitable[bool]:
        mirror = self.rooms.get(room)
        if mirror is None:
            return False
        client = mirror.local.get(target)
        if client is not None:
            self.sink.deliver_local(client, payload, sender, kind, session)
            return True
        instance = mirror.members.get(target)
        if instance == self.id:
            return False
        header = json.dumps([room, target, sender, kind, session]).encode()
        if instance:
            self._enqueue("publish", f"{PREFIX}inst:{instance}", header + b"\n" + payload)
            return True
        # Not in the mirror: online nowhere, or a login whose event has not reached this
        # instance yet (its user may already have its userlist, and its partner may be
        # quick). Redis decides, in the queue's order: relays keep theirs.
        item = header + b"\n" + payload
        future = self._enqueue("route", [_keys(room)[0]],
                               [target, f"{PREFIX}inst:", len(item).to_bytes(4, "big") + item],
                               result=True)
        assert future is not None
        return self._routed(future)

    async def _routed(self, future: asyncio.Future[Any]) -> bool:
        try:
            return bool(int(await future))
        except Exception:
            return False  # Redis is unreachable: _down() says so; the relay is lost

    def broadcast(self, room: str, frame: bytes, *, exclude: str | None = None) -> None:
        # Presence goes through the room's events; only local users are written to here.
        mirror = self.rooms.get(room)
        if mirror is None:
            return
        self.sink.write_many([client for name, client in mirror.local.items()
                              if name != exclude], frame)

    # Leases, reaping and rebuilding

    async def _heartbeats(self) -> None:
        while True:
            try:
                held = await self._heartbeat(keys=[self.alive_key, self.instances_key],
                                             args=[self.id, LEASE_MS])
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._down(error)
                await asyncio.sleep(RETRY_INTERVAL)
                continue
            was_down = self._unavailable is not None
            if self._pubsub is None:  # not subscribed (yet, or again): not usable
                await asyncio.sleep(RETRY_INTERVAL)
                continue
            if not self._registered:
                self._registered = True
                logger.info("sharing the name space through Redis at %s as instance %s",
                            self.url, self.id)
            elif was_down or not held:
                logger.warning("Redis is back%s: rebuilding this instance's presence",
                               "" if held else " (its lease had expired)")
                try:
                    await self._rebuild()
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    self._down(error)
                    await asyncio.sleep(RETRY_INTERVAL)
                    continue
            if self._unavailable is not None and self._registered_once:
                logger.warning("the shared name space is available again")
            self._registered_once = True
            self._unavailable = None
            self._available.set()
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    def _lease_lost(self) -> None:
        if self._unavailable is None:
            self._unavailable = "this instance's lease in Redis expired; rebuilding"

    async def _rebuild(self) -> None:
        """Claim every local user again and re-read every room this instance mirrors."""
        await self._heartbeat(keys=[self.alive_key, self.instances_key],
                              args=[self.id, LEASE_MS])
        # Names Redis still holds for users who left while it was unreachable.
        for raw in await self.redis.smembers(self.users_key):
            room, name = json.loads(raw)
            mirror = self.rooms.get(room)
            if mirror is None or name not in mirror.local:
                names, order, seq_key, channel = _keys(room)
                await self._release(keys=[names, order, seq_key, self.users_key],
                                    args=[name, self.id, raw, channel, "[]"])
        for room, mirror in list(self.rooms.items()):
            names, order, seq_key, channel = _keys(room)
            await self._subscribe(channel)
            for name, client in list(mirror.local.items()):
                reply = await self._claim(
                    keys=[names, order, seq_key, self.users_key, self.alive_key],
                    args=[name, self.id, json.dumps([room, name]), channel])
                if int(reply[0]) != 1:
                    del mirror.local[name]
                    mirror.client_seq.pop(client, None)
                    self.sink.evict(client, f"name {quote(name)} was taken on another "
                                            "instance while Redis was unreachable")
        # The other instances claim their users again within a heartbeat or two of
        # Redis coming back: read the rooms after that, so that nobody flaps offline.
        if self.rooms:
            await asyncio.sleep(REBUILD_SETTLE)
        for room, mirror in list(self.rooms.items()):
            names, order, seq_key, _channel = _keys(room)
            seq, order_list, flat = await self._snapshot(keys=[order, names, seq_key])
            current = dict.fromkeys((user.decode() for user in order_list), "")
            current.update(_pairs(flat))
            previous = mirror.members
            for name in [name for name in previous if name not in current]:
                self._partners_gone(mirror, name, None)
                self._tell_local(mirror, 1 << 62, presence_frame("offline", name),
                                 exclude=name)
            for name in [name for name in current if name not in previous]:
                self._tell_local(mirror, 1 << 62, presence_frame("login", name),
                                 exclude=name)
            mirror.members = current
            mirror.seq = int(seq)
            mirror.waiting.clear()
            mirror.recent.clear()
            for client in mirror.client_seq:
                mirror.client_seq[client] = int(seq)
            if not mirror.local and not mirror.claims:
                del self.rooms[room]

    async def _reaper(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            try:
                instances = await self.redis.smembers(self.instances_key)
                for raw in instances:
                    other = raw.decode()
                    if other == self.id:
                        continue
                    alive = f"{PREFIX}inst:{other}:alive"
                    if await self.redis.exists(alive):
                        continue
                    reaped = await self._reap(
                        keys=[alive, f"{PREFIX}inst:{other}:users", self.instances_key],
                        args=[other, PREFIX])
                    if int(reaped) > 0:
                        logger.warning("instance %s stopped renewing its lease: freed its %d "
                                       "names", shown(other), int(reaped))
                self._forget_empty_rooms()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._down(error)

    def _forget_empty_rooms(self) -> None:
        for room, mirror in list(self.rooms.items()):
            if not mirror.local and not mirror.claims:
                del self.rooms[room]
                channel = _keys(room)[3]
                self._subscribed.discard(channel)
                self._confirmations.pop(channel, None)
                if self._pubsub is not None:
                    task = asyncio.get_running_loop().create_task(
                        self._pubsub.unsubscribe(channel))
                    task.add_done_callback(lambda done: done.cancelled() or done.exception())
