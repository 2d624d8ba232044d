"""JWT sessions: issuing token pairs, rotating refresh tokens with reuse detection, revocation.

Protocol. A login creates a `Session` row. Every token it issues (simplejwt `RefreshToken` and
the `AccessToken` made from it) carries the session id in the `sid` claim, so the session is
the token *family*. simplejwt's blacklist app records each refresh token (`OutstandingToken`)
and, when it is rotated, blacklists it. Presenting a blacklisted refresh token again means it
was copied: the whole family is revoked at once (401 `token_reused`) while the user's other
sessions live on. Rotation holds the session row lock, so two refreshes racing with one token
cannot both rotate it.

Reuse window: two contexts of one extension (a popup and the background worker) may refresh with
the same token at once. The one that comes second finds it rotated; if that rotation is at most
`JWT_REFRESH_REUSE_SECONDS` old, it gets the session's current pair (the session remembers its
newest refresh token's jti) instead of `token_reused`, and both stay signed in. Later reuse
still revokes the family.

Access tokens are checked without loading the user: signature and expiry by simplejwt, then
the session's state in the cache (Redis in production), falling back to one indexed lookup on
a miss. Revocation deletes the cached state in the same transaction and writes "revoked" after
commit, so a revoked session's access tokens fail immediately.
"""

import ipaddress
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenBackendError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.models import Session
from chatfocus.cache import get_prefetched
from chatfocus.exceptions import DomainError, TokenInvalid
from syncsettings.realtime import publish_sessions_ended

SESSION_CLAIM = "sid"
# The value is the id of the user a live session belongs to (a token's `sid` only counts with its own user),
# or REVOKED. Named apart from the former "active"/"revoked" key so a cached "active" never passes for an id.
SESSION_STATE_KEY = "accounts:session-owner:{session_id}"
REVOKED = "revoked"


class TokenReused(DomainError):
    code, status, message = (
        "token_reused",
        401,
        "This refresh token was already used. The session was signed out for your safety; log in again.",
    )


def _state_timeout() -> int:
    # Past the access lifetime no access token of the session is valid anyway.
    return int(settings.JWT_ACCESS_LIFETIME.total_seconds()) + 60


def _client_fields(*, device_name: str, user_agent: str, ip: str | None) -> dict:
    try:
        ip_address = str(ipaddress.ip_address((ip or "").strip()))
    except ValueError:  # absent, or a proxy chain string when NUM_PROXIES is not configured
        ip_address = None
    return {
        "device_name": (device_name or "").strip()[:100],
        "user_agent": (user_agent or "")[:400],
        "ip_address": ip_address,
    }


def _new_refresh_token(*, user_id, session: Session) -> RefreshToken:
    """A refresh token of the session's family, recorded as outstanding (simplejwt blacklist app)."""
    token = RefreshToken()
    token[api_settings.USER_ID_CLAIM] = str(user_id)
    token[SESSION_CLAIM] = str(session.id)
    OutstandingToken.objects.create(
        user_id=user_id,
        jti=token[api_settings.JTI_CLAIM],
        token=str(token),
        created_at=token.current_time,
        expires_at=datetime_from_epoch(token["exp"]),
    )
    return token


def issue_session_tokens(
    *, user, device_name: str = "", user_agent: str = "", ip: str | None = None, method: str = "password"
) -> tuple[str, str, Session]:
    """Start a session for an authenticated user; returns (access, refresh, session)."""
    now = timezone.now()
    with transaction.atomic():
        session = Session.objects.create(
            user_id=user.id,
            created_at=now,
            last_used_at=now,
            refresh_expires_at=now + settings.JWT_REFRESH_LIFETIME,
            method=method,
            **_client_fields(device_name=device_name, user_agent=user_agent, ip=ip),
        )
        refresh = _new_refresh_token(user_id=user.id, session=session)
        session.refresh_jti = refresh[api_settings.JTI_CLAIM]
        session.save(update_fields=["refresh_jti"])
    return str(refresh.access_token), str(refresh), session


def decode_refresh_token(raw: str) -> dict:
    """The payload of a refresh token with a valid signature, expiry and type; else TokenInvalid.

    `RefreshToken(raw)` would also consult the blacklist and fail with a generic error; rotation
    must tell reuse apart from an invalid token, so it checks the blacklist itself under the lock.
    """
    try:
        payload = token_backend.decode(str(raw), verify=True)
    except TokenBackendError as error:
        raise TokenInvalid() from error
    if payload.get(api_settings.TOKEN_TYPE_CLAIM) != "refresh" or not payload.get(api_settings.JTI_CLAIM):
        raise TokenInvalid()
    try:
        payload[SESSION_CLAIM] = uuid.UUID(str(payload.get(SESSION_CLAIM)))
    except ValueError as error:
        raise TokenInvalid() from error
    return payload


