"""Features mean something: the tier table, the plans and the entitlements agree (DESIGN.md section 4)."""

import re

import pytest
from django.urls import reverse

from billing.tests.factories import BillingAccountFactory
from billing.tiers import (
    FEATURE_TITLES,
    FREE,
    HISTORY,
    PREMIUM,
    PRIORITY_SUPPORT,
    PRO,
    SECRET_KEYS,
    SNAPSHOTS,
    SYNC,
    TIERS,
)

pytestmark = pytest.mark.django_db


def test_every_tier_has_sync_history_snapshots_and_secret_keys_and_premium_adds_priority_support():
    # DESIGN.md section 4: encryption is never a paid extra; tiers differ by their limits.
    for tier in (FREE, PRO):
        assert set(TIERS[tier].features) == {SYNC, HISTORY, SNAPSHOTS, SECRET_KEYS}
    assert set(TIERS[PREMIUM].features) == {SYNC, HISTORY, SNAPSHOTS, SECRET_KEYS, PRIORITY_SUPPORT}


def test_plans_and_entitlements_list_the_features_of_the_tier_table(api_client, auth_client, settings):
    settings.STRIPE_SECRET_KEY = ""
    plans = api_client.get("/api/subscriptions/plans").json()["plans"]
    assert {plan["tier"]: plan["features"] for plan in plans} == {
        name: list(tier.features) for name, tier in TIERS.items()
    }
    assert auth_client().get("/api/subscriptions").json()["features"] == list(TIERS[FREE].features)


def test_the_hosted_pricing_lists_each_plans_features_from_the_tier_table(client, user, settings):
    settings.STRIPE_SECRET_KEY = ""
    client.force_login(user)
    page = client.get("/account/billing/").content.decode()
    for name in (FREE, PRO, PREMIUM):
        listed = re.search(rf'aria-label="Included in {TIERS[name].title}">(.*?)</ul>', page, re.S).group(1)
        assert re.findall(r"<li>(.*?)</li>", listed) == [FEATURE_TITLES[f] for f in TIERS[name].features]


def test_the_billing_admin_shows_priority_support_of_premium_accounts(admin_client):
    BillingAccountFactory(tier=PREMIUM, effective_tier=PREMIUM, user__email="vip@example.com")
    BillingAccountFactory(tier=PRO, user__email="regular@example.com")
    page = admin_client.get(reverse("admin:billing_billingaccount_changelist")).content.decode()
    assert "premium (stripe) · priority support" in page
    assert page.count("priority support") == 1, "only the premium account has it"
