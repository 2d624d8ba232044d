"""/ws/sync (DESIGN.md section 5, Real-time): Channels' communicator against the Redis channel layer, and
one real socket against the realtime ASGI process (daphne) started as a subprocess.

The consumer reads the database from other threads: every test commits (transaction=True).
"""

import asyncio
import json
import os
import socket
import threading
import uuid
from types import SimpleNamespace

import pytest
import redis
import websockets
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib import admin
from django.test import RequestFactory

from accounts import services as accounts_services
from accounts.admin import UserAdmin
from accounts.models import User
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from chatfocus.asgi import application
from syncsettings import consumers, realtime
from syncsettings.tests.conftest import SyncClient
from syncsettings.tests.factories import make_op

pytestmark = pytest.mark.django_db(transaction=True)

# Bounds on waiting for something that must happen; a test never asserts how long it took.
WAIT = 20


def run(coroutine_function):
    return async_to_sync(coroutine_function)()


async def receive(communicator) -> dict:
    return json.loads(await communicator.receive_from(timeout=WAIT))


async def closed_with(communicator) -> int:
    while True:
        message = await communicator.receive_output(timeout=WAIT)
        if message["type"] == "websocket.close":
            return message["code"]


async def connect(access: str | None = None, device_id: str = "laptop") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, "/ws/sync")
    connected, _ = await communicator.connect(timeout=WAIT)
    assert connected
    if access is not None:
        await communicator.send_to(text_data=json.dumps({"type": "auth", "access": access, "device_id": device_id}))
    return communicator


async def authenticated(access: str, device_id: str) -> WebsocketCommunicator:
    """A socket whose auth went through: a push's poke (or any message) can only follow the joined groups."""
    communicator = await connect(access, device_id)
    # An account never written hears nothing on success; a ping (shortened below) proves the socket is past auth.
    assert await receive(communicator) == {"type": "ping"}
    return communicator


@pytest.fixture(autouse=True)
def _fast_pings(settings):
    settings.SYNC_WS_PING_SECONDS = 0.05


@pytest.fixture
def device(auth_client):
    """A new signed-in session of `user` (default: a new user): its access token and a SyncClient."""

    def make(user=None):
        client = auth_client(user)
        access = client._credentials["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
        return SimpleNamespace(access=access, sync=SyncClient(client), client=client)

    return make


async def drain_pings(communicator) -> dict:
    """The next message that is not a ping."""
    while (message := await receive(communicator)) == {"type": "ping"}:
        pass
    return message


def test_a_push_pokes_the_users_other_devices_and_not_the_pusher(device):
    laptop = device()
    phone = device(laptop.sync.user)
    stranger = device()

    async def scenario():
        on_laptop = await authenticated(laptop.access, "laptop")
        on_phone = await authenticated(phone.access, "phone")
        on_stranger = await authenticated(stranger.access, "laptop")
        response = await sync_to_async(laptop.sync.push)("laptop", [make_op("theme", "dark")])
        assert response.status_code == 200
        assert await drain_pings(on_phone) == {"type": "changed", "version": 1}
        # The pusher's first poke is the phone's push (version 2), never its own (version 1).
        assert (await sync_to_async(phone.sync.push)("phone", [make_op("font", 12)])).status_code == 200
        assert await drain_pings(on_laptop) == {"type": "changed", "version": 2}
        # Another user's socket got neither: its first poke is its own user's version 3.
        other = await sync_to_async(device)(stranger.sync.user)
        ops = [make_op(f"k{i}", i) for i in range(3)]
        assert (await sync_to_async(other.sync.push)("phone", ops)).status_code == 200
        assert await drain_pings(on_stranger) == {"type": "changed", "version": 3}
        for communicator in (on_laptop, on_phone, on_stranger):
            await communicator.disconnect()

    run(scenario)


def test_a_socket_joining_an_account_with_data_hears_its_version_first(device):
    """A client pulls as it connects, maybe before the socket joined: a write in between reached no poke,
    so the socket is told the account's version once it joined (nothing for an account never written)."""
    laptop = device()
    phone = device(laptop.sync.user)
    assert laptop.sync.push("laptop", [make_op("theme", "dark")]).status_code == 200

    async def scenario():
        on_phone = await connect(phone.access, "phone")
        assert await receive(on_phone) == {"type": "changed", "version": 1}
        await on_phone.disconnect()

    run(scenario)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "auth", "access": "not-a-jwt", "device_id": "laptop"},
        {"type": "auth", "device_id": "laptop"},
        {"type": "hello"},
        "not json",
    ],
)
def test_a_bad_or_missing_token_closes_with_4401(message):
    async def scenario():
        communicator = await connect()
        await communicator.send_to(text_data=message if isinstance(message, str) else json.dumps(message))
        assert await closed_with(communicator) == 4401

    run(scenario)


