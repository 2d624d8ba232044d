from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.selectors import entitlements_from_state, get_entitlements, resolve_tier
from billing.tests.factories import BillingAccountFactory
from billing.tiers import TIERS

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
GRACE = NOW + timedelta(days=7)


@pytest.mark.parametrize(
    ("status", "at", "expected"),
    [
        ("active", NOW, "pro"),
        ("trialing", NOW, "pro"),
        ("past_due", NOW, "pro"),
        ("past_due", GRACE - timedelta(seconds=1), "pro"),
        ("past_due", GRACE, "free"),
        ("past_due", GRACE + timedelta(days=1), "free"),
        ("unpaid", NOW, "free"),
        ("canceled", NOW, "free"),
        ("incomplete", NOW, "free"),
        ("incomplete_expired", NOW, "free"),
        ("paused", NOW, "free"),
        ("", NOW, "free"),
    ],
)
def test_status_and_grace_boundary_decide_the_tier(status, at, expected):
    state = {"tier": "pro", "status": status, "grace_until": GRACE}
    with time_machine.travel(at, tick=False):
        assert entitlements_from_state(state).tier == expected


def test_past_due_without_a_grace_date_is_free():
    assert resolve_tier(state={"tier": "pro", "status": "past_due", "grace_until": None}, now=NOW) == ("free", "free")


@pytest.mark.parametrize(
    ("at", "expected"),
    [(GRACE - timedelta(seconds=1), ("premium", "stripe")), (GRACE, ("pro", "stripe"))],
)
def test_downgrade_keeps_the_paid_tier_until_period_end(at, expected):
    state = {"tier": "pro", "status": "active", "paid_tier": "premium", "paid_tier_until": GRACE}
    assert resolve_tier(state=state, now=at) == expected


@pytest.mark.parametrize(
    ("status", "at", "expected"),
    [
        ("canceled", GRACE - timedelta(seconds=1), ("premium", "comp")),
        ("canceled", GRACE, ("free", "free")),
        ("active", NOW, ("premium", "comp")),
    ],
)
def test_comp_grant_wins_over_stripe_until_its_date(status, at, expected):
    state = {"tier": "pro", "status": status, "comp_tier": "premium", "comp_until": GRACE}
    assert resolve_tier(state=state, now=at) == expected


def test_comp_never_lowers_a_paid_tier():
    state = {"tier": "premium", "status": "active", "comp_tier": "pro", "comp_until": GRACE}
    assert resolve_tier(state=state, now=NOW) == ("premium", "stripe")


@pytest.mark.django_db
def test_free_user_costs_one_query_then_none_and_no_stripe_call(user, settings):
    settings.STRIPE_SECRET_KEY = ""
    with CaptureQueriesContext(connection) as queries:
        entitlements = get_entitlements(user=user)
    assert len(queries) == 1
    assert (entitlements.tier, entitlements.status, entitlements.limits) == ("free", "free", TIERS["free"].limits)
    with CaptureQueriesContext(connection) as queries:
        get_entitlements(user=user)
    assert len(queries) == 0


@pytest.mark.django_db
def test_entitlements_need_only_the_users_id():
    account = BillingAccountFactory(tier="premium", status="active")

    class TokenUser:
        id = account.user_id

    assert get_entitlements(user=TokenUser()).tier == "premium"


@pytest.mark.django_db
def test_cached_entitlements_are_invalidated_by_every_change(user, django_capture_on_commit_callbacks):
    from billing.services import grant_comp_tier, revoke_comp_tier

    assert get_entitlements(user=user).tier == "free"
    with django_capture_on_commit_callbacks(execute=True):
        grant_comp_tier(user_id=user.id, tier="pro", until=datetime(2099, 1, 1, tzinfo=UTC), granted_by=None)
    assert get_entitlements(user=user).tier == "pro"
    with django_capture_on_commit_callbacks(execute=True):
        revoke_comp_tier(user_id=user.id, revoked_by=None)
    assert get_entitlements(user=user).tier == "free"
