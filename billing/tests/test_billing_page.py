"""The hosted billing page's invoice list and plan-change preview, through Django's test client."""

import pytest

pytestmark = pytest.mark.django_db


def test_a_bad_or_impossible_preview_on_the_page_is_a_message_not_an_error(client, user, stripe_fake, stripe_prices):
    client.force_login(user)
    response = client.get("/account/billing/", {"tier": "gold", "interval": "month"})
    assert response.status_code == 200
    assert "Choose a plan and a billing period." in response.content.decode()
    response = client.get("/account/billing/", {"tier": "premium", "interval": "month"}, follow=True)
    assert "You have no subscription to change." in response.content.decode()
    assert 'id="plan-preview"' not in response.content.decode()


def test_changing_plan_without_a_subscription_changes_nothing(client, user, stripe_fake, stripe_prices):
    client.force_login(user)
    response = client.post("/account/billing/change/", {"tier": "premium", "interval": "month"}, follow=True)
    assert "You have no subscription to change." in response.content.decode()
    assert not stripe_fake.calls("POST", "/v1/subscriptions/")


def test_a_free_user_sees_no_invoices_yet(client, user, settings):
    settings.STRIPE_SECRET_KEY = ""
    client.force_login(user)
    assert "No invoices yet." in client.get("/account/billing/").content.decode()
