"""Tier limits (issue test 10): each crossed → 422 and nothing applied; deletes always allowed."""

import pytest

from syncsettings.models import Device, Snapshot
from syncsettings.tests.factories import DeviceFactory, make_op, stored_state

pytestmark = pytest.mark.django_db


def assert_quota_error(response, limit):
    assert response.status_code == 422, response.json()
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded" and error["details"]["limit"] == limit


def test_storage_bytes_limit(sync, set_tier):
    set_tier("free", sync_bytes=100)
    assert sync.push("laptop", [make_op("a", "x" * 40), make_op("b", "y" * 40)]).status_code == 200
    before = stored_state(sync.user)
    assert before[2] == (1 + 42) + (1 + 42)
    over = sync.push("laptop", [make_op("c", "z"), make_op("d", "w" * 20)])
    assert_quota_error(over, "sync_bytes")
    assert stored_state(sync.user) == before


def test_key_count_limit(sync, set_tier):
    set_tier("free", keys=3)
    sync.push("laptop", [make_op(f"k{i}", i) for i in range(3)])
    before = stored_state(sync.user)
    assert_quota_error(sync.push("laptop", [make_op("k9", 9)]), "keys")
    assert stored_state(sync.user) == before
    # Replacing an existing key's value does not add a key.
    assert sync.push("laptop", [make_op("k0", 100, counter=5)]).status_code == 200


def test_value_size_limit_of_each_tier(sync, set_tier):
    for tier, limit in (("free", 16 * 1024), ("pro", 64 * 1024)):
        set_tier(tier)
        key = f"big-{tier}"
        exactly = "x" * (limit - len(key) - 2)
        assert sync.push("laptop", [make_op(key, exactly)]).status_code == 200
        before = stored_state(sync.user)
        assert_quota_error(sync.push("laptop", [make_op(key, exactly + "x", counter=1)]), "value_bytes")
        assert stored_state(sync.user) == before


def test_device_limit(sync, set_tier):
    set_tier("free")
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


def test_snapshot_limit_refuses_manual_snapshots_and_rotates_automatic_ones(sync, set_tier):
    set_tier("free", snapshots=2)
    sync.push("laptop", [make_op("a", 1)])
    for label in ("one", "two"):
        assert sync.client.post("/api/sync/snapshots", {"label": label}, format="json").status_code == 201
    assert_quota_error(sync.client.post("/api/sync/snapshots", {"label": "three"}, format="json"), "snapshots")
    assert Snapshot.objects.filter(user=sync.user).count() == 2
    # Automatic snapshots never block a write: the newest one is kept, older ones rotate out.
    for version in (1, 2):
        put = sync.client.put(
            "/api/sync/settings", {"settings": {"a": version + 1}}, format="json", HTTP_IF_MATCH=f'"v{version}"'
        )
        assert put.status_code == 200
    autos = Snapshot.objects.filter(user=sync.user, reason=Snapshot.AUTO)
    assert [s.version for s in autos] == [2]


def test_manual_snapshot_makes_room_by_rotating_out_the_oldest_automatic_one(sync, set_tier):
    set_tier("free", snapshots=2)
    sync.push("laptop", [make_op("a", 1)])
    sync.client.put("/api/sync/settings", {"settings": {"a": 2}}, format="json", HTTP_IF_MATCH='"v1"')
    sync.client.put("/api/sync/settings", {"settings": {"a": 3}}, format="json", HTTP_IF_MATCH='"v2"')
    assert Snapshot.objects.filter(user=sync.user, reason=Snapshot.AUTO).count() == 2
    assert sync.client.post("/api/sync/snapshots", {"label": "mine"}, format="json").status_code == 201
    assert sorted(Snapshot.objects.filter(user=sync.user).values_list("reason", "version")) == [
        ("auto", 2),
        ("manual", 3),
    ]


def test_after_a_downgrade_sets_are_refused_deletes_work_and_nothing_is_deleted(sync, set_tier):
    set_tier("pro")
    for device in ("d1", "d2", "d3", "d4"):
        sync.push(device, [make_op(f"{device}/{i}", "x" * 100) for i in range(5)])
    set_tier("free", keys=10, sync_bytes=1024)
    before = stored_state(sync.user)
    assert before[3] == 20
    assert_quota_error(sync.push("d1", [make_op("new", 1)]), "sync_bytes")
    assert_quota_error(sync.push("d1", [make_op("d1/0", "small", counter=1)]), "sync_bytes")
    assert stored_state(sync.user) == before
    deleted = sync.push("d1", [make_op(f"d1/{i}", None, op="delete", counter=1) for i in range(5)])
    assert deleted.status_code == 200
    assert stored_state(sync.user)[3] == 15
    quota = sync.client.get("/api/sync/quota").json()
    assert quota["over_quota"] is True and quota["keys_used"] == 15 and quota["keys_limit"] == 10
    # The fourth device (over the free limit of three) still deletes; nothing was removed by the server.
    assert sync.push("d4", [make_op("d4/0", None, op="delete", counter=1)]).status_code == 200
    assert Device.objects.filter(user=sync.user).count() == 4


def test_quota_endpoint_reports_usage_against_limits(sync, set_tier):
    set_tier("pro")
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
