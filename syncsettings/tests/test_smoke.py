import pytest

from syncsettings.tests.factories import make_op


@pytest.mark.smoke
@pytest.mark.django_db
def test_push_then_pull_round_trip(sync):
    response = sync.push("laptop", [make_op("a", 1), make_op("b", {"x": [1, 2]})])
    assert response.status_code == 200, response.json()
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["applied", "applied"]
    assert body["version"] == 2
    pulled = sync.pull(since=0).json()
    assert [c["key"] for c in pulled["changes"]] == ["a", "b"]
    assert sync.document() == {"a": 1, "b": {"x": [1, 2]}}


@pytest.mark.smoke
@pytest.mark.django_db
def test_conflicts_deletes_devices_snapshots_and_restore_work_on_any_database(sync):
    sync.push("laptop", [make_op("a", 1, at=1000), make_op("gone", 1, at=1000)])
    late = sync.push("phone", [make_op("a", 0, at=999), make_op("gone", None, op="delete", at=1001)]).json()
    assert [r["status"] for r in late["results"]] == ["superseded", "applied"]
    assert sync.pull(since=2).json()["changes"][0]["deleted"] is True
    snapshot = sync.client.post("/api/sync/snapshots", {"label": "x"}, format="json").json()
    sync.push("laptop", [make_op("a", 5, op="incr", at=1002)])
    assert sync.document() == {"a": 6}
    assert sync.client.post(f"/api/sync/snapshots/{snapshot['id']}/restore").status_code == 200
    assert sync.document() == {"a": 1}
    registered = sync.client.post("/api/sync/devices", {"device_id": "tablet", "name": "Tab"}, format="json")
    assert registered.status_code == 201
    assert len(sync.client.get("/api/sync/devices").json()["results"]) == 3
