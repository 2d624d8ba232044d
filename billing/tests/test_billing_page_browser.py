"""The hosted billing page in Chromium: a subscriber's invoices, and a plan change previewed before it is confirmed."""

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from billing.models import BillingAccount
from billing.tests.helpers import send, subscribe

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_subscriber_sees_invoices_and_previews_an_upgrade_before_confirming(
    browser_page, api_client, stripe_fake, stripe_prices
):
    user = UserFactory(email="payer@example.com")
    subscription_id = subscribe(stripe_fake, user)
    invoice = stripe_fake.create_invoice(subscription_id, paid=True)
    send(api_client, stripe_fake.event("invoice.paid", invoice))
    page = browser_page
    page.goto("/account/login/")
    page.get_by_label("Email").fill("payer@example.com")
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto("/account/billing/")

    expect(page.get_by_role("heading", name="Your plan: Pro")).to_be_visible()
    row = page.locator("#invoices tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(invoice["number"])
    expect(row).to_contain_text("$5.00")
    expect(row).to_contain_text("Paid")
    expect(row.get_by_role("link", name=f"View invoice {invoice['number']}")).to_have_attribute(
        "href", invoice["hosted_invoice_url"]
    )
    expect(row.get_by_role("link", name=f"PDF of invoice {invoice['number']}")).to_have_attribute(
        "href", invoice["invoice_pdf"]
    )

    page.get_by_label("Tier").select_option("premium")
    page.get_by_role("button", name="Preview the change").click()
    preview = page.locator("#plan-preview")
    expect(preview.get_by_role("heading", name="Changing to Premium, billed monthly")).to_be_visible()
    expect(preview.get_by_role("cell", name="1 × Premium (at $12.00 / month)")).to_be_visible()
    expect(page.locator("#preview-due-now")).to_have_text("$0.00")
    # Just subscribed: the whole month is left, so Pro's $5.00 comes back and Premium's $12.00 is added.
    expect(page.locator("#preview-next")).to_contain_text("$19.00 on")
    assert not stripe_fake.calls("POST", "/v1/subscriptions/"), "nothing changes before the confirmation"

    page.get_by_role("button", name="Confirm the change").click()
    expect(page.get_by_role("status")).to_contain_text("Your plan is now Premium.")
    expect(page.get_by_role("heading", name="Your plan: Premium")).to_be_visible()
    (change,) = stripe_fake.calls("POST", "/v1/subscriptions/")
    assert change.params["items"][0]["price"] == stripe_prices[("premium", "month")]
    assert BillingAccount.objects.get(user=user).tier == "premium"
