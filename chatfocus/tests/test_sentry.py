"""Error reports: what reaches Sentry, read from a capturing transport (no network)."""

import json
from contextlib import contextmanager

import pytest
import sentry_sdk
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.test import RequestFactory
from sentry_sdk.transport import Transport

from accounts.models import User
from accounts.services import issue_session_tokens
from accounts.tests.factories import DEFAULT_PASSWORD
from chatfocus.sentry import init_sentry
from syncsettings import crypto
from syncsettings.tests.factories import make_op

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-brand-new-passphrase-4821"
SECRET_VALUE = "sk-live-synced-secret-value-77"


class CapturingTransport(Transport):
    def __init__(self, options=None):
        super().__init__(options)
        self.envelopes = []

    def capture_envelope(self, envelope):
        self.envelopes.append(envelope)

    def events(self) -> list[dict]:
        return [item.payload.json for envelope in self.envelopes for item in envelope.items if item.type == "event"]

    def text(self) -> str:
        return "\n".join(envelope.serialize().decode() for envelope in self.envelopes)


@pytest.fixture
def sentry_events():
    """Sentry initialised as settings.py does for a DSN, its envelopes kept in memory."""
    transport = CapturingTransport()
    init_sentry("https://public@o0.ingest.sentry.io/1", transport=transport)
    yield transport
    sentry_sdk.init()  # no DSN: the client goes inactive again for the tests that follow


def fail(*args, **kwargs):
    raise RuntimeError("forced failure")


@contextmanager
def database_kept_open():
    """Django's test client does the same: the request must not close the test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def post_through_wsgi(path: str, body: dict, **headers) -> int:
    """POST through Django's WSGIHandler, as gunicorn does, so Sentry's WSGI middleware sees URL and headers."""
    environ = RequestFactory().post(path, json.dumps(body), content_type="application/json", **headers).environ
    statuses = []
    with database_kept_open():
        response = WSGIHandler()(environ, lambda status, response_headers, exc_info=None: statuses.append(status))
        response.close()
    return int(statuses[0].split()[0])


def assert_reported_without(transport, path, *secrets):
    events = transport.events()
    assert len(events) == 1
    assert events[0]["exception"]["values"][-1]["type"] == "RuntimeError"
    assert events[0]["tags"]["request_id"] == "sentry-test-request"
    assert events[0]["request"]["url"].startswith(f"http://testserver{path}")
    assert "data" not in events[0]["request"]
    text = transport.text()
    for secret in secrets:
        assert secret not in text


def test_an_error_in_change_password_reports_no_password_or_token(sentry_events, user, monkeypatch):
    access, refresh, _ = issue_session_tokens(user=user, device_name="laptop", user_agent="pytest")
    monkeypatch.setattr(User, "set_password", fail)
    status = post_through_wsgi(
        "/api/auth/change-password?token=from-a-query",
        {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        HTTP_AUTHORIZATION=f"Bearer {access}",
        HTTP_COOKIE="sessionid=cookie-session-value",
        HTTP_X_REQUEST_ID="sentry-test-request",
    )
    assert status == 500
    assert_reported_without(
        sentry_events,
        "/api/auth/change-password",
        DEFAULT_PASSWORD,
        NEW_PASSWORD,
        access,
        refresh,
        "from-a-query",
        "cookie-session-value",
    )


def test_an_error_in_a_sync_push_reports_no_secret_value_or_token(sentry_events, user, monkeypatch):
    access, _, _ = issue_session_tokens(user=user, device_name="laptop", user_agent="pytest")
    monkeypatch.setattr(crypto, "encrypt_value", fail)
    status = post_through_wsgi(
        "/api/sync/push",
        {"device_id": "laptop", "ops": [make_op("secret.apiKey", SECRET_VALUE)]},
        HTTP_AUTHORIZATION=f"Bearer {access}",
        HTTP_X_REQUEST_ID="sentry-test-request",
    )
    assert status == 500
    assert_reported_without(sentry_events, "/api/sync/push", SECRET_VALUE, access)


def test_the_scrubber_filters_denylisted_fields_and_secret_keys_wherever_a_body_is_kept():
    from chatfocus.sentry import Scrubber

    event = {
        "request": {
            "url": "https://api.chatfocus.app/api/analytics/events?code=oauth-code&page=2",
            "query_string": "code=oauth-code&page=2",
            "headers": {"Authorization": "Bearer abc", "Cookie": "sessionid=xyz", "Accept": "application/json"},
            "data": {"nested": {"refresh": "r-token", "settings": {"secret.apiKey": "v", "theme": "dark"}}},
        },
        "extra": {"key": "email-link-key", "token": "t"},
    }
    Scrubber().scrub_event(event)
    request = event["request"]
    assert "oauth-code" not in request["url"] + request["query_string"] and "page=2" in request["query_string"]
    assert "Bearer" not in json.dumps(request["headers"], default=str) and request["headers"]["Accept"]
    assert "xyz" not in json.dumps(request["headers"], default=str)
    settings_data = request["data"]["nested"]["settings"]
    assert settings_data == {"secret.apiKey": "[Filtered]", "theme": "dark"}
    assert "r-token" not in json.dumps(request, default=str)
    assert "email-link-key" not in json.dumps(event["extra"], default=str)
