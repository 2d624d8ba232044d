"""chatfocus.channel_layer against the real Redis: one subscription per group per process, batched
subscription changes, group_add returning only once the subscription is live, per-socket capacity."""

import asyncio
import functools
import uuid

import pytest
import redis
from asgiref.sync import async_to_sync
from django.conf import settings

from chatfocus.channel_layer import COMMAND_BATCH, RedisFanoutChannelLayer

WAIT = 20


@pytest.fixture
def layer():
    return RedisFanoutChannelLayer(url=settings.REDIS_URL, prefix=f"test.{uuid.uuid4().hex[:8]}")


def subscribers(layer, group: str) -> int:
    """How many connections Redis counts on the group's channel (every process's, here one)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return dict(client.pubsub_numsub(layer.group_channel(group)))[layer.group_channel(group).encode()]
    finally:
        client.close()


def publish(layer, group: str, message: dict) -> int:
    """Publish as a web process does (syncsettings.realtime): a plain client, outside the layer."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return client.publish(layer.group_channel(group), layer.serialize(message))
    finally:
        client.close()


def count_commands(hub) -> dict:
    """Wrap the hub's SUBSCRIBE/UNSUBSCRIBE: how many commands, how many channels."""
    counts = {"subscribe": [], "unsubscribe": []}
    for name in counts:
        original = getattr(hub.pubsub, name)

        async def counted(*channels, _name=name, _original=original):
            counts[_name].append(len(channels))
            return await _original(*channels)

        setattr(hub.pubsub, name, counted)
    return counts


def test_sockets_of_one_group_share_one_subscription_and_the_last_to_leave_unsubscribes(layer):
    group = f"user.{uuid.uuid4().hex}"

    async def scenario():
        channels = [await layer.new_channel() for _ in range(3)]
        await asyncio.gather(*(layer.group_add(group, channel) for channel in channels))
        assert await asyncio.to_thread(subscribers, layer, group) == 1
        # group_add returned after Redis confirmed: a publish right now reaches every member.
        assert await asyncio.to_thread(publish, layer, group, {"type": "sync.changed", "version": 7}) == 1
        for channel in channels:
            async with asyncio.timeout(WAIT):
                assert await layer.receive(channel) == {"type": "sync.changed", "version": 7}
        for channel in channels[:2]:
            await layer.group_discard(group, channel)
        assert layer._hub().members[layer.group_channel(group)] == {channels[2]}
        await layer.group_discard(group, channels[2])
        async with asyncio.timeout(WAIT):
            while await asyncio.to_thread(subscribers, layer, group):
                await asyncio.sleep(0.01)
        await layer.flush()

    async_to_sync(scenario)()


def test_a_burst_of_joins_and_leaves_is_a_few_commands_and_a_socket_joining_after_it_hears_its_group(layer):
    """A deploy or a network blip: thousands of sockets join, then close at once; the next socket still
    joins at once and hears its pokes (channels_redis's pub/sub layer spent one awaited command per
    subscription change, and new sockets waited behind them past the server's handshake timeout)."""
    sockets = 2 * COMMAND_BATCH + 1

    async def scenario():
        await layer.new_channel()
        hub = layer._hub()
        await hub._until_live(layer.process_channel(hub.process_id))
        counts = count_commands(hub)
        channels = [await layer.new_channel() for _ in range(sockets)]
        await asyncio.gather(*(layer.group_add(f"user.{index}", channel) for index, channel in enumerate(channels)))
        assert sum(counts["subscribe"]) == sockets and len(counts["subscribe"]) <= 2 * sockets // COMMAND_BATCH + 2

        receivers = [asyncio.ensure_future(layer.receive(channel)) for channel in channels]
        await asyncio.sleep(0)
        for receiver in receivers:
            receiver.cancel()  # what Channels does to each closing socket's consumer
        await asyncio.gather(*receivers, return_exceptions=True)
        late = await layer.new_channel()
        group = f"user.{uuid.uuid4().hex}"
        await layer.group_add(group, late)
        assert await asyncio.to_thread(publish, layer, group, {"type": "sync.changed", "version": 1}) == 1
        async with asyncio.timeout(WAIT):
            assert await layer.receive(late) == {"type": "sync.changed", "version": 1}
        assert sum(counts["unsubscribe"]) == sockets and len(counts["unsubscribe"]) <= 2 * sockets // COMMAND_BATCH + 2
        assert layer._hub().members.keys() == {
            layer.process_channel(layer._hub().process_id),
            layer.group_channel(group),
        }
        await layer.flush()

    async_to_sync(scenario)()


def test_rejoining_a_group_whose_unsubscribe_is_in_flight_waits_for_the_new_subscription(layer):
    group = f"user.{uuid.uuid4().hex}"

    async def scenario():
        first, second = await layer.new_channel(), await layer.new_channel()
        hub = layer._hub()
        await layer.group_add(group, first)
        await layer.group_discard(group, first)
        # Let the hub send the UNSUBSCRIBE; its confirmation has not been read yet.
        while layer.group_channel(group) in hub.subscribed:
            await asyncio.sleep(0)
        await layer.group_add(group, second)
        assert hub._live(layer.group_channel(group))
        assert await asyncio.to_thread(publish, layer, group, {"type": "sync.changed", "version": 2}) == 1
        async with asyncio.timeout(WAIT):
            assert await layer.receive(second) == {"type": "sync.changed", "version": 2}
        assert hub.queues[first].empty()
        await layer.flush()

    async_to_sync(scenario)()