def test_a_closed_sockets_consumer_stops_when_cancelled_instead_of_receiving_forever():
    """The server closed the socket (4401) and its receive from the channel layer is in flight: cancelling
    the consumer (what the ASGI server does when the connection goes) must end it by cancellation. With a
    Redis socket timeout, redis-py sends through asyncio.wait_for, which on Python 3.11 swallowed that
    cancellation: the receive then ran on (forever, or until the read timed out and raised)."""

    async def scenario():
        communicator = await connect()
        await communicator.send_to(text_data=json.dumps({"type": "hello"}))
        assert await closed_with(communicator) == 4401
        consumer = communicator.future
        consumer.cancel()
        done, _ = await asyncio.wait([consumer], timeout=WAIT)
        assert done == {consumer} and consumer.cancelled()

    for _ in range(3):
        run(scenario)


def test_the_channel_layer_reads_redis_without_a_socket_timeout():
    async def clients():
        hub = get_channel_layer()._hub()
        return [client.connection_pool.connection_kwargs for client in (hub.pubsub, hub.publisher)]

    for options in run(clients):
        # None, not absent: redis-py's default is a 5 s timeout (see the test above and chatfocus.channel_layer).
        assert options["socket_timeout"] is None and options["socket_keepalive"] is True


def test_no_message_hops_to_the_sync_thread_for_channels_cleanup_and_database_reads_still_clean_up(device, monkeypatch):
    """Channels closes stale database connections in the one sync thread before each message; this
    consumer skips that hop (for pokes and for connects and disconnects in their thousands) because its
    database reads go through database_sync_to_async, which closes stale connections around each one."""
    import channels.consumer
    import channels.db

    dispatch_cleanups, cleaned_reads = [], []

    async def counting_cleanup():
        dispatch_cleanups.append(1)

    clean_read = channels.db.DatabaseSyncToAsync.thread_handler

    def counting_read(self, *args, **kwargs):
        # (Channels' test communicator stubs close_old_connections itself: count the calls that do it.)
        cleaned_reads.append(1)
        return clean_read(self, *args, **kwargs)

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counting_cleanup)
    monkeypatch.setattr(channels.db.DatabaseSyncToAsync, "thread_handler", counting_read)
    laptop = device()
    phone = device(laptop.sync.user)

    async def scenario():
        on_phone = await connect(phone.access, "phone")
        assert await receive(on_phone) == {"type": "ping"}
        # The auth message's two reads (the token's session, then the version).
        assert len(cleaned_reads) == 2
        assert (await sync_to_async(laptop.sync.push)("laptop", [make_op("theme", "dark")])).status_code == 200
        assert await drain_pings(on_phone) == {"type": "changed", "version": 1}
        await on_phone.disconnect()
        assert dispatch_cleanups == []

    run(scenario)


def test_a_valid_token_with_an_invalid_device_id_or_a_revoked_session_closes_with_4401(device):
    first, second = device(), device()
    accounts_services.revoke_session(user=second.sync.user, session_id=second.client.auth_session.id)

    async def scenario():
        for access, device_id in ((first.access, "server"), (second.access, "laptop")):
            communicator = await connect(access, device_id)
            assert await closed_with(communicator) == 4401

    run(scenario)


