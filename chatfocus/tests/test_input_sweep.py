"""Hostile bodies against every operation of the served schema that takes one (DESIGN.md section 2).

Each kind of bad input is a 4xx in the error shape, never a 5xx, and stores nothing (row counts of every
table of our apps before and after). The operations come from /api/schema/ itself: an operation added
without a body in BODIES below fails its tests, so a new endpoint cannot skip the sweep.
"""

import json
import uuid

import pytest
from django.apps import apps
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from accounts.services import update_preferences
from billing.tests.stripe_fake import sign
from chatfocus.parsers import MAX_DEPTH

WEBHOOK = "POST /api/subscriptions/webhook"
# Each event of a batch is accepted or rejected on its own (DESIGN.md section 6): a bad event is a rejection
# in a 202, a bad envelope a 400.
EVENTS = "POST /api/analytics/events"
WEBHOOK_SECRET = "whsec_input_sweep"

# A body of the right shape per operation: each case spoils one part of it.
BODIES = {
    "POST /api/analytics/events": {
        "events": [
            {
                "id": str(uuid.UUID(int=1)),
                "name": "filter_used",
                "ts": "2026-01-31T12:00:00Z",
                "props": {"surface": "popup"},
                "client": {"version": "1.4.2"},
            }
        ]
    },
    "POST /api/auth/change-password": {"current_password": "old password", "new_password": "a new passphrase"},
    "POST /api/auth/forgot-password": {"email": "sweep@example.com"},
    "POST /api/auth/login": {"email": "sweep@example.com", "password": "a passphrase", "device_name": "sweep"},
    "POST /api/auth/logout": {"refresh": "not-a-token"},
    "POST /api/auth/oauth/token": {"code": "a-code", "device_name": "sweep"},
    "POST /api/auth/refresh": {"refresh": "not-a-token"},
    "POST /api/auth/register": {"email": "sweep@example.com", "password": "a passphrase", "name": "Sweep"},
    "POST /api/auth/reset-password": {"token": "1-abc", "password": "a passphrase"},
    "POST /api/auth/verify-email": {"key": "a-key"},
    "POST /api/subscriptions": {"tier": "pro", "interval": "month"},
    "PUT /api/subscriptions": {"tier": "pro", "interval": "year"},
    WEBHOOK: {"id": "evt_sweep", "object": "event", "type": "customer.updated", "created": 1, "data": {"object": {}}},
    "POST /api/sync/devices": {"device_id": "sweep", "name": "Sweep", "browser": "chrome", "platform": "mac"},
    "POST /api/sync/push": {
        "device_id": "sweep",
        "ops": [{"op_id": "op-1", "key": "k", "op": "set", "value": {"a": ["text"]}, "hlc": "1700000000000-0"}],
    },
    "PUT /api/sync/settings": {"settings": {"k": {"a": ["text"]}}},
    "POST /api/sync/snapshots": {"label": "sweep"},
    "PUT /api/users/me": {"name": "Sweep", "email": "sweep@example.com", "locale": "en", "timezone": "UTC"},
    "PATCH /api/users/me": {"name": "Sweep", "locale": "en"},
    "DELETE /api/users/me": {"password": "a passphrase"},
    "PUT /api/users/me/settings": {
        "analytics_opt_in": True,
        "product_emails": True,
        "marketing_emails": False,
        "locale": "en",
        "timezone": "UTC",
    },
    "PATCH /api/users/me/settings": {"analytics_opt_in": True},
}

# The wrong JSON type for each declared type: no coercion, so each is refused.
WRONG_TYPE = {"string": 12345, "integer": "12", "number": "1.5", "boolean": "true", "array": {"a": 1}, "object": ["a"]}
NON_FINITE = ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1" + "0" * 400]
DEEP = "[" * 10_000 + "]" * 10_000


def _schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


SCHEMA = _schema()


