"""The Channels layer of the realtime process: Redis pub/sub fanned out in process.

Each realtime process holds one pub/sub connection. It subscribes a group's Redis channel once, for as
many of its sockets as joined the group, and hands each message to those sockets' queues; a socket's own
channel name (`new_channel`) carries its process's id, so a message for it is one PUBLISH on that
process's channel. Joining and leaving are local; a task sends the subscription changes they cause as
one SUBSCRIBE and one UNSUBSCRIBE per batch, so 10,000 sockets closing at once cost a few commands.

Why not channels_redis (measured in bench/, README "Real-time process"): its list layer spent a
sorted-set read and a script per socket per message; its pub/sub layer awaited every subscribe and
unsubscribe one at a time under one lock per process, so after a mass disconnect new sockets waited
past the ASGI server's handshake timeout (403), and it read with a 0.1 s timeout in a loop.

`group_add` returns once Redis confirmed the subscription: a caller that then reads state (the sync
consumer reads the version) cannot miss a message published after the read. Messages are JSON.
Messages published while the connection is down are lost (redis-py reconnects and resubscribes).
"""

import asyncio
import json
import logging
import types
import uuid
from collections import deque

from channels.layers import BaseChannelLayer
from redis import asyncio as aioredis

logger = logging.getLogger(__name__)

# Channels per SUBSCRIBE/UNSUBSCRIBE command: a burst of joins or leaves is a handful of commands.
COMMAND_BATCH = 1000
RETRY_SECONDS = 1.0
MAX_PUBLISH_CONNECTIONS = 20


def redis_options() -> dict:
    """Connection options of every client of the layer (and of the publisher in syncsettings.realtime).

    No socket timeout, on purpose: a pub/sub read blocks until a message comes, and with a timeout
    redis-py sends through asyncio.wait_for, which on Python 3.11 can swallow the cancellation of a
    closing socket's task. TCP keepalive notices a dead Redis instead.
    """
    return {"socket_connect_timeout": 1, "socket_timeout": None, "socket_keepalive": True}


class RedisFanoutChannelLayer(BaseChannelLayer):
    extensions = ["groups", "flush"]

    def __init__(self, url: str, prefix: str = "cf.ws", capacity: int = 100, **kwargs):
        super().__init__(capacity=capacity, **kwargs)
        self.url, self.prefix = url, prefix
        self._hubs: dict[asyncio.AbstractEventLoop, _Hub] = {}

    # Names on Redis (syncsettings.realtime publishes on group channels from synchronous code).

    def group_channel(self, group: str) -> str:
        return f"{self.prefix}:group:{group}"

    def process_channel(self, process_id: str) -> str:
        return f"{self.prefix}:process:{process_id}"

    @staticmethod
    def serialize(message: dict) -> bytes:
        return json.dumps(message, separators=(",", ":")).encode()

    @staticmethod
    def deserialize(data: bytes) -> dict:
        return json.loads(data)

    # The Channels layer API.

    async def new_channel(self, prefix: str = "specific") -> str:
        hub = self._hub()
        name = f"{prefix}.{hub.process_id}!{uuid.uuid4().hex}"
        hub.queues[name] = asyncio.Queue(maxsize=self.get_capacity(name))
        await hub.start()
        return name

    async def receive(self, channel: str) -> dict:
        hub = self._hub()
        queue = hub.queues.get(channel)
        if queue is None:
            raise ValueError(f"{channel} is not a channel of this process (new_channel makes one).")
        try:
            return await queue.get()
        except asyncio.CancelledError:
            # Channels cancels the receive when its consumer ends: the channel and its groups go with it.
            hub.drop(channel)
            raise

    async def send(self, channel: str, message: dict) -> None:
        self.require_valid_channel_name(channel)
        if "!" not in channel:
            raise ValueError(f"{channel} is not a socket's channel: this layer has no worker channels.")
        hub = self._hub()
        process_id = channel.partition("!")[0].rpartition(".")[2]
        if process_id == hub.process_id:
            hub.put(channel, message)
            return
        envelope = {"to": channel, "message": message}
        await hub.publish(self.process_channel(process_id), self.serialize(envelope))

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        hub = self._hub()
        if channel not in hub.queues:
            raise ValueError(f"{channel} is not a channel of this process: only local channels join groups.")
        await hub.join(self.group_channel(group), channel)

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self._hub().leave(self.group_channel(group), channel)

    async def group_send(self, group: str, message: dict) -> None:
        self.require_valid_group_name(group)
        await self._hub().publish(self.group_channel(group), self.serialize(message))

    async def flush(self) -> None:
        hub = self._hubs.pop(asyncio.get_running_loop(), None)
        if hub is not None:
            await hub.close()

    def _hub(self) -> "_Hub":
        # Connections belong to one event loop: the server has one; tests and async_to_sync make more.
        loop = asyncio.get_running_loop()
        hub = self._hubs.get(loop)
        if hub is None:
            hub = self._hubs[loop] = _Hub(self)
            _close_with(loop, self)
        return hub


