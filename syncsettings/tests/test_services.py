"""Cross-app services (export, delete), the periodic job, the admin, devices API."""

import pytest
from django.conf import settings
from django.core.cache import cache

from accounts.services import delete_account
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from syncsettings import services, tasks
from syncsettings.models import Change, Device, Entry, Snapshot, SyncState
from syncsettings.services import UserRef, delete_sync_data, export_sync_data
from syncsettings.tests.factories import DeviceFactory, make_op

pytestmark = pytest.mark.django_db


def test_export_contains_settings_devices_snapshots_and_log_with_secrets_readable(sync):
    sync.push("laptop", [make_op("secret.k", "s3cret"), make_op("theme", "dark")])
    sync.client.post("/api/sync/snapshots", {"label": "mine"}, format="json")
    exported = export_sync_data(user=UserRef(sync.user.id))
    assert exported["settings"] == {"secret.k": "s3cret", "theme": "dark"}
    assert exported["version"] == 2
    assert [d["device_id"] for d in exported["devices"]] == ["laptop"]
    assert exported["snapshots"][0]["settings"] == {"secret.k": "s3cret", "theme": "dark"}
    assert [c["value"] for c in exported["changes"]] == ["s3cret", "dark"]


def test_export_of_a_user_who_never_synced_is_empty(user):
    exported = export_sync_data(user=user)
    assert (exported["version"], exported["settings"], exported["devices"], exported["changes"]) == (0, {}, [], [])


def test_delete_sync_data_erases_everything_of_that_user_only(sync, auth_client):
    other = auth_client()
    other.post("/api/sync/push", {"device_id": "x", "ops": [make_op("a", 1)]}, format="json")
    sync.push("laptop", [make_op("a", 1)])
    sync.client.post("/api/sync/snapshots", {}, format="json")
    delete_sync_data(user=sync.user)
    for model in (SyncState, Entry, Change, Device, Snapshot):
        assert not model.objects.filter(user=sync.user).exists()
        assert model.objects.filter(user=other.user).exists() or model is Snapshot
    assert services.cached_version(user_id=sync.user.id) is None
    # Syncing again starts from scratch.
    assert sync.push("laptop", [make_op("b", 1)]).json()["version"] == 1


def test_deleting_the_account_erases_sync_data(sync):
    sync.push("laptop", [make_op("a", 1)])
    delete_account(user=sync.user, password=DEFAULT_PASSWORD)
    assert not SyncState.objects.exists() and not Entry.objects.exists() and not Change.objects.exists()


def test_prune_task_is_scheduled_and_runs(sync):
    entry = settings.CELERY_BEAT_SCHEDULE["sync-prune-history"]
    assert entry["task"] == "syncsettings.tasks.prune_sync_history_task"
    sync.push("laptop", [make_op("a", 1)])
    assert tasks.prune_sync_history_task.delay().get() == {"users": 1, "changes": 0, "tombstones": 0}


def test_devices_register_list_update_and_delete(sync):
    created = sync.client.post(
        "/api/sync/devices",
        {"device_id": "laptop", "name": "Work laptop", "browser": "chrome", "platform": "mac"},
        format="json",
    )
    assert created.status_code == 201
    assert created.json()["name"] == "Work laptop"
    renamed = sync.client.post("/api/sync/devices", {"device_id": "laptop", "name": "Old laptop"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Old laptop"
    sync.push("firefox-desktop", [make_op("a", 1)])
    listed = sync.client.get("/api/sync/devices").json()["results"]
    assert [d["device_id"] for d in listed] == ["laptop", "firefox-desktop"]
    assert sync.client.delete("/api/sync/devices/laptop").status_code == 204
    assert sync.client.delete("/api/sync/devices/laptop").status_code == 404
    assert sync.document() == {"a": 1}  # data stays
    bad = sync.client.post("/api/sync/devices", {"device_id": "has space"}, format="json")
    assert bad.status_code == 400 and "device_id" in bad.json()["error"]["fields"]


def test_a_deleted_device_registers_again_when_it_pushes(sync):
    sync.push("laptop", [make_op("a", 1)])
    sync.client.delete("/api/sync/devices/laptop")
    sync.push("laptop", [make_op("b", 1)])
    assert Device.objects.filter(user=sync.user, device_id="laptop").exists()


def test_history_pages_newest_first_and_filters_by_key(sync):
    for i in range(3):
        sync.push("laptop", [make_op("a", i, counter=i), make_op("b", i, counter=i)])
    page = sync.client.get("/api/sync/history", {"key": "a", "limit": 2}).json()
    assert [c["value"] for c in page["results"]] == [2, 1]
    rest = sync.client.get(page["next"]).json()
    assert [c["value"] for c in rest["results"]] == [0] and rest["next"] is None
    assert sync.client.get("/api/sync/history", {"key": "bad key"}).status_code == 400


def test_admin_pages_render_for_staff(client, sync):
    sync.push("laptop", [make_op("a", 1)])
    sync.client.post("/api/sync/snapshots", {}, format="json")
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    admin = f"/{settings.ADMIN_URL}syncsettings"
    for page in ("syncstate", "entry", "change", "device", "snapshot"):
        response = client.get(f"{admin}/{page}/")
        assert response.status_code == 200, page
    state = client.get(f"{admin}/syncstate/{sync.user.id}/change/")
    assert state.status_code == 200 and b"within quota" in state.content
    assert client.get(f"{admin}/change/add/").status_code == 403


def test_admin_device_delete_frees_the_cached_registration(client, sync, set_tier):
    set_tier("free", devices=1)
    sync.push("laptop", [make_op("a", 1)])
    device = Device.objects.get(user=sync.user)
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    response = client.post(f"/{settings.ADMIN_URL}syncsettings/device/{device.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert cache.get(services.DEVICES_CACHE_KEY.format(user_id=sync.user.id)) is None
    assert sync.push("phone", [make_op("b", 1)]).status_code == 200


def test_device_factory_builds_a_device():
    assert DeviceFactory().device_id.startswith("device-")
