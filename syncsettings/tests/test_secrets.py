"""secret.* values are encrypted at rest everywhere and readable through the API (issue test 14)."""

import re

import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.core.management import call_command
from django.db import connection

from syncsettings.tests.factories import make_op

pytestmark = pytest.mark.django_db

PLAIN = "sk-very-secret-api-key"


def raw_rows():
    """Every stored copy of anything, as text straight from the tables."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT value::text FROM syncsettings_entry UNION ALL SELECT value::text FROM syncsettings_change "
            "UNION ALL SELECT document::text FROM syncsettings_snapshot"
        )
        return [row[0] for row in cursor.fetchall() if row[0]]


@pytest.fixture
def keys(settings):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    return settings


def test_secret_values_are_unreadable_in_the_database_and_round_trip_through_the_api(sync, keys):
    sync.push("laptop", [make_op("secret.apiKey", PLAIN), make_op("plain", "visible")])
    sync.client.post("/api/sync/snapshots", {"label": "s"}, format="json")
    rows = raw_rows()
    assert rows and not any(PLAIN in row for row in rows)
    assert any("visible" in row for row in rows)
    assert sync.document() == {"secret.apiKey": PLAIN, "plain": "visible"}
    assert sync.pull(since=0).json()["changes"][0]["value"] == PLAIN
    history = sync.client.get("/api/sync/history", {"key": "secret.apiKey"}).json()["results"]
    assert history[0]["value"] == PLAIN


def test_secret_counters_and_objects_work_too(sync, keys):
    sync.push("laptop", [make_op("secret.count", 2, op="incr"), make_op("secret.obj", {"token": PLAIN})])
    sync.push("laptop", [make_op("secret.count", 3, op="incr")])
    assert sync.document() == {"secret.count": 5, "secret.obj": {"token": PLAIN}}
    assert not any(PLAIN in row for row in raw_rows())


def test_key_rotation_keeps_secrets_readable_and_then_the_old_key_can_go(sync, keys):
    old_key = keys.FIELD_ENCRYPTION_KEYS[0]
    sync.push("laptop", [make_op("secret.apiKey", PLAIN)])
    sync.client.post("/api/sync/snapshots", {"label": "s"}, format="json")
    new_key = Fernet.generate_key().decode()
    keys.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    assert sync.document() == {"secret.apiKey": PLAIN}
    call_command("sync_rotate_keys")
    keys.FIELD_ENCRYPTION_KEYS = [new_key]
    assert sync.document() == {"secret.apiKey": PLAIN}
    assert sync.pull(since=0).json()["changes"][0]["value"] == PLAIN
    assert sync.client.get("/api/sync/history").json()["results"][0]["value"] == PLAIN
    snapshot_id = sync.client.get("/api/sync/snapshots").json()["results"][0]["id"]
    sync.push("laptop", [make_op("secret.apiKey", "changed", counter=1)])
    assert sync.client.post(f"/api/sync/snapshots/{snapshot_id}/restore").status_code == 200
    assert sync.document() == {"secret.apiKey": PLAIN}


def test_without_configured_keys_a_key_derived_from_secret_key_is_used(sync, settings):
    settings.FIELD_ENCRYPTION_KEYS = []
    sync.push("laptop", [make_op("secret.apiKey", PLAIN)])
    assert not any(PLAIN in row for row in raw_rows())
    assert sync.document() == {"secret.apiKey": PLAIN}


def test_secrets_written_before_keys_were_configured_stay_readable_and_rotate_to_the_new_key(sync, settings):
    settings.FIELD_ENCRYPTION_KEYS = []
    sync.push("laptop", [make_op("secret.apiKey", PLAIN)])
    sync.client.post("/api/sync/snapshots", {"label": "before keys"}, format="json")
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    response = sync.client.get("/api/sync/settings")
    assert response.status_code == 200
    assert response.json()["settings"] == {"secret.apiKey": PLAIN}
    assert sync.pull(since=0).json()["changes"][0]["value"] == PLAIN
    call_command("sync_rotate_keys")
    configured_only = MultiFernet([Fernet(key.encode()) for key in settings.FIELD_ENCRYPTION_KEYS])
    for row in raw_rows():
        for token in re.findall(r"gAAAAA[\w-]+=*", row):
            assert PLAIN in configured_only.decrypt(token.encode()).decode()
    assert sync.document() == {"secret.apiKey": PLAIN}
