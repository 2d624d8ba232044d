"""Every API error, from DRF or from Django, leaves in the shared shape (DESIGN.md section 2)."""

import json
import logging

import pytest
from rest_framework.test import APIClient

pytestmark = [pytest.mark.django_db, pytest.mark.smoke, pytest.mark.urls("chatfocus.tests.urls")]


def assert_error_shape(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["error"]["request_id"] == response["X-Request-ID"]
    return body["error"]


@pytest.fixture
def client():
    return APIClient(raise_request_exception=False)


def test_unknown_api_path_is_404_in_error_shape(client):
    assert_error_shape(client.get("/api/does-not-exist"), 404, "not_found")


def test_unknown_api_path_is_404_in_error_shape_with_debug_on(client, settings):
    settings.DEBUG = True
    assert_error_shape(client.post("/api/nothing/here/", {}, format="json"), 404, "not_found")


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_unsafe_method_on_unknown_api_path_is_404_not_the_csrf_page(method):
    # Found by the API fuzzer: /api/sync/snapshots/AAA/restore answered Django's HTML CSRF 403.
    client = APIClient(enforce_csrf_checks=True)
    assert_error_shape(getattr(client, method)("/api/sync/snapshots/AAA/restore"), 404, "not_found")


def test_wrong_method_is_405(client):
    error = assert_error_shape(client.delete("/api/test/echo"), 405, "method_not_allowed")
    assert "DELETE" in error["message"]


def test_malformed_json_is_400_malformed_json(client):
    response = client.post("/api/test/echo", data=b'{"a": ', content_type="application/json")
    assert_error_shape(response, 400, "malformed_json")


def test_unsupported_content_type_is_415(client):
    response = client.post("/api/test/echo", data=b"a=1", content_type="application/x-www-form-urlencoded")
    assert_error_shape(response, 415, "unsupported_media_type")


def test_body_over_global_limit_is_413_before_reading(client):
    body = json.dumps({"blob": "x" * (1024 * 1024)})
    error = assert_error_shape(
        client.post("/api/test/echo", data=body, content_type="application/json"), 413, "payload_too_large"
    )
    assert error["details"]["limit_bytes"] == 1024 * 1024


def test_body_under_limit_is_accepted(client):
    response = client.post("/api/test/echo", data={"hello": "world"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"received": {"hello": "world"}}


def test_per_endpoint_limit_is_smaller_than_global(client):
    body = json.dumps({"events": ["x" * (65 * 1024)]})
    response = client.post("/api/analytics/events", data=body, content_type="application/json")
    assert_error_shape(response, 413, "payload_too_large")


def test_chunked_body_over_limit_is_413(client):
    from io import BytesIO

    body = b"[" + b"1," * (600 * 1024) + b"1]"
    response = client.generic(
        "POST",
        "/api/test/echo",
        data=b"",
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": BytesIO(body), "CONTENT_LENGTH": ""},
    )
    assert_error_shape(response, 413, "payload_too_large")


def test_unhandled_exception_is_500_without_traceback_and_logged(client, caplog):
    with caplog.at_level(logging.ERROR, logger="chatfocus.errors"):
        response = client.get("/api/test/crash", HTTP_X_REQUEST_ID="req-crash-1")
    error = assert_error_shape(response, 500, "server_error")
    assert error["request_id"] == "req-crash-1"
    assert "boom" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    records = [r for r in caplog.records if r.name == "chatfocus.errors"]
    assert records and records[0].request_id == "req-crash-1"
    assert records[0].exc_info is not None


def test_exception_outside_drf_is_500_in_error_shape(client):
    assert_error_shape(client.get("/api/test/plain-crash"), 500, "server_error")


def test_database_outage_is_503_with_retry_after(client, monkeypatch):
    from django.db import OperationalError

    from chatfocus.tests import urls

    def down(self, request):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(urls.CrashView, "get", down)
    response = client.get("/api/test/crash")
    assert_error_shape(response, 503, "unavailable")
    assert int(response["Retry-After"]) > 0


def test_request_id_is_echoed_when_sane_and_replaced_when_not(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123").headers["X-Request-ID"] == "abc-123"
    replaced = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline").headers["X-Request-ID"]
    assert replaced != "bad id\nwith newline" and len(replaced) == 32


def test_non_api_404_is_a_friendly_html_page(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert b"Page not found" in response.content
