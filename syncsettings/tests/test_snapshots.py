"""Snapshots and restore (issue test 12)."""

import pytest

from syncsettings.models import Snapshot
from syncsettings.tests.factories import SnapshotFactory, make_op

pytestmark = pytest.mark.django_db


def test_restore_propagates_to_another_device_and_can_be_undone(sync):
    sync.push("laptop", [make_op("theme", "dark"), make_op("focusedContacts/alice", True)])
    desktop_doc, desktop_cursor = sync.pull_all()
    good = sync.client.post("/api/sync/snapshots", {"label": "before the mess"}, format="json").json()
    assert (good["label"], good["reason"], good["version"], good["key_count"]) == ("before the mess", "manual", 2, 2)
    sync.push(
        "laptop",
        [make_op("theme", "neon", counter=1), make_op("focusedContacts/alice", None, op="delete", counter=1)],
    )
    sync.push("laptop", [make_op("junk", 1)])
    messy = sync.document()
    assert messy == {"theme": "neon", "junk": 1}

    restored = sync.client.post(f"/api/sync/snapshots/{good['id']}/restore")
    assert restored.status_code == 200
    body = restored.json()
    assert body["restored_snapshot_id"] == good["id"] and body["applied"] == 3
    assert sync.document() == {"theme": "dark", "focusedContacts/alice": True}
    # The desktop had pulled before the mess: pulling from its cursor converges on the restored state.
    desktop_doc, desktop_cursor = sync.pull_all(since=desktop_cursor, into=desktop_doc)
    assert desktop_doc == {"theme": "dark", "focusedContacts/alice": True}
    assert desktop_cursor == body["version"]

    undo = sync.client.post(f"/api/sync/snapshots/{body['undo_snapshot_id']}/restore")
    assert undo.status_code == 200
    assert sync.document() == messy
    desktop_doc, _ = sync.pull_all(since=desktop_cursor, into=desktop_doc)
    assert desktop_doc == messy


def test_restore_of_an_unknown_snapshot_is_404(sync):
    assert sync.client.post("/api/sync/snapshots/999999/restore").status_code == 404


def test_snapshot_list_is_newest_first_without_documents(sync):
    older = SnapshotFactory(user=sync.user, label="older")
    newer = SnapshotFactory(user=sync.user, label="newer", reason=Snapshot.AUTO)
    listed = sync.client.get("/api/sync/snapshots").json()["results"]
    assert [s["id"] for s in listed] == [newer.id, older.id]
    assert "document" not in listed[0]


def test_snapshot_label_is_validated(sync):
    response = sync.client.post("/api/sync/snapshots", {"label": "x" * 101}, format="json")
    assert response.status_code == 400 and "label" in response.json()["error"]["fields"]


def test_restore_of_an_out_of_range_snapshot_id_is_404(sync):
    assert sync.client.post(f"/api/sync/snapshots/{2**70}/restore").status_code == 404