def _close_with(loop, layer: RedisFanoutChannelLayer) -> None:
    """Close the loop's connections before the loop closes (it cannot run their cleanup afterwards)."""
    close = loop.close

    def closing(self, *args, **kwargs):
        hub = layer._hubs.pop(loop, None)
        if hub is not None and not loop.is_running():
            loop.run_until_complete(hub.close())
        self.close = close
        return close(*args, **kwargs)

    loop.close = types.MethodType(closing, loop)


class _Hub:
    """One event loop's share of the layer: local queues, group members, the pub/sub connection."""

    def __init__(self, layer: RedisFanoutChannelLayer):
        self.layer = layer
        self.process_id = uuid.uuid4().hex
        self.process_channel = layer.process_channel(self.process_id)
        self.queues: dict[str, asyncio.Queue] = {}
        # Redis channel -> local channel names that joined it, and the other way round.
        self.members: dict[str, set[str]] = {self.process_channel: {""}}
        self.joined: dict[str, set[str]] = {}
        # Redis channels whose last command sent was SUBSCRIBE, and per channel the commands sent and
        # not yet confirmed, oldest first: Redis confirms in order, so a subscription is live once it is
        # in `subscribed` with nothing pending.
        self.subscribed: set[str] = set()
        self.pending: dict[str, deque] = {}
        self.waiters: dict[str, list[asyncio.Future]] = {}
        self.dirty: set[str] = set(self.members)
        self.wake = asyncio.Event()
        self.dropped = 0
        self.publisher = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(
                layer.url, max_connections=MAX_PUBLISH_CONNECTIONS, **redis_options()
            )
        )
        # Named, so operators see each realtime process in CLIENT LIST.
        name = f"cf-realtime-{self.process_id}"
        self.pubsub = aioredis.Redis.from_url(layer.url, client_name=name, **redis_options()).pubsub()
        self.tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        """Subscribe this process's channel (first call). Not waited for: with Redis down a socket still
        opens, and its join (which comes after this SUBSCRIBE, so is confirmed after it) is what waits."""
        if not self.tasks:
            self.tasks = [asyncio.ensure_future(self._write()), asyncio.ensure_future(self._read())]
            self.wake.set()

    async def join(self, redis_channel: str, channel: str) -> None:
        # `channel` came from new_channel, which started the hub.
        self.members.setdefault(redis_channel, set()).add(channel)
        self.joined.setdefault(channel, set()).add(redis_channel)
        if redis_channel not in self.subscribed:
            self._mark(redis_channel)
        await self._until_live(redis_channel)

    def leave(self, redis_channel: str, channel: str) -> None:
        members = self.members.get(redis_channel)
        if members is None or channel not in members:
            return
        members.discard(channel)
        self.joined.get(channel, set()).discard(redis_channel)
        if not members:
            del self.members[redis_channel]
            self._mark(redis_channel)

    def drop(self, channel: str) -> None:
        self.queues.pop(channel, None)
        for redis_channel in list(self.joined.get(channel, ())):
            self.leave(redis_channel, channel)
        self.joined.pop(channel, None)

    def put(self, channel: str, message: dict) -> None:
        queue = self.queues.get(channel)
        if queue is None:
            return  # the socket closed meanwhile
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:
            # A socket that cannot keep up loses messages (pokes are hints) instead of holding memory.
            self.dropped += 1

    async def publish(self, redis_channel: str, data: bytes) -> None:
        await self.publisher.publish(redis_channel, data)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for waiters in self.waiters.values():
            for waiter in waiters:
                waiter.cancel()
        await self.pubsub.aclose()
        await self.pubsub.connection_pool.disconnect()
        await self.publisher.aclose()

    # --- Subscriptions -------------------------------------------------------------------------

    def _mark(self, redis_channel: str) -> None:
        self.dirty.add(redis_channel)
        self.wake.set()

    def _live(self, redis_channel: str) -> bool:
        return redis_channel in self.subscribed and not self.pending.get(redis_channel)

    async def _until_live(self, redis_channel: str) -> None:
        if self._live(redis_channel):
            return
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(redis_channel, []).append(waiter)
        try:
            await waiter
        finally:
            waiters = self.waiters.get(redis_channel, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self.waiters.pop(redis_channel, None)

    async def _write(self) -> None:
        """Send the subscription changes that joins and leaves asked for, in batches."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.dirty = self.dirty, set()
            subscribe = [name for name in batch if name in self.members and name not in self.subscribed]
            unsubscribe = [name for name in batch if name not in self.members and name in self.subscribed]
            for name in subscribe:
                self.subscribed.add(name)
                self.pending.setdefault(name, deque()).append("subscribe")
            for name in unsubscribe:
                self.subscribed.discard(name)
                self.pending.setdefault(name, deque()).append("unsubscribe")
            try:
                for names, command in ((subscribe, self.pubsub.subscribe), (unsubscribe, self.pubsub.unsubscribe)):
                    for start in range(0, len(names), COMMAND_BATCH):
                        await command(*names[start : start + COMMAND_BATCH])
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Redis is down: forget what may not have gone out and try again (redis-py reconnects).
                logger.warning("Could not change %d subscription(s): %s", len(batch), error.__class__.__name__)
                for name in (*subscribe, *unsubscribe):
                    # The command appended above (gone if a batch that did go out was confirmed meanwhile).
                    pending = self.pending.get(name)
                    if pending:
                        pending.pop()
                    if not pending:
                        self.pending.pop(name, None)
                self.subscribed.difference_update(subscribe)
                self.subscribed.update(unsubscribe)
                self.dirty.update(batch)
                await asyncio.sleep(RETRY_SECONDS)
                self.wake.set()

    async def _read(self) -> None:
        """Hand each message to the local channels it is for; note each confirmed (un)subscription."""
        while True:
            try:
                if self.pubsub.connection is None:
                    await asyncio.sleep(0.05)  # the first SUBSCRIBE opens the connection (Redis down: later)
                    continue
                message = await self.pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("Real-time pub/sub read failed: %s", error.__class__.__name__)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if message is not None:
                self._received(message)

    def _received(self, message: dict) -> None:
        kind, name = message["type"], message["channel"]
        name = name.decode() if isinstance(name, bytes) else name
        if kind == "message":
            data = self.layer.deserialize(message["data"])
            if name == self.process_channel:
                self.put(data["to"], data["message"])
            else:
                for channel in self.members.get(name, ()):
                    self.put(channel, dict(data))
        elif kind in ("subscribe", "unsubscribe"):
            pending = self.pending.get(name)
            if pending:
                # A confirmation with nothing pending follows a reconnect's resubscription: nothing to do.
                pending.popleft()
                if not pending:
                    del self.pending[name]
            if self._live(name):
                for waiter in self.waiters.get(name, ()):
                    if not waiter.done():
                        waiter.set_result(None)
