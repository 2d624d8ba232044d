import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from accounts.services import update_preferences
from analytics.models import Event
from analytics.tests.factories import EventDefinitionFactory, make_event
from chatfocus.metrics import ANALYTICS_EVENTS

URL = "/api/analytics/events"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def post(client, events):
    return client.post(URL, {"events": events}, format="json")


@pytest.mark.django_db
def test_opted_out_user_gets_everything_dropped_and_nothing_written(auth_client, user):
    response = post(auth_client(user), [make_event() for _ in range(5)])
    assert response.status_code == 202
    assert response.json() == {"accepted": 0, "duplicates": 0, "dropped": 5, "rejected": []}
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_user_who_opted_out_again_leaves_no_trace(auth_client, opted_in_user):
    update_preferences(user=opted_in_user, analytics_opt_in=False)
    response = post(auth_client(opted_in_user), [make_event()])
    assert response.json()["dropped"] == 1
    assert Event.objects.count() == 0


@pytest.mark.smoke
@pytest.mark.django_db
def test_valid_batch_is_stored_with_tier_and_client(auth_client, opted_in_user):
    events = [make_event(), make_event(name="popup_open_ms", value=123.5, props={"surface": "popup"})]
    response = post(auth_client(opted_in_user), events)
    assert response.status_code == 202
    assert response.json() == {"accepted": 2, "duplicates": 0, "dropped": 0, "rejected": []}
    stored = {str(event.event_id): event for event in Event.objects.all()}
    metric = stored[events[1]["id"]]
    assert metric.value == 123.5
    assert metric.user_id == opted_in_user.id
    assert metric.tier == "free"
    assert (metric.client_version, metric.client_browser, metric.client_os) == ("1.4.2", "chrome", "mac")
    assert stored[events[0]["id"]].props == {"surface": "popup"}


@pytest.mark.smoke
@pytest.mark.django_db
def test_mixed_batch_reports_per_index_and_stores_valid_ones_once(auth_client, opted_in_user):
    client = auth_client(opted_in_user)
    already_sent = make_event()
    assert post(client, [already_sent]).json()["accepted"] == 1
    now = datetime.now(UTC)
    batch = [
        make_event(),
        already_sent,
        make_event(name="not_registered"),
        make_event(props={"surface": "popup", "email": "a@example.com"}),
        make_event(ts=rfc3339(now + timedelta(minutes=6))),
        make_event(ts=rfc3339(now + timedelta(minutes=4))),
    ]
    response = post(client, batch)
    assert response.status_code == 202
    assert response.json() == {
        "accepted": 2,
        "duplicates": 1,
        "dropped": 0,
        "rejected": [
            {"index": 2, "code": "unknown_name"},
            {"index": 3, "code": "unknown_prop"},
            {"index": 4, "code": "ts_in_future"},
        ],
    }
    assert Event.objects.count() == 3
    assert Event.objects.filter(event_id=already_sent["id"]).count() == 1


@pytest.mark.django_db
def test_resending_the_same_batch_counts_duplicates(auth_client, opted_in_user):
    client = auth_client(opted_in_user)
    batch = [make_event() for _ in range(3)]
    post(client, batch)
    assert post(client, batch).json() == {"accepted": 0, "duplicates": 3, "dropped": 0, "rejected": []}
    assert Event.objects.count() == 3