def test_a_message_for_a_socket_of_another_process_travels_on_that_processs_channel(layer):
    other_process = RedisFanoutChannelLayer(url=settings.REDIS_URL, prefix=layer.prefix)

    async def scenario():
        here = await layer.new_channel()
        hub = layer._hub()
        await hub._until_live(layer.process_channel(hub.process_id))
        await other_process.new_channel()
        await other_process.send(here, {"type": "sync.evicted"})
        async with asyncio.timeout(WAIT):
            assert await layer.receive(here) == {"type": "sync.evicted"}
        with pytest.raises(ValueError):
            await other_process.send("workers", {"type": "sync.evicted"})
        await layer.flush()
        await other_process.flush()

    async_to_sync(scenario)()


def test_a_socket_that_does_not_read_loses_messages_past_its_capacity_and_others_still_get_theirs():
    layer = RedisFanoutChannelLayer(url=settings.REDIS_URL, prefix=f"test.{uuid.uuid4().hex[:8]}", capacity=2)
    group = f"user.{uuid.uuid4().hex}"

    async def scenario():
        stuck, reading = await layer.new_channel(), await layer.new_channel()
        await layer.group_add(group, stuck)
        await layer.group_add(group, reading)
        for version in (1, 2, 3):
            await layer.group_send(group, {"type": "sync.changed", "version": version})
            async with asyncio.timeout(WAIT):
                assert await layer.receive(reading) == {"type": "sync.changed", "version": version}
        assert [await layer.receive(stuck) for _ in range(2)] == [
            {"type": "sync.changed", "version": 1},
            {"type": "sync.changed", "version": 2},
        ]
        assert layer._hub().dropped == 1
        await layer.flush()

    async_to_sync(scenario)()


def test_a_channel_from_elsewhere_cannot_join_a_group_or_be_read(layer):
    async def scenario():
        with pytest.raises(ValueError):
            await layer.group_add("user.1", "specific.0123!abc")
        with pytest.raises(ValueError):
            await layer.receive("specific.0123!abc")
        with pytest.raises(TypeError):
            await layer.group_add("not a valid group", await layer.new_channel())
        await layer.flush()

    async_to_sync(scenario)()


def test_a_join_waits_for_the_confirmation_of_its_own_subscribe_not_of_an_earlier_unsubscribe(layer):
    """The bookkeeping alone, confirmations fed by hand: leave, the UNSUBSCRIBE goes out, join again, the
    SUBSCRIBE goes out; Redis confirms in order, and only the second confirmation makes the join live."""
    group_channel = layer.group_channel("user.1")

    async def scenario():
        hub = layer._hub()
        sent = []

        async def record(*channels, _kind):
            sent.append((_kind, channels))

        hub.pubsub.subscribe = functools.partial(record, _kind="subscribe")
        hub.pubsub.unsubscribe = functools.partial(record, _kind="unsubscribe")
        writer = asyncio.ensure_future(hub._write())
        hub.tasks = [writer]  # no reader: confirmations come from this test
        hub.wake.set()
        process_channel = layer.process_channel(hub.process_id)
        hub.queues["a!1"] = asyncio.Queue()
        hub.queues["a!2"] = asyncio.Queue()

        def confirm(kind, name):
            hub._received({"type": kind, "channel": name.encode(), "data": 1})

        async def until_sent(count):
            while len(sent) < count:
                await asyncio.sleep(0)

        first = asyncio.ensure_future(hub.join(group_channel, "a!1"))
        await until_sent(1)
        confirm("subscribe", process_channel)
        await until_sent(2)
        assert sent == [("subscribe", (process_channel,)), ("subscribe", (group_channel,))]
        confirm("subscribe", group_channel)
        await first

        hub.leave(group_channel, "a!1")
        await until_sent(3)
        second = asyncio.ensure_future(hub.join(group_channel, "a!2"))
        await until_sent(4)
        assert sent[2:] == [("unsubscribe", (group_channel,)), ("subscribe", (group_channel,))]
        confirm("unsubscribe", group_channel)
        await asyncio.sleep(0)
        assert not second.done() and not hub._live(group_channel)
        confirm("subscribe", group_channel)
        await second
        assert hub._live(group_channel) and hub.members[group_channel] == {"a!2"}
        # A confirmation nobody waits for (a reconnect resubscribing) changes nothing.
        confirm("subscribe", group_channel)
        assert hub._live(group_channel) and not hub.pending
        await layer.flush()

    async_to_sync(scenario)()


def test_after_redis_drops_the_pubsub_connection_the_layer_resubscribes_and_members_hear_again(layer):
    """A Redis restart or failover: pokes published while the connection is down are lost (clients poll),
    then the same subscriptions come back without any socket rejoining."""
    group = f"user.{uuid.uuid4().hex}"

    async def scenario():
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        hub = layer._hub()
        admin = redis.Redis.from_url(settings.REDIS_URL)
        (client,) = [c for c in admin.client_list() if c["name"] == f"cf-realtime-{hub.process_id}"]
        assert admin.client_kill_filter(_id=client["id"]) == 1
        admin.close()
        async with asyncio.timeout(WAIT):
            while True:
                # Published until it lands: the reconnect takes its time.
                await asyncio.to_thread(publish, layer, group, {"type": "sync.changed", "version": 3})
                try:
                    async with asyncio.timeout(0.2):
                        assert await hub.queues[channel].get() == {"type": "sync.changed", "version": 3}
                    break
                except TimeoutError:
                    continue
        admin = redis.Redis.from_url(settings.REDIS_URL)
        (again,) = [c for c in admin.client_list() if c["name"] == f"cf-realtime-{hub.process_id}"]
        admin.close()
        assert again["id"] != client["id"]
        assert hub._live(layer.group_channel(group))
        await layer.flush()

    async_to_sync(scenario)()
