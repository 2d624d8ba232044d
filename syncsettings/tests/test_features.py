"""A feature the user's tier lacks is refused with 403 `feature_not_available`, one test per feature.

Every tier has these features today (DESIGN.md section 4), so each test takes one away from the free tier
in the tier table.
"""

import dataclasses

import pytest

from billing.tiers import FREE, HISTORY, SECRET_KEYS, SNAPSHOTS, TIERS
from syncsettings.models import Entry, Snapshot
from syncsettings.tests.factories import make_op

pytestmark = pytest.mark.django_db


@pytest.fixture
def free_tier_without(monkeypatch):
    """Take `feature` away from the free tier in the tier table (entitlements read the table on every call)."""

    def remove(feature: str):
        free = TIERS[FREE]
        monkeypatch.setitem(
            TIERS, FREE, dataclasses.replace(free, features=tuple(f for f in free.features if f != feature))
        )

    return remove


def assert_feature_refused(response, feature):
    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "feature_not_available"
    assert error["details"] == {"feature": feature, "tier": FREE}


def test_a_tier_without_history_is_refused_the_change_log(sync, free_tier_without):
    sync.push("laptop", [make_op("a", 1)])
    assert sync.client.get("/api/sync/history").status_code == 200
    free_tier_without(HISTORY)
    assert_feature_refused(sync.client.get("/api/sync/history"), HISTORY)
    assert HISTORY not in sync.client.get("/api/subscriptions").json()["features"]


def test_a_tier_without_snapshots_is_refused_listing_taking_and_restoring_them(sync, free_tier_without):
    sync.push("laptop", [make_op("a", 1)])
    taken = sync.client.post("/api/sync/snapshots", {"label": "before"}, format="json").json()
    free_tier_without(SNAPSHOTS)
    assert_feature_refused(sync.client.get("/api/sync/snapshots"), SNAPSHOTS)
    assert_feature_refused(sync.client.post("/api/sync/snapshots", {"label": "x"}, format="json"), SNAPSHOTS)
    assert_feature_refused(sync.client.post(f"/api/sync/snapshots/{taken['id']}/restore"), SNAPSHOTS)
    assert Snapshot.objects.filter(user_id=sync.user.id).count() == 1


def test_a_tier_without_secret_keys_cannot_write_one_but_can_delete_it(sync, free_tier_without):
    sync.push("laptop", [make_op("secret.token", "abc")])
    free_tier_without(SECRET_KEYS)
    assert_feature_refused(sync.push("laptop", [make_op("plain", 1), make_op("secret.other", "x")]), SECRET_KEYS)
    assert set(Entry.objects.filter(user_id=sync.user.id).values_list("key", flat=True)) == {"secret.token"}
    version = sync.settings().json()["version"]
    replace = sync.client.put(
        "/api/sync/settings", {"settings": {"secret.token": "new"}}, format="json", HTTP_IF_MATCH=f'"v{version}"'
    )
    assert_feature_refused(replace, SECRET_KEYS)
    assert sync.push("laptop", [make_op("plain", 1)]).status_code == 200
    assert sync.push("laptop", [make_op("secret.token", op="delete")]).status_code == 200
    assert "secret.token" not in sync.document()
