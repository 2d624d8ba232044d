"""Export and deletion across apps, and refresh rotation under concurrency."""

import importlib
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.apps import apps
from django.core import mail
from django.db import connection, models
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import issue_session_tokens
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def event_registry():
    """The analytics registry its data migration seeds (transactional tests elsewhere flush it)."""
    importlib.import_module("analytics.migrations.0002_seed_event_registry").seed(apps, None)


def rows_referencing(user_id) -> dict[str, int]:
    """Rows in every table that point at the user: foreign keys to User and `user_id`-style columns."""
    counts = {}
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            points_at_user = isinstance(field, models.ForeignKey) and field.related_model is User
            if points_at_user or field.attname in {"user_id", "subscriber_id"}:
                count = model._base_manager.filter(**{field.attname: user_id}).count()
                if count:
                    counts[f"{model._meta.db_table}.{field.attname}"] = count
    if User.objects.filter(id=user_id).exists():
        counts["accounts_user"] = 1
    return counts


def make_rich_user():
    """A user with something in every accounts-side table and events/settings through the public APIs."""
    user = UserFactory(email="rich@example.com", name="Rich")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    SocialAccount.objects.create(user=user, provider="github", uid="77", extra_data={"login": "rich"})
    access, refresh, _ = issue_session_tokens(user=user, device_name="Laptop")
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {access}")
    client.patch("/api/users/me/settings", {"analytics_opt_in": True, "timezone": "Europe/Rome"}, format="json")
    APIClient().post("/api/auth/refresh", {"refresh": refresh}, format="json")  # a blacklisted token row
    now_ms = int(time.time() * 1000)
    push = client.post(
        "/api/sync/push",
        {
            "device_id": "laptop-1",
            "ops": [
                {"op_id": "op-1", "key": "focusedContacts/alice", "op": "set", "value": True, "hlc": f"{now_ms}-0"},
                {"op_id": "op-2", "key": "secret.token", "op": "set", "value": "s3cr3t", "hlc": f"{now_ms}-1"},
            ],
        },
        format="json",
    )
    assert push.status_code == 200, push.content
    event = {
        "id": str(uuid.uuid4()),
        "name": "extension_opened",
        "ts": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "props": {"surface": "popup"},
        "client": {"version": "1.4.2", "browser": "chrome", "os": "mac"},
    }
    events = client.post("/api/analytics/events", {"events": [event]}, format="json")
    assert events.status_code == 202 and events.json()["accepted"] == 1, events.content
    return user, client


def test_export_contains_what_the_api_shows(event_registry):
    user, client = make_rich_user()
    me = client.get("/api/users/me").json()
    settings_shown = client.get("/api/users/me/settings").json()
    sessions_shown = client.get("/api/auth/sessions").json()["results"]
    response = client.get("/api/users/me/export")
    assert response.status_code == 200
    export = response.json()
    assert export["user"]["id"] == me["id"] and export["user"]["email"] == me["email"]
    assert export["user"]["name"] == me["name"] and export["user"]["email_verified"] is True
    assert export["preferences"] == settings_shown
    assert {s["id"] for s in sessions_shown} <= {s["id"] for s in export["sessions"]}
    assert [(a["provider"], a["uid"]) for a in export["social_accounts"]] == [("github", "77")]
    assert export["email_addresses"] == [{"email": "rich@example.com", "verified": True, "primary": True}]
    assert export["sync"]["settings"] == {"focusedContacts/alice": True, "secret.token": "s3cr3t"}
    assert [event["name"] for event in export["analytics_events"]] == ["extension_opened"]
    assert "billing" in export


def test_delete_account_leaves_nothing_of_the_user_behind(event_registry, django_capture_on_commit_callbacks):
    user, client = make_rich_user()
    other = UserFactory()
    issue_session_tokens(user=other)
    user_id = user.id
    assert rows_referencing(user_id)  # the check sees the rows before deletion
    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete("/api/users/me", {"password": DEFAULT_PASSWORD}, format="json")
    assert response.status_code == 204
    assert rows_referencing(user_id) == {}
    assert rows_referencing(other.id)  # nobody else's data went
    assert client.get("/api/users/me").status_code == 401
    (goodbye,) = mail.outbox
    assert goodbye.to == ["rich@example.com"] and "deleted" in goodbye.subject


def test_delete_account_cancels_billing_first_and_aborts_if_it_fails(auth_client, monkeypatch):
    from billing import services as billing_services
    from chatfocus.exceptions import UpstreamError

    def failing_cancel(*, user):
        raise UpstreamError()

    monkeypatch.setattr(billing_services, "cancel_for_deleted_user", failing_cancel)
    client = auth_client()
    response = client.delete("/api/users/me", {"password": DEFAULT_PASSWORD}, format="json")
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_error"
    assert User.objects.filter(id=client.user.id).exists()
    assert client.get("/api/users/me").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_with_one_token_let_exactly_one_win():
    user = UserFactory()
    _, refresh, _ = issue_session_tokens(user=user)
    barrier = threading.Barrier(4)
    statuses = []

    def attempt():
        try:
            barrier.wait()
            response = APIClient().post("/api/auth/refresh", {"refresh": refresh}, format="json")
            statuses.append((response.status_code, response.json().get("error", {}).get("code")))
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses, key=str)[0][0] == 200
    assert [status for status, _ in statuses].count(200) == 1
    # The losers presented a used token: reuse, and the family is revoked.
    assert {code for status, code in statuses if status != 200} <= {"token_reused", "token_invalid"}
    assert "token_reused" in {code for _, code in statuses}
