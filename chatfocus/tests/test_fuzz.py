"""API fuzzing: every operation of the served OpenAPI schema, with generated inputs, as a real user.

Schemathesis reads /api/schema/ from the WSGI app and generates valid and invalid requests for each operation
(its coverage phase, then MAX_EXAMPLES fuzzed ones). Each response must not be a 5xx, must match the declared
status codes, content types and schemas, and every error must have the shared shape. Generation is
derandomized with a fixed seed, so CI sends the same requests every run. For a deeper local run:
`FUZZ_MAX_EXAMPLES=200 pytest chatfocus/tests/test_fuzz.py` (about 4 minutes).
"""

import importlib
import os
import re

import pytest
import schemathesis
from django.apps import apps
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import issue_session_tokens, update_preferences
from accounts.tests.factories import UserFactory
from billing.tests.helpers import subscribe

seed_event_registry = importlib.import_module("analytics.migrations.0002_seed_event_registry").seed

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
# Fuzzing phase examples per operation; the coverage phase adds its own deterministic cases on top.
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", 15))

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20260901,
        "suppress-health-check": ["all"],
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    }
)

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), config=CONFIG)


@schemathesis.check
def error_has_the_shared_shape(ctx, response, case):
    """Every 4xx/5xx answers {"error": {"code": snake_case, "message", "request_id", "fields"?: object}}."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, f"Not the error envelope: {body!r}"
    error = body["error"]
    assert isinstance(error.get("code"), str) and SNAKE_CASE.match(error["code"]), f"Bad code: {error!r}"
    assert isinstance(error.get("message"), str), f"Bad message: {error!r}"
    assert isinstance(error.get("request_id"), str) and error["request_id"], f"Bad request_id: {error!r}"
    assert isinstance(error.get("fields", {}), dict), f"Bad fields: {error!r}"
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    error_has_the_shared_shape,
]


@pytest.fixture
def _wsgi_in_test_transaction():
    # As Django's test client does: the handler's end-of-request cleanup would close the connection that holds
    # the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# Cases of these operations end or change what their token stands for (the account is deleted, the password
# set): each gets a user of its own. The other operations share one user per operation across their cases.
FRESH_USER_PER_CASE = {"DELETE /api/users/me", "POST /api/auth/change-password"}
# Checkout needs a user without a subscription (else 409); setting a password needs none.
UNSUBSCRIBED = {"POST /api/subscriptions", "POST /api/auth/change-password"}


def new_user_token(operation, stripe_fake) -> str:
    """An access token of a new user, opted in to analytics and (most operations) subscribed to pro.

    The user has no password and has just logged in (as after OAuth), so deleting the account and setting a
    password need no secret the fuzzer cannot know; the pro subscription goes through the fake Stripe, so
    plan changes, cancel and portal have a subscription to act on.
    """
    user = UserFactory()
    user.set_unusable_password()
    user.save(update_fields=["password"])
    update_preferences(user=user, analytics_opt_in=True)
    if operation.label not in UNSUBSCRIBED:
        subscribe(stripe_fake, user, tier="pro", interval="month")
    access, _refresh, _session = issue_session_tokens(user=user, device_name="fuzz", method="google")
    return access


@pytest.fixture
def _event_registry(db):
    # Transactional tests elsewhere flush what the data migration seeded.
    seed_event_registry(apps, None)


@pytest.fixture
def operation_tokens(db):
    """The token an operation's cases share (one test per operation, so one dict per operation)."""
    return {}


def needs_token(operation) -> bool:
    return {"jwtAuth": []} in operation.definition.raw.get("security", [])


@schema.parametrize()
def test_api_operation_survives_fuzzing(
    case, _wsgi_in_test_transaction, _event_registry, operation_tokens, stripe_fake, stripe_prices
):
    if needs_token(case.operation):
        if case.operation.label in FRESH_USER_PER_CASE or "shared" not in operation_tokens:
            operation_tokens["shared"] = new_user_token(case.operation, stripe_fake)
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {operation_tokens['shared']}"}
    case.call_and_validate(checks=CHECKS)
