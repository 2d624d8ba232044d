from datetime import timedelta

import pytest
import time_machine
from django.utils.dateparse import parse_datetime

from billing.models import BillingAccount, TierChange
from billing.selectors import get_entitlements
from billing.tests.helpers import subscribe

pytestmark = pytest.mark.django_db


def test_plans_are_public_and_answer_without_stripe(api_client, settings):
    settings.STRIPE_SECRET_KEY = ""
    response = api_client.get("/api/subscriptions/plans")
    assert response.status_code == 200
    body = response.json()
    assert body["billing_configured"] is False
    assert [plan["tier"] for plan in body["plans"]] == ["free", "pro", "premium"]
    assert all(plan["prices"] == [] for plan in body["plans"])
    assert body["plans"][1]["limits"]["devices"] == 10


def test_plans_list_the_mirrored_prices(api_client, stripe_prices):
    body = api_client.get("/api/subscriptions/plans").json()
    premium = body["plans"][2]
    assert [(p["id"], p["interval"], p["unit_amount"]) for p in premium["prices"]] == [
        (stripe_prices[("premium", "month")], "month", 1200),
        (stripe_prices[("premium", "year")], "year", 12000),
    ]


def test_entitlements_need_authentication(api_client):
    assert api_client.get("/api/subscriptions").status_code == 401