def _resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = SCHEMA["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _operations_with_a_body() -> dict[str, dict]:
    found = {}
    for path, item in SCHEMA["paths"].items():
        for method, operation in item.items():
            if method in {"post", "put", "patch", "delete"} and "requestBody" in operation:
                found[f"{method.upper()} {path}"] = operation
    return found


OPERATIONS = _operations_with_a_body()


def _properties(operation: dict) -> dict:
    body = _resolve(operation["requestBody"]["content"]["application/json"]["schema"])
    return {name: _resolve(prop) for name, prop in body.get("properties", {}).items()}


def _row_counts() -> dict[str, int]:
    labels = ("accounts", "billing", "syncsettings", "analytics", "token_blacklist", "account", "socialaccount")
    return {
        model._meta.label: model.objects.count()
        for label in labels
        for model in apps.get_app_config(label).get_models()
    }


@pytest.fixture(params=sorted(OPERATIONS))
def operation(request):
    label = request.param
    assert label in BODIES, f"{label} takes a body but is not swept: add it to BODIES."
    return label


@pytest.fixture
def send(operation, auth_client, settings):
    """Send raw bytes to the operation as its client would (signed for the webhook, authenticated elsewhere)."""
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    method, path = operation.split(" ", 1)
    client = auth_client() if {"jwtAuth": []} in OPERATIONS[operation].get("security", []) else APIClient()
    if operation == EVENTS:
        update_preferences(user=client.user, analytics_opt_in=True)  # so events are judged, not dropped

    def send_to(label: str, payload: bytes):
        headers = {"HTTP_STRIPE_SIGNATURE": sign(payload, WEBHOOK_SECRET)} if label == WEBHOOK else {}
        if label == "PUT /api/sync/settings":
            headers["HTTP_IF_MATCH"] = '"v0"'
        return client.generic(method, path, payload, content_type="application/json", **headers)

    return send_to


def assert_refused(response, *, code: str | None = None) -> dict:
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"]["message"], str), body
    assert body["error"]["request_id"] == response["X-Request-ID"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def body_with(label: str, raw_value: str) -> bytes:
    """The operation's body with its first property's value replaced by this JSON text, in an object and a list."""
    body = BODIES[label]
    first = next(iter(body))
    rest = json.dumps({key: value for key, value in body.items() if key != first})[1:]
    separator = ", " if rest != "}" else ""
    return f'{{"{first}": {{"inside": [{raw_value}]}}{separator}{rest}'.encode()


def test_every_operation_with_a_body_is_swept():
    assert set(OPERATIONS) == set(BODIES), "Add the operation's body to BODIES (and remove stale ones)."


def test_deep_nesting_is_malformed_json_and_stores_nothing(operation, send):
    before = _row_counts()
    assert_refused(send(operation, DEEP.encode()), code="malformed_json")
    assert_refused(send(operation, body_with(operation, DEEP)), code="malformed_json")
    just_over = "[" * MAX_DEPTH + "]" * MAX_DEPTH  # 64 levels here, 67 in the body's object and list
    assert_refused(send(operation, body_with(operation, just_over)), code="malformed_json")
    assert _row_counts() == before


@pytest.mark.parametrize("number", NON_FINITE)
def test_non_finite_number_is_malformed_json_and_stores_nothing(operation, send, number):
    before = _row_counts()
    assert_refused(send(operation, body_with(operation, number)), code="malformed_json")
    assert _row_counts() == before


def test_invalid_utf8_is_malformed_json_and_stores_nothing(operation, send):
    before = _row_counts()
    payload = body_with(operation, '"valid"').replace(b'"valid"', b'"\xff\xfe\xc3"')
    # Stripe's library verifies the signature over the body as text: bytes that are not UTF-8 fail it first.
    assert_refused(send(operation, payload), code="signature_invalid" if operation == WEBHOOK else "malformed_json")
    assert _row_counts() == before


def string_leaves(value, path=()):
    """Paths to every string in a JSON value (object values and list items, not keys)."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from string_leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_leaves(item, (*path, index))


def replaced(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


@pytest.mark.parametrize(
    "text", [r'"\u0000"', r'"\ud800"', r'"x\udfffy"'], ids=["nul", "high-surrogate", "low-surrogate"]
)
def test_text_no_database_can_store_is_refused_in_every_string_and_stores_nothing(operation, send, text):
    before = _row_counts()
    for path in string_leaves(BODIES[operation]):
        body = json.dumps(replaced(BODIES[operation], path, "PLACEHOLDER")).replace('"PLACEHOLDER"', text)
        response = send(operation, body.encode())
        if operation == EVENTS and response.status_code == 202:
            assert response.json()["accepted"] == 0 and response.json()["rejected"][0]["index"] == 0, path
        else:
            assert_refused(response)
    assert _row_counts() == before


def test_wrong_type_in_any_field_is_refused_naming_the_field(operation, send):
    properties = {
        name: prop for name, prop in _properties(OPERATIONS[operation]).items() if prop.get("type") in WRONG_TYPE
    }
    assert properties or operation == WEBHOOK, "No typed properties: declare the request body's fields."
    if operation == WEBHOOK:
        properties = {"id": {"type": "string"}, "type": {"type": "string"}, "data": {"type": "object"}}
    before = _row_counts()
    for name, prop in properties.items():
        body = {**BODIES[operation], name: WRONG_TYPE[prop["type"]]}
        error = assert_refused(send(operation, json.dumps(body).encode()), code="validation_error")
        if operation != WEBHOOK:  # Stripe gets one answer for any envelope it did not send
            assert any(field == name or field.startswith(f"{name}.") for field in error.get("fields", {})), (
                name,
                error,
            )
    assert _row_counts() == before