def test_no_auth_message_within_the_timeout_closes_with_4401(settings):
    settings.SYNC_WS_AUTH_TIMEOUT_SECONDS = 0.05

    async def scenario():
        communicator = await connect()
        assert await closed_with(communicator) == 4401

    run(scenario)


def test_logout_revocation_deactivation_and_deletion_close_the_sessions_sockets_with_4401(device):
    user = UserFactory()
    logged_out, revoked, untouched = device(user), device(user), device()
    deactivated, deleted = device(), device()

    def deactivate(user_id):
        row = User.objects.get(id=user_id)
        row.is_active = False
        # What the admin's user page does when staff untick "active" (accounts.admin.UserAdmin.save_model).
        form = SimpleNamespace(changed_data=["is_active"])
        UserAdmin(User, admin.site).save_model(RequestFactory().post("/"), row, form, change=True)

    async def scenario():
        sockets = {}
        for name, session in (("logged_out", logged_out), ("revoked", revoked), ("untouched", untouched)):
            sockets[name] = await authenticated(session.access, name)
        sockets["deactivated"] = await authenticated(deactivated.access, "laptop")
        sockets["deleted"] = await authenticated(deleted.access, "laptop")

        response = await sync_to_async(logged_out.client.post)(
            "/api/auth/logout", {"refresh": logged_out.client.refresh_token}, format="json"
        )
        assert response.status_code == 204
        assert await closed_with(sockets["logged_out"]) == 4401

        await sync_to_async(accounts_services.revoke_session)(user=user, session_id=revoked.client.auth_session.id)
        assert await closed_with(sockets["revoked"]) == 4401

        await sync_to_async(deactivate)(deactivated.sync.user.id)
        assert await closed_with(sockets["deactivated"]) == 4401

        await sync_to_async(accounts_services.delete_account)(user=deleted.sync.user, password=DEFAULT_PASSWORD)
        assert await closed_with(sockets["deleted"]) == 4401

        # The other user's socket lives on: it still answers pokes.
        other = await sync_to_async(device)(untouched.sync.user)
        assert (await sync_to_async(other.sync.push)("phone", [make_op("k", 1)])).status_code == 200
        assert await drain_pings(sockets["untouched"]) == {"type": "changed", "version": 1}
        await sockets["untouched"].disconnect()

    run(scenario)


def test_past_twice_the_device_limit_the_oldest_socket_closes_with_4429(device, set_tier):
    set_tier("free", devices=1)  # at most 2 sockets
    first = device()
    sessions = [first] + [device(first.sync.user) for _ in range(2)]

    async def scenario():
        oldest = await authenticated(sessions[0].access, "a")
        middle = await authenticated(sessions[1].access, "b")
        newest = await authenticated(sessions[2].access, "c")
        assert await closed_with(oldest) == 4429
        # The two newest stay: both still get pokes.
        assert (await sync_to_async(sessions[0].sync.push)("a", [make_op("k", 1)])).status_code == 200
        assert await drain_pings(middle) == {"type": "changed", "version": 1}
        assert await drain_pings(newest) == {"type": "changed", "version": 1}
        await middle.disconnect()
        await newest.disconnect()

    run(scenario)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_with_the_channel_layer_down_a_push_still_succeeds_and_only_the_poke_is_lost(sync, settings):
    realtime.publisher.wait()
    lost = realtime.publisher.lost
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chatfocus.channel_layer.RedisFanoutChannelLayer",
            "CONFIG": {"url": f"redis://127.0.0.1:{closed_port()}/0"},
        }
    }
    response = sync.push("laptop", [make_op("theme", "dark")])
    assert response.status_code == 200 and response.json()["results"][0]["status"] == "applied"
    realtime.publisher.wait()
    assert realtime.publisher.lost == lost + 1
    assert sync.document() == {"theme": "dark"}


