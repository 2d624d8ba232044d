"""Pull paging, tombstones and pruning, ETags on pull and on the whole document (issue tests 8, 9)."""

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from syncsettings.models import Change, Entry, SyncState
from syncsettings.tests.factories import make_op, now_ms

pytestmark = pytest.mark.django_db


def test_pull_returns_the_latest_state_per_key_in_version_order_with_paging(sync):
    sync.push("laptop", [make_op("a", 1), make_op("b", 1), make_op("c", 1)])
    sync.push("laptop", [make_op("a", 2)])
    first = sync.pull(since=0, limit=2).json()
    assert [(c["key"], c["version"]) for c in first["changes"]] == [("b", 2), ("c", 3)]
    assert first["has_more"] is True and first["version"] == 3
    second = sync.pull(since=3, limit=2).json()
    assert [(c["key"], c["value"], c["version"]) for c in second["changes"]] == [("a", 2, 4)]
    assert second["has_more"] is False and second["version"] == 4
    assert second["changes"][0]["device_id"] == "laptop" and "-" in second["changes"][0]["hlc"]


def test_pull_with_since_ahead_is_409_and_bad_params_are_400(sync):
    sync.push("laptop", [make_op("a", 1)])
    ahead = sync.pull(since=5)
    assert ahead.status_code == 409 and ahead.json()["error"]["code"] == "cursor_ahead"
    for params in ({"since": "-1"}, {"since": "abc"}, {"limit": "0"}, {"limit": "-1"}, {"limit": "abc"}):
        response = sync.pull(**params)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "validation_error"
    # Like every list's limit: larger than the maximum is clamped, not refused.
    assert sync.pull(since=0, limit=1001).status_code == 200


def test_a_new_user_pulls_nothing_at_version_zero(sync):
    body = sync.pull(since=0).json()
    assert (body["changes"], body["version"], body["has_more"]) == ([], 0, False)
    assert sync.settings().json() == {"settings": {}, "version": 0, "updated_at": None}


def test_tombstones_propagate_then_pruning_expires_old_cursors_and_a_full_get_recovers(sync):
    sync.push("laptop", [make_op("keep", 1), make_op("gone", 1)])
    _, old_cursor = sync.pull_all()
    sync.push("laptop", [make_op("gone", None, op="delete", counter=1)])
    change = sync.pull(since=old_cursor).json()["changes"]
    assert change == [{**change[0], "key": "gone", "value": None, "deleted": True, "version": 3}]
    # Age the tombstone and the log past the free tier's 7-day window, then run the periodic job.
    past = timezone.now() - timedelta(days=8)
    Entry.objects.filter(user=sync.user, deleted=True).update(updated_at=past)
    Change.objects.filter(user=sync.user).update(created_at=past)
    call_command("sync_prune")
    assert not Entry.objects.filter(user=sync.user, deleted=True).exists()
    assert not Change.objects.filter(user=sync.user).exists()
    assert SyncState.objects.get(user=sync.user).pruned_version == 3
    expired = sync.pull(since=old_cursor)
    assert expired.status_code == 410 and expired.json()["error"]["code"] == "cursor_expired"
    # The client starts over: the full document, then pulls from its version.
    full = sync.settings().json()
    assert full["settings"] == {"keep": 1} and full["version"] == 3
    sync.push("desktop", [make_op("new", 2), make_op("keep", None, op="delete")])
    document, version = sync.pull_all(since=full["version"], into=full["settings"])
    assert document == {"new": 2} and version == 5


def test_recent_history_is_kept_by_pruning(sync, set_tier):
    set_tier("pro")
    t = now_ms()
    sync.push("laptop", [make_op("a", 1, at=t), make_op("a", None, op="delete", at=t, counter=1)])
    Entry.objects.filter(user=sync.user).update(updated_at=timezone.now() - timedelta(days=30))
    call_command("sync_prune")
    assert Entry.objects.filter(user=sync.user, deleted=True).exists()
    assert SyncState.objects.get(user=sync.user).pruned_version == 0


