"""CORS: only the configured extension origins may call the API, and never with cookies."""

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]

EXTENSION = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"
FIREFOX_EXTENSION = "moz-extension://1b2c3d4e-0000-4000-8000-000000000000"


@pytest.fixture(autouse=True)
def _origins(settings):
    settings.CORS_ALLOWED_ORIGINS = [EXTENSION, FIREFOX_EXTENSION]


def preflight(client, origin):
    return client.options(
        "/api/schema/",
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )


def test_configured_extension_origin_is_allowed(client):
    response = preflight(client, EXTENSION)
    assert response["Access-Control-Allow-Origin"] == EXTENSION
    assert "authorization" in response["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in response


def test_configured_firefox_extension_origin_is_allowed(client):
    assert preflight(client, FIREFOX_EXTENSION)["Access-Control-Allow-Origin"] == FIREFOX_EXTENSION


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.com",
        "chrome-extension://zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",  # another extension
        "moz-extension://00000000-0000-4000-8000-000000000000",
        "null",  # sandboxed iframes and file:// pages
        EXTENSION + ".evil.example.com",
    ],
)
def test_unknown_origin_gets_no_cors_headers(client, origin):
    assert "Access-Control-Allow-Origin" not in preflight(client, origin)
    assert "Access-Control-Allow-Origin" not in client.get("/api/subscriptions/plans", HTTP_ORIGIN=origin)


def test_actual_request_from_an_extension_may_read_the_response_and_its_headers(client):
    response = client.get("/api/subscriptions/plans", HTTP_ORIGIN=FIREFOX_EXTENSION)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == FIREFOX_EXTENSION
    assert "X-Request-ID" in response["Access-Control-Expose-Headers"]


def test_cors_applies_only_to_the_api(client):
    response = client.get("/", HTTP_ORIGIN=EXTENSION)
    assert "Access-Control-Allow-Origin" not in response
