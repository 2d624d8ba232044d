"""Push semantics: conflicts by HLC, clock drift, limits and malformed bodies, incr, a realistic document."""

import json

import pytest

from chatfocus.metrics import SYNC_OPS, SYNC_PUSHES
from syncsettings.models import Change, Entry
from syncsettings.tests.conftest import SyncClient
from syncsettings.tests.factories import make_op, now_ms, stored_state

pytestmark = pytest.mark.django_db


def statuses(response):
    return [result["status"] for result in response.json()["results"]]


def test_offline_device_pushing_old_edits_is_superseded_where_others_moved_on(sync):
    t = now_ms() - 60_000
    sync.push("desktop", [make_op("theme", "dark", at=t + 5000), make_op("lang", "de", at=t + 5000)])
    # The laptop edited offline earlier (older HLCs), plus one key nobody else touched.
    offline = sync.push(
        "laptop",
        [make_op("theme", "light", at=t), make_op("lang", "fr", at=t + 1), make_op("fontSize", 14, at=t + 2)],
    )
    assert statuses(offline) == ["superseded", "superseded", "applied"]
    assert [r["version"] for r in offline.json()["results"]] == [None, None, 3]
    assert sync.document() == {"theme": "dark", "lang": "de", "fontSize": 14}
    # Nothing lost: the superseded edits are in the log and the history.
    assert Change.objects.filter(user=sync.user, status="superseded").count() == 2
    history = sync.client.get("/api/sync/history", {"key": "theme"}).json()["results"]
    assert [(h["value"], h["status"], h["device_id"]) for h in history] == [
        ("light", "superseded", "laptop"),
        ("dark", "applied", "desktop"),
    ]


def test_equal_hlc_on_two_devices_is_decided_by_device_id(sync):
    t = now_ms() - 1000
    first = sync.push("device-b", [make_op("x", "from b", at=t)])
    second = sync.push("device-a", [make_op("x", "from a", at=t)])
    assert statuses(first) == ["applied"] and statuses(second) == ["superseded"]
    # The other order on another key: still device-b ("device-b" > "device-a").
    sync.push("device-a", [make_op("y", "from a", at=t)])
    later = sync.push("device-b", [make_op("y", "from b", at=t)])
    assert statuses(later) == ["applied"]
    assert sync.document() == {"x": "from b", "y": "from b"}


def test_a_retried_push_is_duplicate_and_bumps_no_version(sync):
    ops = [make_op("a", 1), make_op("b", 2, op="set")]
    first = sync.push("laptop", ops).json()
    again = sync.push("laptop", ops).json()
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert [r["version"] for r in again["results"]] == [r["version"] for r in first["results"]] == [1, 2]
    assert again["version"] == 2
    assert Change.objects.filter(user=sync.user).count() == 2


def test_hlc_six_minutes_ahead_is_clock_drift_and_nothing_is_applied(sync):
    sync.push("laptop", [make_op("a", 1)])
    before = stored_state(sync.user)
    response = sync.push("laptop", [make_op("b", 2), make_op("c", 3, at=now_ms() + 6 * 60_000)])
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "clock_drift"
    assert abs(error["details"]["server_time"] - now_ms()) < 5000
    assert stored_state(sync.user) == before
    # Every sync answer carries the server clock, in the body and as a header.
    ok = sync.push("laptop", [make_op("b", 2, at=now_ms() + 4 * 60_000)])
    assert ok.status_code == 200 and abs(ok.json()["server_time"] - now_ms()) < 5000
    assert abs(int(response["X-Server-Time"]) - now_ms()) < 5000
    assert "server_time" in sync.pull(since=0).json()


def test_more_than_100_ops_is_400_and_nothing_applied(sync):
    response = sync.push("laptop", [make_op(f"k{i}", i) for i in range(101)])
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["ops"] == ["At most 100 ops per push."]
    assert stored_state(sync.user) is None


def test_body_over_256_kb_is_413_before_it_is_read(sync):
    big = "x" * (257 * 1024)
    response = sync.push("laptop", [make_op("big", big)])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert stored_state(sync.user) is None


