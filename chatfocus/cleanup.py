"""Housekeeping that beat runs nightly: rows that only grow unless something deletes them."""

from datetime import timedelta

from django.conf import settings
from django.contrib.sessions.models import Session as DjangoSession
from django.db.models import Q
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts.models import Session
from billing.models import WebhookEvent


def flush_expired_tokens() -> int:
    """simplejwt's `flushexpiredtokens`: a refresh token past its expiry is refused anyway, blacklisted or not.

    Its blacklist entry goes with it (cascade).
    """
    deleted, _ = OutstandingToken.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted


def clear_expired_sessions() -> int:
    """Django's `clearsessions` (admin and hosted-page logins), counting what it removed."""
    deleted, _ = DjangoSession.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted


def prune_ended_api_sessions() -> int:
    """Deletes API sessions that ended (revoked or expired) longer than a refresh lifetime ago.

    Until then a replayed refresh token of a revoked session is still recognised as reuse; after it,
    every token the session issued has expired and the row tells nothing new.
    """
    now = timezone.now()
    cutoff = now - settings.JWT_REFRESH_LIFETIME
    deleted, _ = Session.objects.filter(Q(revoked_at__lt=cutoff) | Q(refresh_expires_at__lt=cutoff)).delete()
    return deleted


def prune_webhook_payloads() -> int:
    """Empties stored Stripe payloads past WEBHOOK_PAYLOAD_RETENTION_DAYS; the rows stay.

    The row's id makes a late retry of the same event a duplicate; its type, status and times stay
    for the admin. Failed events keep their payload: the admin's replay needs it.
    """
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOK_PAYLOAD_RETENTION_DAYS)
    return (
        WebhookEvent.objects.filter(received_at__lt=cutoff)
        .exclude(status=WebhookEvent.Status.FAILED)
        .exclude(payload={})
        .update(payload={})
    )
