"""Features mean something: the tier table, the plans and the entitlements agree (DESIGN.md section 4)."""

import pytest

from billing.tiers import FREE, HISTORY, PREMIUM, PRIORITY_SUPPORT, PRO, SECRET_KEYS, SNAPSHOTS, SYNC, TIERS

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