@pytest.mark.parametrize(
    "body, field",
    [
        ({"device_id": "laptop", "ops": "nope"}, "ops"),
        ({"device_id": 7, "ops": [make_op("a", 1)]}, "device_id"),
        ({"device_id": "server", "ops": [make_op("a", 1)]}, "device_id"),
        ({"device_id": "laptop", "ops": [make_op("bad key!", 1)]}, "ops.0.key"),
        ({"device_id": "laptop", "ops": [make_op("k" * 129, 1)]}, "ops.0.key"),
        ({"device_id": "laptop", "ops": [{**make_op("a", 1), "op": "append"}]}, "ops.0.op"),
        ({"device_id": "laptop", "ops": [{**make_op("a", 1), "hlc": "yesterday"}]}, "ops.0.hlc"),
        ({"device_id": "laptop", "ops": [{**make_op("a", 1), "hlc": 123}]}, "ops.0.hlc"),
        ({"device_id": "laptop", "ops": [{"op_id": "x", "key": "a", "op": "set", "hlc": "1-0"}]}, "ops.0.value"),
        ({"device_id": "laptop", "ops": [make_op("a", "1", op="incr")]}, "ops.0.value"),
        ({"device_id": "laptop", "ops": [make_op("a", True, op="incr")]}, "ops.0.value"),
        ({"device_id": "laptop", "ops": [make_op("a", 1, op_id="same"), make_op("b", 1, op_id="same")]}, "ops.1.op_id"),
        ({"device_id": "laptop", "ops": [make_op("a", 1), 5]}, "ops.1"),
        ({"device_id": "laptop", "ops": [make_op("a", json.loads("[" * 40 + "]" * 40))]}, "ops.0.value"),
        ([1, 2], "non_field_errors"),
    ],
)
def test_malformed_push_is_400_in_the_error_shape_and_changes_nothing(sync, body, field):
    sync.push("laptop", [make_op("a", 0)])
    before = stored_state(sync.user)
    response = sync.client.post("/api/sync/push", body, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["fields"]
    assert error["request_id"]
    assert stored_state(sync.user) == before


@pytest.mark.parametrize(
    "raw, code",
    [
        (b"{not json", "malformed_json"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed_json"),
        (
            b'{"device_id": "laptop", "ops": [{"op_id": "a", "key": "a", "op": "incr", "value": NaN, "hlc": "1-0"}]}',
            "malformed_json",
        ),
    ],
)
def test_non_json_and_absurdly_nested_bodies_are_400(sync, raw, code):
    response = sync.client.generic("POST", "/api/sync/push", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert stored_state(sync.user) is None


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("nul\u0000byte", id="nul-in-string"),
        pytest.param({"nul\u0000key": 1}, id="nul-in-object-key"),
        pytest.param(["lone \ud800 surrogate"], id="lone-surrogate"),
    ],
)
def test_value_postgres_cannot_store_is_400_not_a_500(sync, value):
    # Found by the API fuzzer: jsonb refuses U+0000 and UTF-8 cannot encode a lone surrogate, so these were a 500.
    # json.dumps escapes as ASCII, so the value reaches the server as JSON allows it.
    sync.push("laptop", [make_op("a", 0)])
    before = stored_state(sync.user)
    body = json.dumps({"device_id": "laptop", "ops": [make_op("b", value)]})
    response = sync.client.generic("POST", "/api/sync/push", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == ["ops.0.value"]
    assert stored_state(sync.user) == before


def test_incr_on_a_string_is_400_and_nothing_in_the_push_applies(sync):
    sync.push("laptop", [make_op("name", "alice")])
    before = stored_state(sync.user)
    response = sync.push("laptop", [make_op("other", 1), make_op("name", 1, op="incr")])
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"ops.1.value": ["incr needs a number stored at this key."]}
    assert stored_state(sync.user) == before


def test_set_after_increments_resets_the_counter_and_incr_continues_from_it(sync):
    t = now_ms() - 10_000
    sync.push("laptop", [make_op("count", 5, op="incr", at=t), make_op("count", 2.5, op="incr", at=t + 1)])
    assert sync.document() == {"count": 7.5}
    sync.push("desktop", [make_op("count", 0, at=t + 2)])
    assert sync.document() == {"count": 0}
    sync.push("laptop", [make_op("count", 3, op="incr", at=t + 3)])
    assert sync.document() == {"count": 3}


def test_incr_is_never_superseded_and_raises_the_key_hlc(sync):
    t = now_ms() - 10_000
    sync.push("desktop", [make_op("count", 10, at=t + 100)])
    late = sync.push("laptop", [make_op("count", 1, op="incr", at=t)])
    assert statuses(late) == ["applied"]
    entry = Entry.objects.get(user=sync.user, key="count")
    assert (entry.value, entry.hlc_ms) == (11, t + 100)
    # A set older than the stored HLC now loses.
    assert statuses(sync.push("phone", [make_op("count", 0, at=t + 50)])) == ["superseded"]


def test_realistic_extension_document_edited_offline_on_two_devices_converges(sync, auth_client):
    """Two devices (own sessions, distinct device ids) interleave their pushes and pulls; both converge."""
    laptop, desktop = sync, SyncClient(auth_client(sync.user))
    t = now_ms() - 120_000
    initial = [
        make_op("focusedContacts/alice", True, at=t),
        make_op("focusedContacts/bob", True, at=t),
        make_op("filterSettings", {"ignoreForwarded": False, "includeUserMentions": True}, at=t),
        make_op("usageStats/filtersUsed", 3, op="incr", at=t),
    ]
    assert laptop.push("laptop", initial).status_code == 200
    laptop_view, laptop_cursor = laptop.pull_all()
    desktop_view, desktop_cursor = desktop.pull_all()
    # Offline on both: each adds a contact, both change filterSettings, both count usage, one removes bob.
    laptop_ops = [
        make_op("focusedContacts/carol", True, at=t + 1000),
        make_op("filterSettings", {"ignoreForwarded": True, "includeUserMentions": True}, at=t + 1000),
        make_op("usageStats/filtersUsed", 4, op="incr", at=t + 1000),
        make_op("focusedContacts/bob", None, op="delete", at=t + 1500),
    ]
    desktop_ops = [
        make_op("focusedContacts/dave", True, at=t + 2000),
        make_op("filterSettings", {"ignoreForwarded": False, "includeUserMentions": False}, at=t + 2000),
        make_op("usageStats/filtersUsed", 2, op="incr", at=t + 2000),
        make_op("usageStats/popupOpened", 1, op="incr", at=t + 2000),
    ]
    # Interleaved: desktop, laptop, desktop pulls, desktop, laptop pulls, laptop.
    assert statuses(desktop.push("desktop", desktop_ops[:2])) == ["applied", "applied"]
    # The laptop's older filterSettings loses to the desktop's, already stored.
    assert statuses(laptop.push("laptop", laptop_ops[:2])) == ["applied", "superseded"]
    desktop_view, desktop_cursor = desktop.pull_all(since=desktop_cursor, into=desktop_view)
    assert desktop_view["focusedContacts/carol"] is True
    assert statuses(desktop.push("desktop", desktop_ops[2:])) == ["applied", "applied"]
    laptop_view, laptop_cursor = laptop.pull_all(since=laptop_cursor, into=laptop_view)
    assert statuses(laptop.push("laptop", laptop_ops[2:])) == ["applied", "applied"]
    expected = {
        "focusedContacts/alice": True,
        "focusedContacts/carol": True,
        "focusedContacts/dave": True,
        "filterSettings": {"ignoreForwarded": False, "includeUserMentions": False},
        "usageStats/filtersUsed": 9,
        "usageStats/popupOpened": 1,
    }
    assert sync.document() == expected
    # Each device folds the pull since its own cursor into its own view: both end the same.
    laptop_view, laptop_cursor = laptop.pull_all(since=laptop_cursor, into=laptop_view)
    desktop_view, desktop_cursor = desktop.pull_all(since=desktop_cursor, into=desktop_view)
    assert laptop_view == desktop_view == expected
    assert laptop_cursor == desktop_cursor == sync.settings().json()["version"]
    writers = Entry.objects.filter(user=sync.user, deleted=False).values_list("key", "device_id")
    assert dict(writers)["focusedContacts/carol"] == "laptop" and dict(writers)["filterSettings"] == "desktop"


def test_push_counts_pushes_and_ops(sync):
    def value(counter, **labels):
        return counter.labels(**labels)._value.get()

    pushes, applied, superseded = (
        value(SYNC_PUSHES, outcome="ok"),
        value(SYNC_OPS, status="applied"),
        value(SYNC_OPS, status="superseded"),
    )
    t = now_ms()
    sync.push("laptop", [make_op("a", 1, at=t), make_op("b", 1, at=t)])
    sync.push("phone", [make_op("a", 0, at=t - 10)])
    assert value(SYNC_PUSHES, outcome="ok") == pushes + 2
    assert value(SYNC_OPS, status="applied") == applied + 2
    assert value(SYNC_OPS, status="superseded") == superseded + 1
