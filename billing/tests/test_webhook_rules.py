"""DESIGN.md section 4's webhook rules with STRIPE_SECRET_KEY unset and set: never a 500 Stripe retries for days."""

import time

import pytest

from billing.models import WebhookEvent
from billing.tests.stripe_fake import deliver

pytestmark = pytest.mark.django_db

SECRET = "whsec_chatfocus_test_secret"
UNHANDLED = "radar.early_fraud_warning.created"
HANDLED = "customer.subscription.updated"


@pytest.fixture(params=["unset", "set"])
def stripe_key(request, stripe_fake, settings):
    """The webhook secret is set (the signature can be checked); the API key is unset or set."""
    if request.param == "unset":
        settings.STRIPE_SECRET_KEY = ""
    return request.param


def test_unhandled_type_is_200_ignored_without_calling_stripe(api_client, stripe_fake, stripe_key):
    event = stripe_fake.event(UNHANDLED, {"id": "issfr_1", "object": "radar.early_fraud_warning"})
    calls_before = len(stripe_fake.requests)
    first = deliver(api_client, event, secret=SECRET)
    again = deliver(api_client, event, secret=SECRET)
    assert (first.status_code, first.json()["outcome"]) == (200, "ignored")
    assert (again.status_code, again.json()["outcome"]) == (200, "duplicate")
    assert len(stripe_fake.requests) == calls_before
    assert WebhookEvent.objects.get(id=event["id"]).status == "ignored"


def test_handled_type_without_stripe_key_is_503_and_stores_nothing(api_client, stripe_fake, settings):
    settings.STRIPE_SECRET_KEY = ""
    event = stripe_fake.event(HANDLED, {"id": "sub_1", "object": "subscription", "customer": "cus_1"})
    calls_before = len(stripe_fake.requests)
    response = deliver(api_client, event, secret=SECRET)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "billing_not_configured"
    assert int(response["Retry-After"]) > 0
    assert not WebhookEvent.objects.exists()
    assert len(stripe_fake.requests) == calls_before


def test_duplicate_of_a_processed_event_is_200_even_after_the_key_is_removed(api_client, stripe_fake, settings):
    event = stripe_fake.event(UNHANDLED, {"id": "issfr_2", "object": "radar.early_fraud_warning"})
    assert deliver(api_client, event, secret=SECRET).status_code == 200
    WebhookEvent.objects.filter(id=event["id"]).update(type=HANDLED)  # as if a handled event had been processed
    settings.STRIPE_SECRET_KEY = ""
    handled = {**event, "type": HANDLED}
    response = deliver(api_client, handled, secret=SECRET)
    assert (response.status_code, response.json()["outcome"]) == (200, "duplicate")


@pytest.mark.parametrize("offset", [-301, 301, -3600, 3600], ids=["stale", "future", "hour-old", "hour-ahead"])
def test_signature_timestamp_outside_300_seconds_either_way_is_400(api_client, stripe_fake, stripe_key, offset):
    event = stripe_fake.event(UNHANDLED, {"id": "issfr_3", "object": "radar.early_fraud_warning"})
    response = deliver(api_client, event, secret=SECRET, timestamp=int(time.time()) + offset)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "signature_invalid"
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize("offset", [-290, 290])
def test_signature_timestamp_within_300_seconds_either_way_is_accepted(api_client, stripe_fake, stripe_key, offset):
    event = stripe_fake.event(UNHANDLED, {"id": "issfr_4", "object": "radar.early_fraud_warning"})
    response = deliver(api_client, event, secret=SECRET, timestamp=int(time.time()) + offset)
    assert response.status_code == 200, response.content