def test_pull_etag_gives_304_when_nothing_changed(sync):
    sync.push("laptop", [make_op("a", 1)])
    response = sync.pull(since=0)
    assert response["ETag"] == '"v1"'
    unchanged = sync.pull(since=1, etag='"v1"')
    assert unchanged.status_code == 304 and unchanged["ETag"] == '"v1"' and unchanged.content == b""
    sync.push("laptop", [make_op("b", 1)])
    changed = sync.pull(since=1, etag='"v1"')
    assert changed.status_code == 200 and [c["key"] for c in changed.json()["changes"]] == ["b"]
    assert changed["ETag"] == '"v2"'


def test_settings_etag_304_and_put_preconditions(sync):
    sync.push("laptop", [make_op("a", 1), make_op("b", 2)])
    response = sync.settings()
    assert response["ETag"] == '"v2"'
    assert sync.settings(HTTP_IF_NONE_MATCH='"v2"').status_code == 304
    assert sync.settings(HTTP_IF_NONE_MATCH='"v1"').status_code == 200

    def put(document, **headers):
        return sync.client.put("/api/sync/settings", {"settings": document}, format="json", **headers)

    missing = put({"a": 5})
    assert missing.status_code == 428 and missing.json()["error"]["code"] == "precondition_required"
    stale = put({"a": 5}, HTTP_IF_MATCH='"v1"')
    assert stale.status_code == 412 and stale.json()["error"]["code"] == "precondition_failed"
    assert sync.document() == {"a": 1, "b": 2}
    fresh = put({"a": 5, "c": {"x": 1}}, HTTP_IF_MATCH='"v2"')
    assert fresh.status_code == 200
    assert fresh.json()["settings"] == {"a": 5, "c": {"x": 1}}
    assert fresh["ETag"] == '"v5"'  # a set, a delete (b) and a set (c)
    changes = sync.pull(since=2).json()["changes"]
    assert {(c["key"], c["deleted"], c["device_id"]) for c in changes} == {
        ("a", False, "server"),
        ("b", True, "server"),
        ("c", False, "server"),
    }
    # The old document was snapshotted first.
    snapshots = sync.client.get("/api/sync/snapshots").json()["results"]
    assert [(s["reason"], s["version"]) for s in snapshots] == [("auto", 2)]


@pytest.mark.parametrize(
    "body", [{"settings": []}, {"settings": {"bad key": 1}}, {}, {"settings": {"a": json.loads("[" * 40 + "]" * 40)}}]
)
def test_put_settings_rejects_bad_documents(sync, body):
    response = sync.client.put("/api/sync/settings", body, format="json", HTTP_IF_MATCH='"v0"')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert not SyncState.objects.filter(user=sync.user).exists()


def test_put_settings_with_a_value_postgres_cannot_store_is_400_not_a_500(sync):
    # Found by the API fuzzer: jsonb refuses U+0000, so this was a 500.
    body = json.dumps({"settings": {"a": "nul\u0000byte"}})
    response = sync.client.generic(
        "PUT", "/api/sync/settings", body, content_type="application/json", HTTP_IF_MATCH='"v0"'
    )
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == ["settings.a"]
    assert not SyncState.objects.filter(user=sync.user).exists()


def test_put_settings_with_a_malformed_if_match_is_400(sync):
    response = sync.client.put("/api/sync/settings", {"settings": {}}, format="json", HTTP_IF_MATCH="v1")
    assert response.status_code == 400


def test_server_writes_beat_device_clocks_running_ahead(sync):
    sync.push("laptop", [make_op("theme", "dark", at=now_ms() + 4 * 60_000)])
    put = sync.client.put("/api/sync/settings", {"settings": {"theme": "light"}}, format="json", HTTP_IF_MATCH='"v1"')
    assert put.status_code == 200
    assert sync.document() == {"theme": "light"}


def test_put_settings_over_1_mb_is_413_and_changes_nothing(sync):
    document = {f"k{i}": "x" * 1000 for i in range(1100)}
    response = sync.client.put("/api/sync/settings", {"settings": document}, format="json", HTTP_IF_MATCH='"v0"')
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not SyncState.objects.filter(user=sync.user).exists()