@pytest.mark.django_db
def test_same_id_twice_in_one_batch_is_stored_once(auth_client, opted_in_user):
    event = make_event()
    response = post(auth_client(opted_in_user), [event, dict(event)])
    assert response.json() == {"accepted": 1, "duplicates": 1, "dropped": 0, "rejected": []}
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_same_event_id_from_two_users_is_stored_for_each(auth_client, opted_in_user):
    other = type(opted_in_user).objects.create_user(email="other@example.com", password="x" * 12)
    update_preferences(user=other, analytics_opt_in=True)
    event = make_event()
    assert post(auth_client(opted_in_user), [event]).json()["accepted"] == 1
    assert post(auth_client(other), [event]).json()["accepted"] == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"id": "not-a-uuid"}, "invalid_id"),
        ({"id": 12}, "invalid_id"),
        ({"name": 5}, "unknown_name"),
        ({"ts": "2026-01-31 12:00:00"}, "invalid_ts"),
        ({"ts": "2026-01-31T12:00:00"}, "invalid_ts"),
        ({"ts": "2026-02-30T12:00:00Z"}, "invalid_ts"),
        ({"ts": 1767225600}, "invalid_ts"),
        ({"ts": rfc3339(datetime.now(UTC) - timedelta(days=7, minutes=1))}, "ts_too_old"),
        ({"props": ["surface"]}, "invalid_props"),
        ({"props": {"surface": "x" * 257}}, "invalid_props"),
        ({"props": {"surface": {"nested": True}}}, "invalid_props"),
        ({"props": {"surface": ["a"]}}, "invalid_props"),
        ({"props": {"surface": "nul\u0000byte"}}, "invalid_props"),
        ({"value": "fast"}, "invalid_value"),
        ({"value": -1}, "invalid_value"),
        ({"value": True}, "invalid_value"),
        ({"client": None}, "invalid_client"),
        ({"client": {"browser": "chrome"}}, "invalid_client"),
        ({"client": {"version": "1.0 beta"}}, "invalid_client"),
        ({"client": {"version": "1.0", "os": "o" * 33}}, "invalid_client"),
    ],
)
def test_invalid_event_is_rejected_by_code(auth_client, opted_in_user, overrides, code):
    response = post(auth_client(opted_in_user), [make_event(), make_event(**overrides)])
    assert response.status_code == 202
    assert response.json()["rejected"] == [{"index": 1, "code": code}]
    assert response.json()["accepted"] == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"props": {"surface": "lone \ud800 surrogate"}}, "invalid_props"),
        ({"client": {"version": "1.0", "browser": "\udc00"}}, "invalid_client"),
        ({"ts": "9999-12-31T23:59:59-23:59"}, "invalid_ts"),
    ],
)
def test_event_postgres_or_python_cannot_hold_is_rejected_not_a_500(auth_client, opted_in_user, overrides, code):
    # Found while hardening with the API fuzzer: each of these failed the whole batch with a 500.
    # json.dumps escapes as ASCII, so the lone surrogates reach the server as JSON allows them.
    body = json.dumps({"events": [make_event(), make_event(**overrides)]})
    response = auth_client(opted_in_user).post(URL, body, content_type="application/json")
    assert response.status_code == 202, response.content
    assert response.json()["rejected"] == [{"index": 1, "code": code}]
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_a_number_beyond_a_double_fails_the_batch_as_malformed_json(auth_client, opted_in_user):
    # DESIGN.md section 2: the one parser refuses it before any event is looked at.
    body = json.dumps({"events": [make_event(), make_event(name="sync_roundtrip_ms", props={}, value=10**400)]})
    response = auth_client(opted_in_user).post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_event_that_is_not_an_object_is_rejected(auth_client, opted_in_user):
    response = post(auth_client(opted_in_user), ["extension_opened", make_event()])
    assert response.json()["rejected"] == [{"index": 0, "code": "invalid_event"}]


@pytest.mark.django_db
def test_metric_needs_a_value(auth_client, opted_in_user):
    response = post(auth_client(opted_in_user), [make_event(name="sync_roundtrip_ms", props={})])
    assert response.json()["rejected"] == [{"index": 0, "code": "invalid_value"}]


@pytest.mark.django_db
def test_props_limits_are_twenty_keys_of_256_characters(auth_client, opted_in_user):
    EventDefinitionFactory(name="wide_event", allowed_props=[f"p{i}" for i in range(21)])
    twenty = {f"p{i}": "x" * 256 for i in range(20)}
    twenty_one = {f"p{i}": 1 for i in range(21)}
    response = post(
        auth_client(opted_in_user),
        [make_event(name="wide_event", props=twenty), make_event(name="wide_event", props=twenty_one)],
    )
    assert response.json()["accepted"] == 1
    assert response.json()["rejected"] == [{"index": 1, "code": "invalid_props"}]


@pytest.mark.django_db
def test_inactive_name_is_unknown(auth_client, opted_in_user):
    from analytics.services import forget_event_registry

    EventDefinitionFactory(name="retired_event", active=False)
    forget_event_registry()
    response = post(auth_client(opted_in_user), [make_event(name="retired_event", props={})])
    assert response.json()["rejected"] == [{"index": 0, "code": "unknown_name"}]


