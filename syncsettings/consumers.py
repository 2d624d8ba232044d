"""`/ws/sync`: the socket that pokes a user's devices when their settings change (DESIGN.md section 5).

The client speaks once: `{"type": "auth", "access": "<JWT>", "device_id": "…"}` within
SYNC_WS_AUTH_TIMEOUT_SECONDS (never the token in the URL: URLs are logged); anything else closes with
4401. Then the server only talks: `{"type": "changed", "version": N}` once it joined (the version
the account has, when it has one) and after another device's write commits, `{"type": "ping"}`
every SYNC_WS_PING_SECONDS (an MV3 service worker stays alive while its socket is active). A revoked
session closes with 4401; past twice the tier's device limit, the user's oldest socket closes with 4429.
The token is the authorization, so any Origin (or none) is accepted, and an open socket outlives its
access token while its session lives.
"""

import asyncio
import json
import logging
import uuid

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings

from accounts import sessions
from accounts.authentication import JWTAuthentication
from chatfocus.exceptions import ValidationFailed
from syncsettings import realtime
from syncsettings.services import UserRef, current_version, get_limits
from syncsettings.validation import parse_device_id

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED, CLOSE_TOO_MANY, CLOSE_TRY_AGAIN = 4401, 4429, 1013
# Joining waits for Redis to confirm the subscriptions; with Redis down the client is told to come back
# later (and polls meanwhile) instead of holding a socket that would never hear a poke.
JOIN_TIMEOUT_SECONDS = 10.0
MAX_AUTH_MESSAGE_BYTES = 8192
PING = json.dumps({"type": "ping"})


def identify(message) -> tuple[uuid.UUID, uuid.UUID, str, int] | None:
    """(user id, session id, device id, socket limit) for a valid auth message, else None."""
    if not isinstance(message, dict) or message.get("type") != "auth" or not isinstance(message.get("access"), str):
        return None
    try:
        device_id = parse_device_id(message.get("device_id"))
        token = JWTAuthentication().get_validated_token(message["access"].encode())
        user_id = uuid.UUID(str(token[api_settings.USER_ID_CLAIM]))
        session_id = uuid.UUID(str(token[sessions.SESSION_CLAIM]))
    except (InvalidToken, ValidationFailed, KeyError, ValueError):
        return None
    if not sessions.is_session_active(session_id, user_id=user_id):
        return None
    return user_id, session_id, device_id, get_limits(user=UserRef(user_id)).devices * 2


class SyncConsumer(AsyncWebsocketConsumer):
    user_id = session_id = device_id = None

    async def connect(self):
        self.joined: list[str] = []
        self.spoke, self.authenticated = asyncio.Event(), asyncio.Event()
        await self.accept()
        self.keeper = asyncio.ensure_future(self.keep_alive())

    async def receive(self, text_data=None, bytes_data=None):
        if self.spoke.is_set():
            return  # after auth the client has nothing to say; a pong or keep-alive message is fine
        self.spoke.set()
        try:
            message = json.loads(text_data) if text_data and len(text_data) <= MAX_AUTH_MESSAGE_BYTES else None
        except ValueError:
            message = None
        identity = await database_sync_to_async(identify)(message)
        if identity is None:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.user_id, self.session_id, self.device_id, limit = identity
        try:
            async with asyncio.timeout(JOIN_TIMEOUT_SECONDS):
                await self.join()
        except TimeoutError:
            logger.warning("A sync socket could not join its groups in time (is Redis up?).")
            await self.close(code=CLOSE_TRY_AGAIN)
            return
        # Read after joining: a revocation or a write committed while this socket joined its groups was
        # published to nobody here.
        version = await database_sync_to_async(self.version_if_session_active)()
        if version is None:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        if version:
            # Clients pull when they connect, possibly before this socket joined: a write that landed
            # in between reached no poke, so every joined socket hears the version it must have.
            await self.send(text_data=json.dumps({"type": "changed", "version": version}))
        self.authenticated.set()
        evicted = await sync_to_async(realtime.register_socket, thread_sensitive=False)(
            user_id=self.user_id, channel_name=self.channel_name, limit=limit
        )
        for channel_name in evicted:
            if channel_name == self.channel_name:
                await self.close(code=CLOSE_TOO_MANY)
            else:
                await self.channel_layer.send(channel_name, {"type": "sync.evicted"})

    def version_if_session_active(self) -> int | None:
        """The user's sync version now (0 before the first write), or None once the session ended."""
        if not sessions.is_session_active(self.session_id, user_id=self.user_id):
            return None
        return current_version(user_id=self.user_id)

    async def join(self):
        self.joined = [realtime.user_group(self.user_id), realtime.session_group(self.session_id)]
        # Together: the layer subscribes both in one command and returns once Redis confirmed them.
        await asyncio.gather(*(self.channel_layer.group_add(group, self.channel_name) for group in self.joined))

    async def keep_alive(self):
        try:
            # The deadline is for the client's message; checking it may take longer under load. Not
            # asyncio.wait_for: on Python 3.11 it can swallow the cancellation of a socket that closes
            # just as its client speaks, and this task would then wait forever.
            async with asyncio.timeout(settings.SYNC_WS_AUTH_TIMEOUT_SECONDS):
                await self.spoke.wait()
        except TimeoutError:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        await self.authenticated.wait()
        while True:
            await asyncio.sleep(settings.SYNC_WS_PING_SECONDS)
            await self.send(text_data=PING)

    async def disconnect(self, code):
        self.keeper.cancel()
        try:
            for group in self.joined:
                await self.channel_layer.group_discard(group, self.channel_name)
            if self.user_id is not None:
                await sync_to_async(realtime.unregister_socket, thread_sensitive=False)(
                    user_id=self.user_id, channel_name=self.channel_name
                )
        except Exception:
            # Redis gone: group memberships and the socket list expire on their own.
            logger.warning("Could not unregister a closed sync socket.", exc_info=True)

    # --- Group messages (see syncsettings.realtime) ---

    async def dispatch(self, message):
        # Channels closes stale database connections before every message, in the process's one sync
        # thread. This consumer reads the database only through database_sync_to_async, which does that
        # around each read anyway. The hop per message was the realtime process's largest cost while
        # pokes fanned out (py-spy, bench pokes row), and after 10,000 sockets closed at once their
        # disconnects' hops queued new sockets' handshakes past daphne's timeout.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def sync_changed(self, event):
        if event.get("device_id") != self.device_id:
            await self.send(text_data=json.dumps({"type": "changed", "version": event["version"]}))

    async def sync_session_ended(self, event):
        await self.close(code=CLOSE_UNAUTHORIZED)

    async def sync_evicted(self, event):
        await self.close(code=CLOSE_TOO_MANY)
