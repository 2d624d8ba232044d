"""Beat's nightly cleanup: each job deletes what can no longer matter and keeps the rest."""

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session as DjangoSession
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import Session
from accounts.sessions import issue_session_tokens
from accounts.tests.factories import UserFactory
from billing.models import WebhookEvent
from billing.tests.helpers import send
from chatfocus import tasks

pytestmark = pytest.mark.django_db

PAST_REFRESH_LIFETIME = settings.JWT_REFRESH_LIFETIME + timedelta(days=1)


def run(task):
    """Through Celery as beat would queue it (eager in tests)."""
    return task.apply().get()


def test_expired_refresh_tokens_and_their_blacklist_entries_are_flushed(api_client):
    user = UserFactory()
    with time_machine.travel(timezone.now() - PAST_REFRESH_LIFETIME):
        _, old_refresh, _ = issue_session_tokens(user=user)
        # Rotation blacklists the old token and issues a new one: both expire in the past.
        rotated = api_client.post("/api/auth/refresh", {"refresh": old_refresh}, format="json")
        assert rotated.status_code == 200
    _, live_refresh, _ = issue_session_tokens(user=user)
    assert OutstandingToken.objects.count() == 3 and BlacklistedToken.objects.count() == 1

    assert run(tasks.flush_expired_tokens_task) == 3  # two tokens and one blacklist entry
    (kept,) = OutstandingToken.objects.all()
    assert kept.token == live_refresh
    assert not BlacklistedToken.objects.exists()
    # A flushed token is still refused: its own expiry says so.
    assert api_client.post("/api/auth/refresh", {"refresh": old_refresh}, format="json").status_code == 401


def test_expired_django_sessions_are_cleared():
    live, expired = SessionStore(), SessionStore()
    live.create()
    expired.set_expiry(-60)
    expired.create()
    DjangoSession.objects.filter(session_key=expired.session_key).update(expire_date=timezone.now() - timedelta(1))

    assert run(tasks.clear_expired_sessions_task) == 1
    assert list(DjangoSession.objects.values_list("session_key", flat=True)) == [live.session_key]


def test_api_sessions_are_deleted_a_refresh_lifetime_after_they_ended():
    user = UserFactory()
    now = timezone.now()
    recently = now - timedelta(days=1)
    long_ago = now - PAST_REFRESH_LIFETIME

    def session(**fields):
        return Session.objects.create(user=user, **{"refresh_expires_at": now + timedelta(days=1), **fields}).id

    active = session()
    revoked_recently = session(revoked_at=recently, revoked_reason="logout")
    revoked_long_ago = session(revoked_at=long_ago, revoked_reason="logout")
    expired_recently = session(refresh_expires_at=recently)
    expired_long_ago = session(refresh_expires_at=long_ago)

    assert run(tasks.prune_ended_api_sessions_task) == 2
    kept = set(Session.objects.values_list("id", flat=True))
    assert kept == {active, revoked_recently, expired_recently}
    assert not {revoked_long_ago, expired_long_ago} & kept


def test_old_webhook_payloads_are_emptied_and_the_event_still_deduplicates(api_client, stripe_fake, settings):
    settings.WEBHOOK_PAYLOAD_RETENTION_DAYS = 30
    old_event = stripe_fake.event("radar.early_fraud_warning.created", {"id": "issfr_old", "object": "x"})
    assert send(api_client, old_event).json()["outcome"] == "ignored"
    recent_event = stripe_fake.event("radar.early_fraud_warning.created", {"id": "issfr_new", "object": "x"})
    assert send(api_client, recent_event).json()["outcome"] == "ignored"
    failed = WebhookEvent.objects.create(
        id="evt_failed_old", type="invoice.paid", payload={"kept": True}, status="failed"
    )
    old_received = timezone.now() - timedelta(days=31)
    WebhookEvent.objects.filter(id__in=[old_event["id"], failed.id]).update(received_at=old_received)

    assert run(tasks.prune_webhook_payloads_task) == 1
    pruned = WebhookEvent.objects.get(id=old_event["id"])
    assert pruned.payload == {} and (pruned.type, pruned.status) == ("radar.early_fraud_warning.created", "ignored")
    assert WebhookEvent.objects.get(id=recent_event["id"]).payload["id"] == recent_event["id"]
    assert WebhookEvent.objects.get(id=failed.id).payload == {"kept": True}  # the admin's replay needs it
    # Stripe retrying the pruned event: its id still makes it a duplicate, nothing is processed twice.
    assert send(api_client, old_event).json()["outcome"] == "duplicate"
    assert run(tasks.prune_webhook_payloads_task) == 0


def test_cleanup_jobs_are_scheduled_in_beat():
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    for task in (
        tasks.flush_expired_tokens_task,
        tasks.clear_expired_sessions_task,
        tasks.prune_ended_api_sessions_task,
        tasks.prune_webhook_payloads_task,
    ):
        assert task.name in scheduled
