"""API fuzzing: every operation of the served OpenAPI schema, with generated inputs, as a real user.

Schemathesis reads /api/schema/ from the WSGI app and generates valid and invalid requests for each operation
(its coverage phase, then MAX_EXAMPLES fuzzed ones). Each response must not be a 5xx, must match the declared
status codes, content types and schemas, and every error must have the shared shape; data that breaks the schema
must be refused (negative data), and an operation that needs a token must refuse a request without one.

The stateful phase follows the schema's links (and the links schemathesis infers) from created objects, such as
devices, snapshots and sessions, to the operations that act on them, so the fuzzer reaches objects that exist.
Generation is derandomized with a fixed seed, so CI sends the same requests every run. For a deeper local run:
`FUZZ_MAX_EXAMPLES=200 FUZZ_STATEFUL_EXAMPLES=100 pytest chatfocus/tests/test_fuzz.py` (about 6 minutes).
"""

import importlib
import os
import re

import hypothesis
import pytest
import schemathesis
from django.apps import apps
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import negated_parameters
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
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
# Stateful scenarios (each a chain of linked calls, at most STATEFUL_STEPS long).
STATEFUL_EXAMPLES = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", 15))
STATEFUL_STEPS = 8

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20260901,
        "suppress-health-check": ["all"],
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        # A missing If-Match is 428 precondition_required (DESIGN.md section 5), a refusal like the others.
        "checks": {"missing_required_header": {"expected-statuses": [400, 401, 403, 406, 415, 422, 428]}},
    }
)

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), config=CONFIG)


def authenticate(case, token: str) -> None:
    """Send the user's token, marked as given (not generated), so the missing-auth check takes it away and
    expects a 401 rather than blaming the server for accepting a made-up credential."""
    # A negative case may leave the token out on purpose: it then expects the 401.
    if needs_token(case.operation) and ("Authorization", ParameterLocation.HEADER) not in negated_parameters(case.meta):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        case._has_explicit_auth = True  # what schemathesis' own auth providers set (no public setter)


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
    negative_data_rejection,
    missing_required_header,
    ignored_auth,
]


# Events are judged one by one (DESIGN.md section 6): an event that breaks the schema is a rejection listed in
# a 202, not a 400 for the batch, so schema-violating events are accepted by design.
PER_ITEM_REJECTION = {"POST /api/analytics/events"}


def checks_for(operation) -> list:
    if operation.label in PER_ITEM_REJECTION:
        return [check for check in CHECKS if check is not negative_data_rejection]
    return CHECKS


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
        authenticate(case, operation_tokens["shared"])
    case.call_and_validate(checks=checks_for(case.operation))


# Operations that end the scenario's session or account; the stateless phase covers them with a user of their own.
ENDS_THE_SESSION = ["auth_logout", "auth_change_password", "users_me_delete", "auth_sessions_revoke"]


class LinkedWorkflow(schema.exclude(operation_id=ENDS_THE_SESSION).as_state_machine()):
    """One user per scenario; every step sends its token and is checked like a stateless case."""

    def setup(self):
        user = UserFactory()
        update_preferences(user=user, analytics_opt_in=True)
        self.token, _refresh, _session = issue_session_tokens(user=user, device_name="fuzz", method="google")

    def before_call(self, case):
        authenticate(case, self.token)

    def validate_response(self, response, case, additional_checks=None, **kwargs):
        case.validate_response(response, checks=checks_for(case.operation), transport_kwargs=kwargs or None)


def test_linked_operations_survive_stateful_fuzzing(_wsgi_in_test_transaction, _event_registry, stripe_fake):
    LinkedWorkflow.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
