import json
import threading
import time

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection

from billing.models import BillingAccount, WebhookEvent
from billing.selectors import get_entitlements
from billing.tests.helpers import send, subscribe
from billing.tests.stripe_fake import deliver, sign
from chatfocus.metrics import WEBHOOK_EVENTS

pytestmark = pytest.mark.django_db


def test_valid_signed_event_is_stored_and_processed(api_client, stripe_fake, stripe_prices, user):
    subscription_id = subscribe(stripe_fake, user)
    event = stripe_fake.event("customer.subscription.updated", stripe_fake.objects[subscription_id])
    response = send(api_client, event)
    assert response.status_code == 200
    assert response.json() == {"received": True, "outcome": "processed"}
    stored = WebhookEvent.objects.get(id=event["id"])
    assert (stored.status, stored.attempts, stored.type) == ("processed", 1, "customer.subscription.updated")


@pytest.mark.parametrize(
    "tamper",
    ["body", "secret", "stale", "missing"],
)
def test_bad_signature_is_400_and_stores_nothing(api_client, stripe_fake, tamper):
    event = stripe_fake.event("customer.subscription.updated", {"id": "sub_x", "object": "subscription"})
    payload = json_bytes(event)
    headers = {"HTTP_STRIPE_SIGNATURE": sign(payload, "whsec_chatfocus_test_secret")}
    if tamper == "body":
        payload = payload.replace(b"sub_x", b"sub_y")
    elif tamper == "secret":
        headers["HTTP_STRIPE_SIGNATURE"] = sign(payload, "whsec_someone_else")
    elif tamper == "stale":
        headers["HTTP_STRIPE_SIGNATURE"] = sign(payload, "whsec_chatfocus_test_secret", int(time.time()) - 301)
    else:
        headers = {}
    response = api_client.generic(
        "POST", "/api/subscriptions/webhook", payload, content_type="application/json", **headers
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "signature_invalid"
    assert not WebhookEvent.objects.exists()


def test_signature_within_tolerance_is_accepted(api_client, stripe_fake):
    event = stripe_fake.event(
        "radar.early_fraud_warning.created", {"id": "issfr_1", "object": "radar.early_fraud_warning"}
    )
    assert send(api_client, event, timestamp=int(time.time()) - 290).status_code == 200


def test_fresh_server_with_only_the_secret_refuses_unsigned_events(api_client, settings):
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = "whsec_only_this"
    response = api_client.post("/api/subscriptions/webhook", {"id": "evt_1"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "signature_invalid"
    assert not WebhookEvent.objects.exists()


def test_djstripe_secret_header_override_is_ignored_with_debug_off(api_client, stripe_fake, settings):
    settings.DEBUG = False
    event = stripe_fake.event("customer.subscription.updated", {"id": "sub_x", "object": "subscription"})
    response = deliver(api_client, event, secret="whsec_attacker", HTTP_X_DJSTRIPE_WEBHOOK_SECRET="whsec_attacker")
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_signed_body_that_is_not_an_event_is_400(api_client, stripe_fake):
    payload = b'{"hello": "world"}'
    response = api_client.generic(
        "POST",
        "/api/subscriptions/webhook",
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload, "whsec_chatfocus_test_secret"),
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def envelope(**fields) -> dict:
    return {"object": "event", "id": "evt_probe", "type": "customer.updated", "data": {"object": {}}, **fields}


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(json.dumps(envelope(data=[1])).encode(), id="data-not-an-object"),
        pytest.param(json.dumps(envelope(id="evt_" + "x" * 300)).encode(), id="id-too-long"),
        pytest.param(json.dumps(envelope(id="evt_\u0000")).encode(), id="nul-in-id"),
        pytest.param(json.dumps(envelope(type="t" * 300)).encode(), id="type-too-long"),
        pytest.param(json.dumps(envelope(created="soon")).encode(), id="created-not-a-timestamp"),
        pytest.param(json.dumps(envelope(data={"object": {"name": "nul\u0000"}})).encode(), id="nul-in-payload"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-too-deeply"),
    ],
)
def test_signed_body_with_a_malformed_envelope_is_400_and_nothing_stored(api_client, stripe_fake, payload):
    # Each of these was a 500 (AttributeError, DataError, TypeError, RecursionError) before the envelope check.
    response = api_client.generic(
        "POST",
        "/api/subscriptions/webhook",
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload, "whsec_chatfocus_test_secret"),
    )
    assert response.status_code == 400, response.content
    expected = "malformed_json" if payload.startswith(b"[[") else "validation_error"
    assert response.json()["error"]["code"] == expected
    assert not WebhookEvent.objects.exists()


def test_unknown_type_is_200_and_ignored(api_client, stripe_fake):
    event = stripe_fake.event(
        "radar.early_fraud_warning.created", {"id": "issfr_1", "object": "radar.early_fraud_warning"}
    )
    response = send(api_client, event)
    assert response.json()["outcome"] == "ignored"
    assert WebhookEvent.objects.get(id=event["id"]).status == "ignored"


def test_duplicate_delivery_is_processed_once(api_client, stripe_fake, stripe_prices, user):
    subscription_id = subscribe(stripe_fake, user)
    stripe_fake.set_status(subscription_id, "past_due")
    event = stripe_fake.event("invoice.payment_failed", stripe_fake.create_invoice(subscription_id, paid=False))
    before = WEBHOOK_EVENTS.labels(type="invoice.payment_failed", outcome="duplicate")._value.get()
    assert send(api_client, event).json()["outcome"] == "processed"
    assert send(api_client, event).json()["outcome"] == "duplicate"
    assert WebhookEvent.objects.get(id=event["id"]).attempts == 1
    assert WEBHOOK_EVENTS.labels(type="invoice.payment_failed", outcome="duplicate")._value.get() == before + 1
    # dj-stripe's event log holds it once too.
    from djstripe.models import Event

    assert Event.objects.filter(id=event["id"]).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_deliveries_process_once(stripe_fake, stripe_prices, django_capture_on_commit_callbacks):
    from rest_framework.test import APIClient

    from accounts.tests.factories import UserFactory

    user = UserFactory()
    subscription_id = subscribe(stripe_fake, user)
    stripe_fake.set_status(subscription_id, "past_due")
    event = stripe_fake.event("invoice.payment_failed", stripe_fake.create_invoice(subscription_id, paid=False))
    barrier, results = threading.Barrier(2), []

    def deliver_once():
        try:
            barrier.wait()
            results.append(send(APIClient(), event))
        finally:
            connection.close()

    mail.outbox.clear()
    threads = [threading.Thread(target=deliver_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status_code for r in results) == [200, 200]
    assert sorted(r.json()["outcome"] for r in results) == ["duplicate", "processed"]
    assert WebhookEvent.objects.get(id=event["id"]).attempts == 1
    assert len([m for m in mail.outbox if "payment" in m.subject]) == 1


def test_updated_before_created_ends_in_stripes_current_state(api_client, stripe_fake, stripe_prices, user):
    url_session = subscribe(stripe_fake, user)  # the account exists; now replay events out of order
    subscription = stripe_fake.objects[url_session]
    stripe_fake._modify_subscription({"cancel_at_period_end": "true"}, url_session)
    updated = stripe_fake.event("customer.subscription.updated", subscription)
    created_snapshot = dict(subscription, cancel_at_period_end=False)
    created = stripe_fake.event("customer.subscription.created", created_snapshot, created=updated["created"] - 10)
    send(api_client, updated)
    send(api_client, created)
    assert get_entitlements(user=user).cancel_at_period_end is True


def test_older_update_after_newer_never_overwrites(api_client, stripe_fake, stripe_prices, user):
    subscription_id = subscribe(stripe_fake, user)
    old_snapshot = stripe_fake._public(stripe_fake.objects[subscription_id])
    stripe_fake._modify_subscription(
        {"items": [{"id": old_snapshot["items"]["data"][0]["id"], "price": stripe_prices[("premium", "month")]}]},
        subscription_id,
    )
    newer = stripe_fake.event("customer.subscription.updated", stripe_fake.objects[subscription_id])
    older = stripe_fake.event("customer.subscription.updated", old_snapshot, created=newer["created"] - 60)
    send(api_client, newer)
    send(api_client, older)
    assert get_entitlements(user=user).tier == "premium"


def test_ended_subscriptions_late_event_does_not_replace_the_live_one(api_client, stripe_fake, stripe_prices, user):
    first = subscribe(stripe_fake, user)
    stripe_fake._cancel_subscription({}, first)
    send(api_client, stripe_fake.event("customer.subscription.deleted", stripe_fake.objects[first]))
    second = subscribe(stripe_fake, user, "premium")
    send(api_client, stripe_fake.event("customer.subscription.deleted", stripe_fake.objects[first]))
    account = BillingAccount.objects.get(user=user)
    assert (account.stripe_subscription_id, get_entitlements(user=user).tier) == (second, "premium")


def test_checkout_completed_links_the_session_to_its_user(api_client, stripe_fake, stripe_prices, user):
    from billing.services import start_checkout

    url = start_checkout(user=user, tier="premium", interval="year")
    session = stripe_fake.complete_checkout(url.rsplit("/", 1)[1])
    send(api_client, stripe_fake.event("checkout.session.completed", session))
    entitlements = get_entitlements(user=user)
    assert (entitlements.tier, entitlements.interval, entitlements.source) == ("premium", "year", "stripe")


def test_subscription_deleted_makes_the_user_free(api_client, stripe_fake, stripe_prices, user):
    subscription_id = subscribe(stripe_fake, user)
    stripe_fake._cancel_subscription({}, subscription_id)
    send(api_client, stripe_fake.event("customer.subscription.deleted", stripe_fake.objects[subscription_id]))
    assert (get_entitlements(user=user).tier, get_entitlements(user=user).status) == ("free", "canceled")


def test_deleted_subscription_unknown_to_stripe_applies_the_events_snapshot(
    api_client, stripe_fake, stripe_prices, user
):
    subscription_id = subscribe(stripe_fake, user)
    snapshot = dict(stripe_fake._public(stripe_fake.objects.pop(subscription_id)), status="canceled")
    assert send(api_client, stripe_fake.event("customer.subscription.deleted", snapshot)).status_code == 200
    assert get_entitlements(user=user).tier == "free"


def test_trial_will_end_sends_an_email(
    api_client, stripe_fake, stripe_prices, user, django_capture_on_commit_callbacks
):
    subscription_id = subscribe(stripe_fake, user, trial_days=14)
    assert get_entitlements(user=user).status == "trialing"
    with django_capture_on_commit_callbacks(execute=True):
        send(
            api_client, stripe_fake.event("customer.subscription.trial_will_end", stripe_fake.objects[subscription_id])
        )
    assert mail.outbox[-1].to == [user.email]
    assert "trial ends soon" in mail.outbox[-1].subject


def test_payment_action_required_emails_the_invoice_link(
    api_client, stripe_fake, stripe_prices, user, django_capture_on_commit_callbacks
):
    subscription_id = subscribe(stripe_fake, user)
    invoice = stripe_fake.create_invoice(subscription_id, paid=False)
    with django_capture_on_commit_callbacks(execute=True):
        send(api_client, stripe_fake.event("invoice.payment_action_required", invoice))
    assert "confirm" in mail.outbox[-1].subject
    assert invoice["hosted_invoice_url"] in mail.outbox[-1].body


def test_invoice_paid_recovers_a_past_due_subscription(api_client, stripe_fake, stripe_prices, user):
    subscription_id = subscribe(stripe_fake, user)
    stripe_fake.set_status(subscription_id, "past_due")
    send(
        api_client, stripe_fake.event("invoice.payment_failed", stripe_fake.create_invoice(subscription_id, paid=False))
    )
    assert get_entitlements(user=user).grace_until is not None
    stripe_fake.set_status(subscription_id, "active")
    send(api_client, stripe_fake.event("invoice.paid", stripe_fake.create_invoice(subscription_id, paid=True)))
    entitlements = get_entitlements(user=user)
    assert (entitlements.status, entitlements.grace_until, entitlements.tier) == ("active", None, "pro")


def test_customer_deleted_returns_the_user_to_free(api_client, stripe_fake, stripe_prices, user):
    subscription_id = subscribe(stripe_fake, user)
    customer_id = stripe_fake.objects[subscription_id]["customer"]
    snapshot = stripe_fake._public(stripe_fake.objects[customer_id])
    stripe_fake._delete_customer({}, customer_id)
    assert send(api_client, stripe_fake.event("customer.deleted", snapshot)).status_code == 200
    assert get_entitlements(user=user).tier == "free"
    assert BillingAccount.objects.get(user=user).stripe_customer_id == ""


def test_handler_failure_is_500_marked_failed_and_replayable(api_client, stripe_fake, stripe_prices, user):
    subscription_id = subscribe(stripe_fake, user, "pro")
    stripe_fake._modify_subscription(
        {
            "items": [
                {
                    "id": stripe_fake.objects[subscription_id]["items"]["data"][0]["id"],
                    "price": stripe_prices[("premium", "month")],
                }
            ]
        },
        subscription_id,
    )
    event = stripe_fake.event("customer.subscription.updated", stripe_fake.objects[subscription_id])
    stripe_fake.fail("GET", f"/v1/subscriptions/{subscription_id}")
    response = send(api_client, event)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"
    stored = WebhookEvent.objects.get(id=event["id"])
    assert stored.status == "failed" and "Fake failure" in stored.error
    assert get_entitlements(user=user).tier == "pro"

    stripe_fake.failures.clear()
    call_command("billing_replay_events", "--failed")
    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == ("processed", 2)
    assert get_entitlements(user=user).tier == "premium"


def test_a_failed_event_redelivered_by_stripe_is_processed(api_client, stripe_fake, stripe_prices, user):
    subscription_id = subscribe(stripe_fake, user)
    event = stripe_fake.event("customer.subscription.updated", stripe_fake.objects[subscription_id])
    stripe_fake.fail("GET", f"/v1/subscriptions/{subscription_id}")
    assert send(api_client, event).status_code == 500
    stripe_fake.failures.clear()
    assert send(api_client, event).json()["outcome"] == "processed"


def test_webhook_creates_djstripes_endpoint_row_from_env(api_client, stripe_fake, settings):
    from djstripe.models import WebhookEndpoint

    send(
        api_client,
        stripe_fake.event(
            "radar.early_fraud_warning.created", {"id": "issfr_1", "object": "radar.early_fraud_warning"}
        ),
    )
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == settings.STRIPE_WEBHOOK_SECRET
    assert endpoint.url == f"{settings.API_URL}/api/subscriptions/webhook"
    assert endpoint.enabled_events == ["*"]


def test_webhook_endpoint_command_follows_the_secret(settings, stripe_fake):
    from djstripe.models import WebhookEndpoint

    call_command("billing_webhook_endpoint")
    settings.STRIPE_WEBHOOK_SECRET = "whsec_rotated"
    call_command("billing_webhook_endpoint")
    assert list(WebhookEndpoint.objects.values_list("secret", flat=True)) == ["whsec_rotated"]


def json_bytes(event) -> bytes:
    import json

    return json.dumps(event).encode()