def rotate_refresh_token(*, refresh: str) -> tuple[str, str, Session]:
    """Exchange a refresh token for a new pair; a rotated token used again revokes its family.

    Within the reuse window a rotated token gets the session's current pair instead (see above).
    """
    payload = decode_refresh_token(refresh)
    jti = payload[api_settings.JTI_CLAIM]
    with transaction.atomic():
        session = Session.objects.select_for_update().filter(id=payload[SESSION_CLAIM], user__is_active=True).first()
        outstanding = OutstandingToken.objects.filter(jti=jti, user_id=session.user_id if session else None).first()
        if session is None or outstanding is None or session.revoked_at is not None:
            raise TokenInvalid()
        rotated = BlacklistedToken.objects.filter(token=outstanding).first()
        if rotated is None:
            BlacklistedToken.objects.create(token=outstanding)
            now = timezone.now()
            new_refresh = _new_refresh_token(user_id=session.user_id, session=session)
            session.last_used_at = now
            session.refresh_expires_at = now + settings.JWT_REFRESH_LIFETIME
            session.refresh_jti = new_refresh[api_settings.JTI_CLAIM]
            session.save(update_fields=["last_used_at", "refresh_expires_at", "refresh_jti"])
            return str(new_refresh.access_token), str(new_refresh), session
        current = _current_refresh_token(session) if _within_reuse_window(rotated.blacklisted_at) else None
        if current is None:
            _revoke(session, reason="token_reused")
    if current is None:
        # Raised after the block so the revocation commits.
        raise TokenReused()
    return str(current.access_token), str(current), session


def _within_reuse_window(rotated_at) -> bool:
    return timezone.now() - rotated_at <= timedelta(seconds=settings.JWT_REFRESH_REUSE_SECONDS)


def _current_refresh_token(session: Session) -> RefreshToken | None:
    """The family's newest refresh token, if it is still outstanding and unused."""
    if not session.refresh_jti:  # a session from before the window existed
        return None
    record = OutstandingToken.objects.filter(jti=session.refresh_jti, blacklistedtoken__isnull=True).first()
    if record is None:
        return None
    # Read back from our own record: its signature was checked when we issued it; the blacklist just now.
    return RefreshToken(record.token, verify=False)


def _revoke(session: Session, *, reason: str) -> None:
    """Mark one session revoked (caller holds a transaction); its cached state follows on commit."""
    if session.revoked_at is None:
        session.revoked_at = timezone.now()
        session.revoked_reason = reason
        session.save(update_fields=["revoked_at", "revoked_reason"])
    forget_session_states([session.id])


def forget_session_states(session_ids) -> None:
    """Drop cached states now and record "revoked" once the transaction commits."""
    keys = [session_state_key(session_id) for session_id in session_ids]
    if not keys:
        return
    cache.delete_many(keys)
    transaction.on_commit(lambda: cache.set_many({key: REVOKED for key in keys}, timeout=_state_timeout()))
    # Their open sync sockets close too (4401).
    transaction.on_commit(lambda: publish_sessions_ended(session_ids))


def revoke_sessions(*, user_id, reason: str, except_session_id=None) -> int:
    """Revoke every live session of a user (optionally sparing one); returns how many."""
    with transaction.atomic():
        live = Session.objects.filter(user_id=user_id, revoked_at__isnull=True)
        if except_session_id is not None:
            live = live.exclude(id=except_session_id)
        session_ids = list(live.select_for_update().values_list("id", flat=True))
        Session.objects.filter(id__in=session_ids).update(revoked_at=timezone.now(), revoked_reason=reason)
        forget_session_states(session_ids)
    return len(session_ids)


def revoke_session_by_id(*, session_id, reason: str) -> None:
    with transaction.atomic():
        session = Session.objects.select_for_update().filter(id=session_id).first()
        if session is not None:
            _revoke(session, reason=reason)


def session_state_key(session_id) -> str:
    return SESSION_STATE_KEY.format(session_id=session_id)


def read_with_session_state(session_id, keys: list[str]) -> dict:
    """One cache round trip for a session's state and other keys (for is_session_active's `prefetched`)."""
    return cache.get_many([session_state_key(session_id), *keys])


def is_session_active(session_id, *, user_id, prefetched: dict | None = None) -> bool:
    """Whether the session lives and belongs to `user_id`. Cache first; on a miss one lookup, remembered
    with `add` so a racing revocation wins.

    `prefetched`: what read_with_session_state returned, so the state costs no round trip of its own.
    """
    key = session_state_key(session_id)
    state = get_prefetched(key, prefetched)
    if state is None:
        row = Session.objects.filter(id=session_id).values_list("user_id", "revoked_at", "user__is_active").first()
        state = str(row[0]) if row is not None and row[1] is None and row[2] else REVOKED
        cache.add(key, state, timeout=_state_timeout())
    return state == str(user_id)
