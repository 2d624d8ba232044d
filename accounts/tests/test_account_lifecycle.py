"""Export and deletion across apps, and refresh rotation under concurrency."""

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
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from accounts.models import User
from accounts.services import issue_session_tokens
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


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
def test_concurrent_refreshes_of_one_token_within_the_window_all_succeed_and_the_session_lives(settings):
    """Contexts of one extension (popup, background worker) refreshing at once all stay signed in."""
    # A window no loaded CI machine's thread scheduling can outlast: the test is about the rule, not the clock.
    settings.JWT_REFRESH_REUSE_SECONDS = 300
    user = UserFactory()
    _, refresh, session = issue_session_tokens(user=user)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def attempt():
        try:
            barrier.wait(timeout=30)
            response = APIClient().post("/api/auth/refresh", {"refresh": refresh}, format="json")
            results.append((response.status_code, response.json()))
        except Exception as error:  # surfaced below: a thread's failure must fail the test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert [status for status, _ in results] == [200] * 4, results
    # One rotation won; the others got its pair, so every context holds the same live tokens.
    assert len({body["refresh"] for _, body in results}) == 1
    assert BlacklistedToken.objects.filter(token__jti__isnull=False).count() == 1
    session.refresh_from_db()
    assert session.revoked_at is None
    for _, body in results:
        assert APIClient(HTTP_AUTHORIZATION=f"Bearer {body['access']}").get("/api/users/me").status_code == 200
    following = APIClient().post("/api/auth/refresh", {"refresh": results[0][1]["refresh"]}, format="json")
    assert following.status_code == 200


TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb")


def tables_holding(*needles: str) -> dict[str, int]:
    """Rows in any column of any table of the database whose text contains one of the needles (case-insensitive)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND data_type = ANY(%s)",
            [list(TEXT_TYPES)],
        )
        columns = cursor.fetchall()
        found = {}
        for table, column in columns:
            quoted = f"{connection.ops.quote_name(table)}.{connection.ops.quote_name(column)}"
            conditions = " OR ".join(f"strpos(lower({quoted}::text), %s) > 0" for _ in needles)
            cursor.execute(
                f"SELECT count(*) FROM {connection.ops.quote_name(table)} WHERE {conditions}",
                [needle.lower() for needle in needles],
            )
            (count,) = cursor.fetchone()
            if count:
                found[f"{table}.{column}"] = count
    return found


def test_after_deletion_no_table_holds_the_users_email_or_stripe_customer_id(
    event_registry, stripe_fake, stripe_prices, django_capture_on_commit_callbacks
):
    from django.contrib.admin.models import LogEntry

    from billing.models import BillingAccount
    from billing.tests.helpers import send, subscribe

    user, client = make_rich_user()
    subscription_id = subscribe(stripe_fake, user)
    customer_id = BillingAccount.objects.get(user=user).stripe_customer_id
    for paid in (False, True):
        event = stripe_fake.event(
            f"invoice.{'paid' if paid else 'finalized'}", stripe_fake.create_invoice(subscription_id, paid=paid)
        )
        assert send(APIClient(), event).status_code == 200
    customer = stripe_fake.objects[customer_id]
    assert send(APIClient(), stripe_fake.event("customer.updated", stripe_fake._public(customer))).status_code == 200
    staff = UserFactory(is_staff=True)
    LogEntry.objects.log_actions(staff.pk, [user], action_flag=2, change_message="Support: signed out")
    other = UserFactory(email="bystander@example.com")
    before = tables_holding(user.email, customer_id)
    # The scan sees the data where it lives: ours, allauth's, dj-stripe's mirror and both event logs.
    for table in ("accounts_user", "account_emailaddress", "djstripe_customer", "djstripe_invoice"):
        assert any(key.startswith(f"{table}.") for key in before), (table, before)
    for table in ("billing_webhookevent", "djstripe_event", "django_admin_log", "djstripe_subscription"):
        assert any(key.startswith(f"{table}.") for key in before), (table, before)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete("/api/users/me", {"password": DEFAULT_PASSWORD}, format="json")
    assert response.status_code == 204
    assert tables_holding(user.email, customer_id) == {}
    assert tables_holding(other.email)  # nobody else's data went
    (cancel,) = stripe_fake.calls("DELETE", "/v1/subscriptions")
    assert cancel.path.endswith(subscription_id)


def test_export_lists_what_is_kept_about_billing(event_registry, stripe_fake, stripe_prices):
    from billing.tests.helpers import send, subscribe

    user, client = make_rich_user()
    subscription_id = subscribe(stripe_fake, user)
    invoice = stripe_fake.create_invoice(subscription_id, paid=True)
    assert send(APIClient(), stripe_fake.event("invoice.paid", invoice)).status_code == 200
    billing = client.get("/api/users/me/export").json()["billing"]
    (customer,) = billing["stripe_customers"]
    assert customer["email"] == "rich@example.com" and customer["id"] == billing["stripe_customer_id"]
    assert [(row["id"], row["status"], row["total"]) for row in billing["invoices"]] == [(invoice["id"], "paid", 500)]
    assert "Stripe keeps the invoices" in billing["kept_by_stripe_after_deletion"]
