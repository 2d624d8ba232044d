"""Tier limits (issue test 10): each crossed → 422 and nothing applied; deletes always allowed.

The tier comes from billing's real entitlements: the free tier, a real comp grant, a real downgrade.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.services import grant_comp_tier, revoke_comp_tier
from billing.tiers import TIERS
from syncsettings.models import Device, Snapshot
from syncsettings.tests.factories import DeviceFactory, make_op, stored_state

pytestmark = pytest.mark.django_db

FREE, PRO = TIERS["free"].limits, TIERS["pro"].limits


def assert_quota_error(response, limit):
    assert response.status_code == 422, response.json()
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded" and error["details"]["limit"] == limit


def grant_pro(user):
    grant_comp_tier(user_id=user.id, tier="pro", until=timezone.now() + timedelta(days=30), granted_by=None)


def filler(key: str, size: int) -> dict:
    """A set whose key and value cost exactly `size` bytes."""
    return make_op(key, "x" * (size - len(key) - 2))


def test_storage_bytes_limit(sync):
    # The free tier's 256 KB in 16 values of the largest size, in two pushes (a push is at most 256 KB).
    per_key = FREE.value_bytes
    assert FREE.sync_bytes == 16 * per_key
    for start in (0, 8):
        assert sync.push("laptop", [filler(f"k{i:02}", per_key) for i in range(start, start + 8)]).status_code == 200
    before = stored_state(sync.user)
    assert before[2] == FREE.sync_bytes  # exactly at the limit is allowed
    assert_quota_error(sync.push("laptop", [make_op("c", 1)]), "sync_bytes")
    assert stored_state(sync.user) == before
    # Replacing a value by a smaller one fits again.
    assert sync.push("laptop", [make_op("k00", "small", counter=1)]).status_code == 200


def test_key_count_limit(sync):
    for start in range(0, FREE.keys, 100):
        assert sync.push("laptop", [make_op(f"k{i}", i) for i in range(start, start + 100)]).status_code == 200
    before = stored_state(sync.user)
    assert before[3] == FREE.keys
    assert_quota_error(sync.push("laptop", [make_op("one-more", 9)]), "keys")
    assert stored_state(sync.user) == before
    # Replacing an existing key's value does not add a key.
    assert sync.push("laptop", [make_op("k0", 100, counter=5)]).status_code == 200


def test_value_size_limit_of_each_tier(sync):
    for tier, limit in (("free", FREE.value_bytes), ("pro", PRO.value_bytes)):
        if tier == "pro":
            grant_pro(sync.user)
        key = f"big-{tier}"
        assert sync.push("laptop", [filler(key, limit)]).status_code == 200
        before = stored_state(sync.user)
        assert_quota_error(sync.push("laptop", [filler(key, limit + 1)]), "value_bytes")
        assert stored_state(sync.user) == before
    assert sync.client.get("/api/sync/quota").json()["value_bytes_limit"] == PRO.value_bytes


def test_device_limit(sync):
    assert FREE.devices == 3
    for device in ("one", "two", "three"):
        assert sync.push(device, [make_op(f"from-{device}", 1)]).status_code == 200
    before = stored_state(sync.user)
    assert_quota_error(sync.push("four", [make_op("from-four", 1)]), "devices")
    assert stored_state(sync.user) == before
    assert Device.objects.filter(user=sync.user).count() == 3
    register = sync.client.post("/api/sync/devices", {"device_id": "four", "name": "Phone"}, format="json")
    assert_quota_error(register, "devices")
    # A known device keeps syncing; deleting one makes room.
    assert sync.push("two", [make_op("again", 1)]).status_code == 200
    assert sync.client.delete("/api/sync/devices/one").status_code == 204
    assert sync.push("four", [make_op("from-four", 1)]).status_code == 200


def test_snapshot_limit_refuses_manual_snapshots_and_rotates_automatic_ones(sync):
    assert FREE.snapshots == 3
    sync.push("laptop", [make_op("a", 1)])
    for label in ("one", "two", "three"):
        assert sync.client.post("/api/sync/snapshots", {"label": label}, format="json").status_code == 201
    assert_quota_error(sync.client.post("/api/sync/snapshots", {"label": "four"}, format="json"), "snapshots")
    assert Snapshot.objects.filter(user=sync.user).count() == 3
    # Automatic snapshots never block a write: the newest one is kept, older ones rotate out.
    for version in (1, 2):
        put = sync.client.put(
            "/api/sync/settings", {"settings": {"a": version + 1}}, format="json", HTTP_IF_MATCH=f'"v{version}"'
        )
        assert put.status_code == 200
    autos = Snapshot.objects.filter(user=sync.user, reason=Snapshot.AUTO)
    assert [s.version for s in autos] == [2]


def test_manual_snapshot_makes_room_by_rotating_out_the_oldest_automatic_one(sync):
    sync.push("laptop", [make_op("a", 1)])
    assert sync.client.post("/api/sync/snapshots", {"label": "first"}, format="json").status_code == 201
    sync.client.put("/api/sync/settings", {"settings": {"a": 2}}, format="json", HTTP_IF_MATCH='"v1"')
    sync.client.put("/api/sync/settings", {"settings": {"a": 3}}, format="json", HTTP_IF_MATCH='"v2"')
    assert Snapshot.objects.filter(user=sync.user, reason=Snapshot.AUTO).count() == 2
    assert sync.client.post("/api/sync/snapshots", {"label": "mine"}, format="json").status_code == 201
    assert sorted(Snapshot.objects.filter(user=sync.user).values_list("reason", "version")) == [
        ("auto", 2),
        ("manual", 1),
        ("manual", 3),
    ]


def test_after_a_downgrade_sets_are_refused_deletes_work_and_nothing_is_deleted(sync):
    grant_pro(sync.user)
    # 4 devices (the free tier allows 3) store 20 values of 16 KB: 320 KB, over the free tier's 256 KB.
    for device in ("d1", "d2", "d3", "d4"):
        ops = [filler(f"{device}/{i}", FREE.value_bytes) for i in range(5)]
        assert sync.push(device, ops).status_code == 200
    revoke_comp_tier(user_id=sync.user.id, revoked_by=None)
    before = stored_state(sync.user)
    assert before[2] == 20 * FREE.value_bytes > FREE.sync_bytes
    quota = sync.client.get("/api/sync/quota").json()
    assert quota["tier"] == "free" and quota["over_quota"] is True and quota["bytes_limit"] == FREE.sync_bytes
    assert_quota_error(sync.push("d1", [make_op("new", 1)]), "sync_bytes")
    assert_quota_error(sync.push("d1", [make_op("d1/0", "small", counter=1)]), "sync_bytes")
    assert stored_state(sync.user) == before
    # The fourth device (over the free limit of three) still deletes; nothing was removed by the server.
    assert sync.push("d4", [make_op("d4/0", None, op="delete", counter=1)]).status_code == 200
    assert Device.objects.filter(user=sync.user).count() == 4
    assert stored_state(sync.user)[3] == 19
    # Deleting below the limit lets sets in again.
    deleted = sync.push("d1", [make_op(f"d1/{i}", None, op="delete", counter=1) for i in range(5)])
    assert deleted.status_code == 200 and stored_state(sync.user)[2] == 14 * FREE.value_bytes
    assert sync.client.get("/api/sync/quota").json()["over_quota"] is False
    assert sync.push("d1", [make_op("new", 1)]).status_code == 200


def test_quota_endpoint_reports_usage_against_limits(sync):
    grant_pro(sync.user)
    sync.push("laptop", [make_op("ab", [1, 2])])
    DeviceFactory(user=sync.user)
    assert sync.client.get("/api/sync/quota").json() == {
        "tier": "pro",
        "bytes_used": 2 + 5,
        "bytes_limit": 5 * 1024 * 1024,
        "keys_used": 1,
        "keys_limit": 10_000,
        "value_bytes_limit": 64 * 1024,
        "devices_used": 2,
        "devices_limit": 10,
        "snapshots_used": 0,
        "snapshots_limit": 30,
        "history_days": 90,
        "over_quota": False,
    }