@pytest.mark.django_db
def test_ts_boundaries_and_offsets(auth_client, opted_in_user):
    now = datetime.now(UTC)
    response = post(
        auth_client(opted_in_user),
        [
            make_event(ts=rfc3339(now - timedelta(days=6, hours=23))),
            make_event(ts=(now + timedelta(hours=2)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.123456789+02:00")),
        ],
    )
    assert response.json()["accepted"] == 2


@pytest.mark.smoke
@pytest.mark.django_db
def test_batch_of_101_events_is_400_and_nothing_stored(auth_client, opted_in_user):
    response = post(auth_client(opted_in_user), [make_event(props={}) for _ in range(101)])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "events" in response.json()["error"]["fields"]
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_batch_of_100_events_is_accepted(auth_client, opted_in_user):
    response = post(auth_client(opted_in_user), [make_event(props={}) for _ in range(100)])
    assert response.json()["accepted"] == 100


@pytest.mark.django_db
def test_body_over_64_kb_is_413_and_nothing_stored(auth_client, opted_in_user):
    events = [make_event(props={"surface": "x" * 250}) for _ in range(100)]
    body = json.dumps({"events": events + [make_event(props={"surface": "y" * 256}) for _ in range(150)]})
    assert len(body) > 64 * 1024
    response = auth_client(opted_in_user).post(URL, body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_body_just_under_64_kb_is_accepted(auth_client, opted_in_user):
    events = [make_event(props={"surface": "x" * 256}) for _ in range(100)]
    body = json.dumps({"events": events})
    assert len(body) < 64 * 1024
    response = auth_client(opted_in_user).post(URL, body, content_type="application/json")
    assert response.status_code == 202


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", "malformed_json"),
        ('{"events": [NaN]}', "malformed_json"),
        ('{"events": "extension_opened"}', "validation_error"),
        ('{"events": []}', "validation_error"),
        ("[]", "validation_error"),
        ("{}", "validation_error"),
    ],
)
def test_malformed_bodies_are_400_and_nothing_stored(auth_client, opted_in_user, body, code):
    response = auth_client(opted_in_user).post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_non_json_content_type_is_415(auth_client, opted_in_user):
    response = auth_client(opted_in_user).post(URL, "events=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_anonymous_is_refused_and_nothing_stored(api_client):
    response = post(api_client, [make_event()])
    # 401 once JWT authentication is installed (it sends WWW-Authenticate); DRF answers 403 without one.
    assert (response.status_code, response.json()["error"]["code"]) in {
        (401, "not_authenticated"),
        (403, "permission_denied"),
    }
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_counters_count_outcomes(auth_client, opted_in_user):
    def value(outcome):
        return ANALYTICS_EVENTS.labels(outcome=outcome)._value.get()

    before = {outcome: value(outcome) for outcome in ("accepted", "duplicate", "rejected")}
    event = make_event()
    post(auth_client(opted_in_user), [event, event, make_event(name="nope")])
    assert value("accepted") - before["accepted"] == 1
    assert value("duplicate") - before["duplicate"] == 1
    assert value("rejected") - before["rejected"] == 1


@pytest.mark.django_db
def test_event_ids_are_normalised(auth_client, opted_in_user):
    event_id = uuid.uuid4()
    response = post(auth_client(opted_in_user), [make_event(id=str(event_id).upper()), make_event(id=str(event_id))])
    assert response.json() == {"accepted": 1, "duplicates": 1, "dropped": 0, "rejected": []}


@pytest.mark.django_db(transaction=True)
def test_same_batch_sent_concurrently_is_stored_once(opted_in_user):
    import threading

    from django.db import connection
    from rest_framework.test import APIClient

    batch = [make_event() for _ in range(50)]
    barrier = threading.Barrier(4)
    results = []

    def send():
        client = APIClient()
        client.force_authenticate(user=opted_in_user)
        barrier.wait()
        results.append(post(client, batch).json())
        connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(result["accepted"] for result in results) == 50
    assert sum(result["duplicates"] for result in results) == 150
    assert Event.objects.count() == 50
