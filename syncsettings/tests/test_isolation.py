"""A user never sees or touches another user's sync data (issue test 13); other ids answer 404."""

import pytest

from syncsettings.tests.conftest import SyncClient
from syncsettings.tests.factories import make_op

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_and_bob(auth_client):
    alice, bob = SyncClient(auth_client()), SyncClient(auth_client())
    alice.push("alice-laptop", [make_op("secret.token", "alice-only"), make_op("theme", "dark")])
    snapshot = alice.client.post("/api/sync/snapshots", {"label": "alice"}, format="json").json()
    alice.push("alice-laptop", [make_op("theme", "light", counter=1)])
    return alice, bob, snapshot


def test_every_read_endpoint_shows_bob_only_his_own_data(alice_and_bob):
    alice, bob, _ = alice_and_bob
    assert bob.pull(since=0).json()["changes"] == []
    assert bob.settings().json()["settings"] == {}
    assert bob.client.get("/api/sync/devices").json()["results"] == []
    assert bob.client.get("/api/sync/snapshots").json()["results"] == []
    assert bob.client.get("/api/sync/history").json()["results"] == []
    assert bob.client.get("/api/sync/history", {"key": "theme"}).json()["results"] == []
    quota = bob.client.get("/api/sync/quota").json()
    assert (quota["keys_used"], quota["devices_used"], quota["snapshots_used"]) == (0, 0, 0)


def test_bob_cannot_restore_or_delete_alices_things(alice_and_bob):
    alice, bob, snapshot = alice_and_bob
    assert bob.client.post(f"/api/sync/snapshots/{snapshot['id']}/restore").status_code == 404
    assert bob.client.delete("/api/sync/devices/alice-laptop").status_code == 404
    assert alice.client.get("/api/sync/devices").json()["results"][0]["device_id"] == "alice-laptop"
    assert alice.document() == {"secret.token": "alice-only", "theme": "light"}


def test_same_device_and_op_ids_in_two_accounts_do_not_collide(alice_and_bob):
    alice, bob, _ = alice_and_bob
    op = make_op("theme", "bob's", op_id="shared-op")
    assert alice.push("alice-laptop", [{**op, "value": "alice's"}]).json()["results"][0]["status"] == "applied"
    assert bob.push("alice-laptop", [op]).json()["results"][0]["status"] == "applied"
    assert bob.document() == {"theme": "bob's"}
    assert alice.document()["theme"] == "alice's"
    assert (
        bob.client.put("/api/sync/settings", {"settings": {}}, format="json", HTTP_IF_MATCH='"v1"').status_code == 200
    )
    assert alice.document()["theme"] == "alice's"


def test_every_endpoint_requires_authentication(api_client):
    for method, path in [
        ("post", "/api/sync/push"),
        ("get", "/api/sync/pull"),
        ("get", "/api/sync/settings"),
        ("put", "/api/sync/settings"),
        ("get", "/api/sync/devices"),
        ("post", "/api/sync/devices"),
        ("delete", "/api/sync/devices/x"),
        ("get", "/api/sync/snapshots"),
        ("post", "/api/sync/snapshots"),
        ("post", "/api/sync/snapshots/1/restore"),
        ("get", "/api/sync/history"),
        ("get", "/api/sync/quota"),
    ]:
        response = getattr(api_client, method)(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "not_authenticated"