def test_with_the_channel_layer_down_an_authenticated_socket_is_told_to_try_again_later(device, settings, monkeypatch):
    monkeypatch.setattr(consumers, "JOIN_TIMEOUT_SECONDS", 0.2)
    laptop = device()
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chatfocus.channel_layer.RedisFanoutChannelLayer",
            "CONFIG": {"url": f"redis://127.0.0.1:{closed_port()}/0"},
        }
    }

    async def scenario():
        communicator = await connect(laptop.access, "laptop")
        assert await closed_with(communicator) == consumers.CLOSE_TRY_AGAIN == 1013
        await communicator.disconnect(timeout=WAIT)

    run(scenario)


def test_a_poke_is_one_publish_on_the_groups_channel_and_past_the_queue_bound_pokes_are_dropped(settings):
    """The push's side of a poke: a message on a bounded queue, published by the process's thread on the
    Redis channel the realtime process's layer subscribed for the group."""
    group = realtime.user_group(uuid.uuid4())
    layer = get_channel_layer()
    subscriber = redis.Redis.from_url(settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(layer.group_channel(group))
    publisher = realtime._Publisher(max_pending=2)
    publisher._pid = os.getpid()  # its thread is held back below: the queue fills
    for version in (1, 2, 3):
        publisher.send(group, {"type": "sync.changed", "version": version, "device_id": "laptop"})
    assert publisher.lost == 1 and publisher.delivered == 0

    threading.Thread(target=publisher._run, daemon=True).start()
    publisher.wait()
    assert (publisher.delivered, publisher.lost) == (2, 1)
    received = []
    for _ in range(WAIT * 10):  # get_message also answers None for the subscription's own confirmation
        if len(received) == 2:
            break
        if (message := subscriber.get_message(timeout=0.1)) is not None:
            received.append(layer.deserialize(message["data"]))
    assert received == [
        {"type": "sync.changed", "version": 1, "device_id": "laptop"},
        {"type": "sync.changed", "version": 2, "device_id": "laptop"},
    ]
    subscriber.close()


def test_over_a_real_socket_to_the_realtime_process(realtime_server_factory, device):
    """Auth by first message, a poke for the other device only, silence closes, revocation closes."""
    server = realtime_server_factory(SYNC_WS_AUTH_TIMEOUT_SECONDS="2", SYNC_WS_PING_SECONDS="3600")
    laptop = device()
    phone = device(laptop.sync.user)

    async def scenario():
        url = f"{server.url}/ws/sync"
        async with (
            websockets.connect(url, open_timeout=WAIT) as on_laptop,
            websockets.connect(url, open_timeout=WAIT) as on_phone,
            websockets.connect(url, open_timeout=WAIT) as silent,
        ):
            await on_laptop.send(json.dumps({"type": "auth", "access": laptop.access, "device_id": "laptop"}))
            await on_phone.send(json.dumps({"type": "auth", "access": phone.access, "device_id": "phone"}))
            # Auth has no answer: wait until both sockets joined (the user's socket list holds both).
            await until(lambda: socket_count(laptop.sync.user.id) == 2)
            assert (await sync_to_async(laptop.sync.push)("laptop", [make_op("theme", "dark")])).status_code == 200
            assert json.loads(await asyncio.wait_for(on_phone.recv(), WAIT)) == {"type": "changed", "version": 1}
            assert (await sync_to_async(phone.sync.push)("phone", [make_op("font", 12)])).status_code == 200
            assert json.loads(await asyncio.wait_for(on_laptop.recv(), WAIT)) == {"type": "changed", "version": 2}

            await sync_to_async(accounts_services.revoke_session)(
                user=phone.sync.user, session_id=phone.client.auth_session.id
            )
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(on_phone.recv(), WAIT)
            assert closed.value.rcvd.code == 4401

            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(silent.recv(), WAIT)
            assert closed.value.rcvd.code == 4401

    run(scenario)


def socket_count(user_id) -> int:
    return realtime._redis().zcard(realtime.SOCKETS_KEY.format(user_id=user_id))


async def until(condition):
    async with asyncio.timeout(WAIT):
        while not await sync_to_async(condition)():
            await asyncio.sleep(0.02)
