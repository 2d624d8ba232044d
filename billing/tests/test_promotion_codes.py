"""Stripe Checkout offers promotion codes unless BILLING_ALLOW_PROMOTION_CODES turns them off (DESIGN.md section 4)."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("allowed", "sent"), [(True, "true"), (False, "false")])
def test_checkout_passes_the_promotion_code_setting_to_stripe(
    auth_client, stripe_fake, stripe_prices, settings, allowed, sent
):
    settings.BILLING_ALLOW_PROMOTION_CODES = allowed
    response = auth_client().post("/api/subscriptions", {"tier": "pro", "interval": "month"}, format="json")
    assert response.status_code == 201
    (call,) = stripe_fake.calls("POST", "/v1/checkout/sessions")
    assert call.params["allow_promotion_codes"] == sent
    session_id = response.json()["checkout_url"].rsplit("/", 1)[1]
    assert stripe_fake.objects[session_id]["allow_promotion_codes"] is allowed


def test_promotion_codes_are_on_by_default():
    from django.conf import settings

    assert settings.BILLING_ALLOW_PROMOTION_CODES is True
