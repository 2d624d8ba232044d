"""The whole paid journey through the API, with Stripe answered by the fake and events signed like Stripe's."""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from billing.models import TierChange
from billing.tests.stripe_fake import deliver
from conftest import STRIPE_TEST_WEBHOOK_SECRET


def send(api_client, fake, type, obj):
    response = deliver(api_client, fake.event(type, obj), secret=STRIPE_TEST_WEBHOOK_SECRET)
    assert response.status_code == 200, response.content
    return response.json()


def tier_of(client):
    return client.get("/api/subscriptions").json()


@pytest.mark.django_db
def test_paid_journey_from_free_to_premium_through_dunning_cancel_and_resume(
    auth_client, api_client, stripe_fake, stripe_prices, django_capture_on_commit_callbacks, settings
):
    client = auth_client()
    fake = stripe_fake
    assert tier_of(client)["tier"] == "free"

    response = client.post("/api/subscriptions", {"tier": "pro", "interval": "month"}, format="json")
    assert response.status_code == 201, response.content
    session_id = response.json()["checkout_url"].rsplit("/", 1)[1]
    session = fake.complete_checkout(session_id)
    send(api_client, fake, "checkout.session.completed", session)
    body = tier_of(client)
    assert (body["tier"], body["status"], body["interval"]) == ("pro", "active", "month")
    subscription_id = session["subscription"]

    response = client.put("/api/subscriptions", {"tier": "premium"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["tier"] == "premium"
    modify = fake.calls("POST", f"/v1/subscriptions/{subscription_id}")[-1]
    assert modify.params["proration_behavior"] == "create_prorations"
    assert modify.params["items"][0]["price"] == stripe_prices[("premium", "month")]

    fake.set_status(subscription_id, "past_due")
    with django_capture_on_commit_callbacks(execute=True):
        send(api_client, fake, "invoice.payment_failed", fake.create_invoice(subscription_id, paid=False))
    body = tier_of(client)
    assert (body["tier"], body["status"]) == ("premium", "past_due")
    assert body["grace_until"]
    assert "payment didn't go through" in mail.outbox[-1].subject

    with time_machine.travel(timezone.now() + timedelta(days=settings.BILLING_GRACE_DAYS, minutes=1)):
        client = auth_client(client.user)  # the access token of a week ago has expired
        assert tier_of(client)["tier"] == "free"

        fake.set_status(subscription_id, "active")
        send(api_client, fake, "invoice.paid", fake.create_invoice(subscription_id, paid=True))
        body = tier_of(client)
        assert (body["tier"], body["status"], body["grace_until"]) == ("premium", "active", None)

        body = client.delete("/api/subscriptions").json()
        assert (body["tier"], body["cancel_at_period_end"]) == ("premium", True)
        body = client.put("/api/subscriptions", {"resume": True}, format="json").json()
        assert body["cancel_at_period_end"] is False
        body = client.delete("/api/subscriptions").json()
        assert body["cancel_at_period_end"] is True

        send(api_client, fake, "customer.subscription.deleted", fake.end_period(subscription_id))
        body = tier_of(client)
        assert (body["tier"], body["status"]) == ("free", "canceled")

    changes = list(TierChange.objects.filter(user=client.user).order_by("id").values_list("from_tier", "to_tier"))
    assert changes == [("free", "pro"), ("pro", "premium"), ("premium", "free")]
