"""Real-time pokes (DESIGN.md section 5): what sync and accounts publish, and who holds which socket.

Code that commits a change (a push in a WSGI worker, a restore, a revoked session) publishes a group
message on the channel layer (Redis); the ASGI process's sockets (syncsettings.consumers) receive it.
Publishing never delays or fails the caller: messages leave from one background thread per process,
and a failure (Redis down) only loses the poke; clients converge by pulling anyway.
"""

import logging
import os
import queue
import threading
import time
from collections import OrderedDict

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from chatfocus.channel_layer import RedisFanoutChannelLayer, redis_options

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 1.0
# Pokes waiting for the publishing thread; past this, new ones are dropped (and counted as lost).
MAX_PENDING_POKES = 10_000
PUBLISH_BATCH = 100
SOCKETS_KEY = "cf:sync:sockets:{user_id}"
# A crashed process's sockets stay listed until evicted (oldest first) or until the user is idle this long.
SOCKETS_KEY_SECONDS = 86_400


def user_group(user_id) -> str:
    return f"sync.user.{user_id}"


def session_group(session_id) -> str:
    return f"sync.session.{session_id}"


class _Publisher:
    """Fire-and-forget group sends from synchronous code.

    With Redis, a group message is one PUBLISH on the channel each realtime process subscribed for that
    group (chatfocus.channel_layer): a push only puts the message on a bounded queue,
    and one daemon thread per process publishes with a plain Redis client, a burst in one round trip.
    Sending through the layer itself (asyncio on a background loop) cost a push 0.7–1.2 ms of CPU.
    """

    def __init__(self, max_pending: int = MAX_PENDING_POKES):
        self._max_pending = max_pending
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._unfinished = 0
        self._pid: int | None = None
        self._clients: dict[str, redis.Redis] = {}
        # Outcomes of the sends that went to the layer: pokes are hints, so a count is all a loss leaves.
        self.delivered = self.lost = 0

    def send(self, group: str, message: dict) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        if not isinstance(layer, RedisFanoutChannelLayer):
            # One process (`make run`, in-memory layer): the layer lives on the server's own loop, which
            # async_to_sync reaches from the request's thread.
            try:
                async_to_sync(layer.group_send)(group, message)
            except Exception:
                logger.warning("A real-time poke was lost.", exc_info=True)
            return
        with self._lock:
            self._ensure_thread()
            try:
                self._queue.put_nowait((layer.url, layer.group_channel(group), layer.serialize(message)))
            except queue.Full:
                # Redis is slower than the pushes (or gone): drop rather than hold memory or the push.
                self.lost += 1
                return
            self._unfinished += 1

    def _ensure_thread(self) -> None:
        # A forked worker (gunicorn) does not inherit the parent's thread: start its own.
        if self._pid != os.getpid():
            self._pid, self._clients, self._unfinished = os.getpid(), {}, 0
            self._queue = queue.Queue(maxsize=self._max_pending)
            threading.Thread(target=self._run, name="sync-pokes", daemon=True).start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < PUBLISH_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            delivered = self._publish(batch)
            with self._lock:
                self.delivered += delivered
                self.lost += len(batch) - delivered
                self._unfinished -= len(batch)
                self._idle.notify_all()

    def _publish(self, batch: list) -> int:
        """Publish a batch (one round trip per Redis address); how many went out."""
        delivered = 0
        for address in {item[0] for item in batch}:
            items = [item for item in batch if item[0] == address]
            try:
                pipeline = self._client(address).pipeline(transaction=False)
                for _, channel, data in items:
                    pipeline.publish(channel, data)
                pipeline.execute()
                delivered += len(items)
            except Exception as error:
                logger.warning("%d real-time poke(s) lost: %s", len(items), error.__class__.__name__)
        return delivered

    def _client(self, address: str) -> redis.Redis:
        if address not in self._clients:
            # A synchronous client with a timeout (none of the asyncio caveats of redis_options apply).
            options = {**redis_options(), "socket_timeout": PUBLISH_TIMEOUT_SECONDS}
            self._clients[address] = redis.Redis.from_url(address, **options)
        return self._clients[address]

    def wait(self, timeout: float = 5.0) -> None:
        """Wait until every queued send went out or was lost (tests and benchmarks)."""
        with self._lock:
            if not self._idle.wait_for(lambda: self._unfinished == 0, timeout):
                raise TimeoutError(f"{self._unfinished} real-time sends still queued")


publisher = _Publisher()


def publish_changed(*, user_id, version: int, device_id: str) -> None:
    """Tell the user's sockets that `version` exists (each one but the pushing device's pulls)."""
    publisher.send(user_group(user_id), {"type": "sync.changed", "version": version, "device_id": device_id})


def publish_sessions_ended(session_ids) -> None:
    """Close the sockets of revoked sessions (logout, revocation, deactivation, account deletion)."""
    for session_id in session_ids:
        publisher.send(session_group(session_id), {"type": "sync.session_ended"})


# --- Sockets per user -------------------------------------------------------------------------

# Atomic in Redis: add the socket, then list (and forget) the oldest ones past the limit.
_REGISTER = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if excess <= 0 then return {} end
local evicted = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
redis.call('ZREM', KEYS[1], unpack(evicted))
return evicted
"""

_local_lock = threading.Lock()
_local_sockets: dict[str, OrderedDict] = {}


def _redis():
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def register_socket(*, user_id, channel_name: str, limit: int) -> list[str]:
    """Count a user's new socket; the channels of the oldest sockets past `limit`, to close (4429)."""
    if settings.REDIS_URL:
        key = SOCKETS_KEY.format(user_id=user_id)
        evicted = _redis().eval(_REGISTER, 1, key, time.time(), channel_name, limit, SOCKETS_KEY_SECONDS)
        return [name.decode() if isinstance(name, bytes) else name for name in evicted]
    with _local_lock:
        sockets = _local_sockets.setdefault(str(user_id), OrderedDict())
        sockets[channel_name] = time.time()
        return [sockets.popitem(last=False)[0] for _ in range(max(len(sockets) - limit, 0))]


def unregister_socket(*, user_id, channel_name: str) -> None:
    if settings.REDIS_URL:
        _redis().zrem(SOCKETS_KEY.format(user_id=user_id), channel_name)
        return
    with _local_lock:
        _local_sockets.get(str(user_id), {}).pop(channel_name, None)
