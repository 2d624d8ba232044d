"""GET /api/subscriptions/preview: what a plan change would charge, from Stripe's invoice preview."""

import time
from datetime import UTC, datetime

import pytest
import time_machine

from billing.models import BillingAccount
from billing.tests.helpers import subscribe

pytestmark = pytest.mark.django_db

DAY = 86_400


@pytest.fixture
def ten_days_into_a_pro_month(auth_client, stripe_fake, stripe_prices):
    """A client whose Pro monthly subscription started ten days ago (a 30-day period in the fake)."""
    client = auth_client()
    with time_machine.travel(time.time() - 10 * DAY, tick=False):
        subscription_id = subscribe(stripe_fake, client.user)
    client.period_end = stripe_fake.objects[subscription_id]["items"]["data"][0]["current_period_end"]
    return client


def preview(client, **params):
    return client.get("/api/subscriptions/preview", params)


def test_an_upgrade_is_prorated_onto_the_next_payment(ten_days_into_a_pro_month, stripe_fake, stripe_prices):
    client = ten_days_into_a_pro_month
    response = preview(client, tier="premium")
    assert response.status_code == 200, response.content
    body = response.json()
    # 20 of 30 days left: 500 × 2/3 back for Pro, 1200 × 2/3 for Premium, then a Premium month.
    assert [line["amount"] for line in body["lines"]] == [-333, 800, 1200]
    assert body["lines"][0]["description"].startswith("Unused time on Pro")
    assert body["lines"][1]["description"].startswith("Remaining time on Premium")
    assert (body["amount_due_now"], body["next_amount"], body["currency"]) == (0, 1667, "usd")
    assert datetime.fromisoformat(body["next_payment_at"]) == datetime.fromtimestamp(client.period_end, tz=UTC)
    (call,) = stripe_fake.calls("POST", "/v1/invoices/create_preview")
    assert call.params["subscription_details"]["proration_behavior"] == "create_prorations"
    assert call.params["subscription_details"]["items"][0]["price"] == stripe_prices[("premium", "month")]
    assert not stripe_fake.calls("POST", "/v1/subscriptions/"), "a preview changes nothing"
    assert BillingAccount.objects.get(user=client.user).tier == "pro"


def test_an_interval_switch_is_charged_now_and_renews_a_year_later(ten_days_into_a_pro_month):
    body = preview(ten_days_into_a_pro_month, interval="year").json()
    assert [line["amount"] for line in body["lines"]] == [-333, 5000]
    assert (body["amount_due_now"], body["next_amount"]) == (4667, 5000)
    next_payment = datetime.fromisoformat(body["next_payment_at"]).timestamp()
    assert next_payment - time.time() == pytest.approx(365 * DAY, abs=120)


def test_a_downgrade_previews_the_renewal_at_the_lower_price(auth_client, stripe_fake, stripe_prices):
    client = auth_client()
    subscribe(stripe_fake, client.user, "premium")
    body = preview(client, tier="pro").json()
    assert (body["amount_due_now"], body["next_amount"]) == (0, 500)
    (call,) = stripe_fake.calls("POST", "/v1/invoices/create_preview")
    assert call.params["subscription_details"]["proration_behavior"] == "none"


def test_without_a_subscription_there_is_nothing_to_preview(auth_client, stripe_fake, stripe_prices):
    response = preview(auth_client(), tier="premium", interval="month")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert not stripe_fake.calls("POST", "/v1/invoices/create_preview")


def test_stripe_down_is_a_502_and_changes_nothing(ten_days_into_a_pro_month, stripe_fake):
    stripe_fake.fail("POST", "/v1/invoices/create_preview")
    response = preview(ten_days_into_a_pro_month, tier="premium")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"
    assert BillingAccount.objects.get(user=ten_days_into_a_pro_month.user).tier == "pro"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"tier": "gold"}, "tier"),
        ({"tier": "free"}, "tier"),
        ({"interval": "week"}, "interval"),
        ({}, "non_field_errors"),
        ({"tier": "pro", "interval": "month"}, "tier"),  # the current plan
    ],
)
def test_a_bad_or_unchanged_plan_is_a_400(ten_days_into_a_pro_month, stripe_fake, params, field):
    response = preview(ten_days_into_a_pro_month, **params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert field in response.json()["error"]["fields"]
    assert not stripe_fake.calls("POST", "/v1/invoices/create_preview")
