"""Real-time pokes (DESIGN.md section 5): what sync and accounts publish, and who holds which socket.

Code that commits a change (a push in a WSGI worker, a restore, a revoked session) publishes a group
message on the channel layer (Redis); the ASGI process's sockets (syncsettings.consumers) receive it.
Publishing never delays or fails the caller: messages leave from a background thread with its own
event loop, and a failure (Redis down) only loses the poke; clients converge by pulling anyway.
"""

import asyncio
import logging
import os
import threading
import time
from collections import OrderedDict

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 1.0
SOCKETS_KEY = "cf:sync:sockets:{user_id}"
# A crashed process's sockets stay listed until evicted (oldest first) or until the user is idle this long.
SOCKETS_KEY_SECONDS = 86_400


def user_group(user_id) -> str:
    return f"sync.user.{user_id}"


def session_group(session_id) -> str:
    return f"sync.session.{session_id}"


class _Publisher:
    """Fire-and-forget group sends from synchronous code, on one background loop per process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None
        self._pending: set = set()
        # Outcomes of the sends that went to the layer: pokes are hints, so a count is all a loss leaves.
        self.delivered = self.lost = 0

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            # A forked worker (gunicorn) does not inherit the parent's thread: start its own.
            if self._loop is None or self._pid != os.getpid():
                self._loop, self._pid = asyncio.new_event_loop(), os.getpid()
                threading.Thread(target=self._loop.run_forever, name="sync-pokes", daemon=True).start()
            return self._loop

    def send(self, group: str, message: dict) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        if isinstance(layer, InMemoryChannelLayer):
            # One process (`make run`): the layer lives on the server's own loop, which async_to_sync
            # reaches from the request's thread.
            try:
                async_to_sync(layer.group_send)(group, message)
            except Exception:
                logger.warning("A real-time poke was lost.", exc_info=True)
            return
        future = asyncio.run_coroutine_threadsafe(self._send(layer, group, message), self._background_loop())
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    async def _send(self, layer, group: str, message: dict) -> None:
        try:
            await asyncio.wait_for(layer.group_send(group, message), PUBLISH_TIMEOUT_SECONDS)
            self.delivered += 1
        except Exception as error:
            self.lost += 1
            logger.warning("A real-time poke was lost: %s", error.__class__.__name__)

    def wait(self, timeout: float = 5.0) -> None:
        """Wait for the sends in flight (tests and benchmarks)."""
        for future in list(self._pending):
            future.result(timeout)


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
