"""Edges the framework answers before or around our views keep the shared shape, with DEBUG on and off."""

import logging

import pytest
from django.test import Client

from chatfocus.logging import RequestContextFilter

pytestmark = [pytest.mark.django_db, pytest.mark.urls("chatfocus.tests.urls")]


@pytest.fixture(params=[True, False], ids=["DEBUG=1", "DEBUG=0"])
def debug(request, settings):
    settings.DEBUG = request.param
    settings.ALLOWED_HOSTS = ["testserver"]
    return request.param


def assert_error(response, status: int, code: str):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"]["code"] == code and body["error"]["request_id"] == response["X-Request-ID"]


def test_options_on_the_docs_page_is_200(debug):
    response = Client().options("/api/docs/")
    assert response.status_code == 200
    assert "GET" in response["Allow"]


def test_options_on_an_api_operation_is_200(debug):
    assert Client().options("/api/auth/login").status_code == 200


def test_a_host_not_allowed_is_400_in_the_error_shape(debug):
    response = Client().get("/api/subscriptions/plans", HTTP_HOST="evil.example")
    assert_error(response, 400, "validation_error")
    assert b"ALLOWED_HOSTS" not in response.content and b"settings" not in response.content.lower()


@pytest.mark.parametrize("path", ["/api/auth/login", "/api/sync/push", "/api/analytics/events"])
def test_head_on_a_post_only_route_is_405_without_a_body(debug, auth_client, path):
    response = auth_client().head(path)
    assert response.status_code == 405
    assert response.content == b""
    assert response["Content-Length"] == "0"


def test_head_on_a_get_route_has_no_body_but_gets_length(debug):
    get, head = Client().get("/api/subscriptions/plans"), Client().head("/api/subscriptions/plans")
    assert head.status_code == get.status_code == 200
    assert head.content == b"" and head["Content-Length"] == str(len(get.content))


def test_every_django_request_log_line_carries_the_request_id(debug, caplog):
    caplog.handler.addFilter(RequestContextFilter())
    client = Client(raise_request_exception=False)
    requests = {
        "crash": client.get("/api/test/crash", HTTP_X_REQUEST_ID="req-edge-crash"),
        "plain-crash": client.get("/api/test/plain-crash", HTTP_X_REQUEST_ID="req-edge-plain"),
        "not-found": client.get("/api/nowhere", HTTP_X_REQUEST_ID="req-edge-404"),
        "method": client.put("/api/auth/login", HTTP_X_REQUEST_ID="req-edge-405"),
    }
    assert [response.status_code for response in requests.values()] == [500, 500, 404, 405]
    lines = [record for record in caplog.records if record.name == "django.request"]
    # Django logs the 500s after the middleware has returned (and the 4xx, at the level LOGGING asks for).
    assert {"req-edge-crash", "req-edge-plain"} <= {record.request_id for record in lines}
    assert all(record.request_id in {r["X-Request-ID"] for r in requests.values()} for record in lines)
    assert {record.levelno for record in lines} >= {logging.ERROR}