def test_free_user_entitlements_with_etag_and_304(auth_client, settings):
    settings.STRIPE_SECRET_KEY = ""
    client = auth_client()
    response = client.get("/api/subscriptions")
    assert response.status_code == 200
    body = response.json()
    assert (body["tier"], body["status"], body["source"], body["interval"]) == ("free", "free", "free", None)
    assert body["limits"]["sync_bytes"] == 256 * 1024
    etag = response["ETag"]
    again = client.get("/api/subscriptions", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again["ETag"] == etag


def test_etag_changes_with_the_tier(auth_client, stripe_fake, stripe_prices):
    client = auth_client()
    etag = client.get("/api/subscriptions")["ETag"]
    subscribe(stripe_fake, client.user)
    response = client.get("/api/subscriptions", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert response.json()["tier"] == "pro"


def test_checkout_creates_a_customer_and_a_session_linked_to_the_user(
    auth_client, stripe_fake, stripe_prices, settings
):
    client = auth_client()
    response = client.post("/api/subscriptions", {"tier": "premium", "interval": "year"}, format="json")
    assert response.status_code == 201
    assert response.json()["checkout_url"].startswith("https://checkout.stripe.test/")
    customer_call = stripe_fake.calls("POST", "/v1/customers")[0]
    assert customer_call.params["metadata"]["djstripe_subscriber"] == str(client.user.id)
    session_call = stripe_fake.calls("POST", "/v1/checkout/sessions")[0]
    params = session_call.params
    assert params["client_reference_id"] == str(client.user.id)
    assert params["subscription_data"]["metadata"]["djstripe_subscriber"] == str(client.user.id)
    assert params["line_items"][0]["price"] == stripe_prices[("premium", "year")]
    assert params["success_url"] == f"{settings.API_URL}/account/billing/?session_id={{CHECKOUT_SESSION_ID}}"
    assert params["cancel_url"].startswith(f"{settings.API_URL}/account/billing/")
    posts = [r for r in stripe_fake.requests if r.method == "POST"]
    assert posts and all(r.idempotency_key for r in posts)
    account = BillingAccount.objects.get(user=client.user)
    assert account.stripe_customer_id.startswith("cus_")


def test_second_checkout_reuses_the_customer(auth_client, stripe_fake, stripe_prices):
    client = auth_client()
    client.post("/api/subscriptions", {"tier": "pro", "interval": "month"}, format="json")
    client.post("/api/subscriptions", {"tier": "pro", "interval": "year"}, format="json")
    assert len(stripe_fake.calls("POST", "/v1/customers")) == 1


def test_checkout_with_a_live_subscription_is_409(auth_client, stripe_fake, stripe_prices):
    client = auth_client()
    subscribe(stripe_fake, client.user)
    response = client.post("/api/subscriptions", {"tier": "premium", "interval": "month"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "subscription_exists"


@pytest.mark.parametrize("body", [{}, {"tier": "free", "interval": "month"}, {"tier": "pro", "interval": "week"}])
def test_checkout_validates_its_input(auth_client, stripe_fake, stripe_prices, body):
    response = auth_client().post("/api/subscriptions", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_stripe_failure_is_502_and_changes_nothing(auth_client, stripe_fake, stripe_prices):
    client = auth_client()
    stripe_fake.fail("POST", "/v1/customers")
    response = client.post("/api/subscriptions", {"tier": "pro", "interval": "month"}, format="json")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"
    assert BillingAccount.objects.filter(user=client.user).exclude(stripe_customer_id="").count() == 0


def test_plan_change_failure_is_502_and_keeps_the_tier(auth_client, stripe_fake, stripe_prices):
    client = auth_client()
    subscribe(stripe_fake, client.user)
    stripe_fake.fail("POST", "/v1/subscriptions/")
    response = client.put("/api/subscriptions", {"tier": "premium"}, format="json")
    assert response.status_code == 502
    assert client.get("/api/subscriptions").json()["tier"] == "pro"
    assert TierChange.objects.filter(user=client.user, to_tier="premium").count() == 0


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/subscriptions", {"tier": "pro", "interval": "month"}),
        ("put", "/api/subscriptions", {"tier": "pro"}),
        ("delete", "/api/subscriptions", None),
        ("post", "/api/subscriptions/portal", None),
    ],
)
def test_paid_actions_without_a_key_are_503(auth_client, settings, method, path, body):
    settings.STRIPE_SECRET_KEY = ""
    response = getattr(auth_client(), method)(path, body, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "billing_not_configured"


def test_checkout_for_a_plan_without_a_price_is_503(auth_client, stripe_fake):
    response = auth_client().post("/api/subscriptions", {"tier": "pro", "interval": "month"}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "billing_not_configured"


def test_downgrade_applies_at_period_end_without_proration(auth_client, stripe_fake, stripe_prices):
    client = auth_client()
    subscription_id = subscribe(stripe_fake, client.user, "premium")
    response = client.put("/api/subscriptions", {"tier": "pro"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["tier"], body["pending_tier"]) == ("premium", "pro")
    call = stripe_fake.calls("POST", f"/v1/subscriptions/{subscription_id}")[-1]
    assert call.params["proration_behavior"] == "none"
    assert call.params["items"][0]["price"] == stripe_prices[("pro", "month")]


def test_downgrade_takes_effect_when_the_period_ends(auth_client, stripe_fake, stripe_prices):
    client = auth_client()
    subscribe(stripe_fake, client.user, "premium")
    period_end = client.put("/api/subscriptions", {"tier": "pro"}, format="json").json()["current_period_end"]
    with time_machine.travel(parse_datetime(period_end) + timedelta(seconds=1)):
        entitlements = get_entitlements(user=client.user)
    assert (entitlements.tier, entitlements.pending_tier) == ("pro", None)


def test_upgrade_after_a_pending_downgrade_clears_it(auth_client, stripe_fake, stripe_prices):
    client = auth_client()
    subscribe(stripe_fake, client.user, "premium")
    client.put("/api/subscriptions", {"tier": "pro"}, format="json")
    body = client.put("/api/subscriptions", {"tier": "premium"}, format="json").json()
    assert (body["tier"], body["pending_tier"]) == ("premium", None)


def test_interval_switch_applies_now_with_prorations(auth_client, stripe_fake, stripe_prices):
    client = auth_client()
    subscription_id = subscribe(stripe_fake, client.user, "pro", "month")
    body = client.put("/api/subscriptions", {"interval": "year"}, format="json").json()
    assert (body["tier"], body["interval"]) == ("pro", "year")
    call = stripe_fake.calls("POST", f"/v1/subscriptions/{subscription_id}")[-1]
    assert call.params["proration_behavior"] == "create_prorations"


def test_same_plan_is_a_no_op(auth_client, stripe_fake, stripe_prices):
    client = auth_client()
    subscription_id = subscribe(stripe_fake, client.user)
    assert client.put("/api/subscriptions", {"tier": "pro"}, format="json").status_code == 200
    assert stripe_fake.calls("POST", f"/v1/subscriptions/{subscription_id}") == []


@pytest.mark.parametrize(
    "body", [{}, {"resume": False}, {"resume": True, "tier": "pro"}, {"tier": "free"}, {"interval": "day"}]
)
def test_change_validates_its_input(auth_client, stripe_fake, stripe_prices, body):
    client = auth_client()
    subscribe(stripe_fake, client.user)
    response = client.put("/api/subscriptions", body, format="json")
    assert response.status_code == 400


def test_change_without_a_subscription_is_409(auth_client, stripe_fake, stripe_prices):
    response = auth_client().put("/api/subscriptions", {"tier": "pro"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


def test_cancel_then_resume(auth_client, stripe_fake, stripe_prices):
    client = auth_client()
    subscription_id = subscribe(stripe_fake, client.user)
    body = client.delete("/api/subscriptions").json()
    assert (body["tier"], body["cancel_at_period_end"]) == ("pro", True)
    assert stripe_fake.objects[subscription_id]["cancel_at_period_end"] is True
    assert client.delete("/api/subscriptions").status_code == 200  # idempotent
    body = client.put("/api/subscriptions", {"resume": True}, format="json").json()
    assert body["cancel_at_period_end"] is False
    assert stripe_fake.objects[subscription_id]["cancel_at_period_end"] is False


def test_cancel_without_a_subscription_is_409(auth_client, stripe_fake):
    assert auth_client().delete("/api/subscriptions").status_code == 409


def test_portal_returns_a_stripe_url(auth_client, stripe_fake, stripe_prices, settings):
    client = auth_client()
    subscribe(stripe_fake, client.user)
    response = client.post("/api/subscriptions/portal")
    assert response.status_code == 200
    assert response.json()["url"].startswith("https://billing.stripe.test/")
    call = stripe_fake.calls("POST", "/v1/billing_portal/sessions")[0]
    assert call.params["return_url"] == f"{settings.API_URL}/account/billing/"


def test_portal_before_any_checkout_is_409(auth_client, stripe_fake):
    assert auth_client().post("/api/subscriptions/portal").status_code == 409
