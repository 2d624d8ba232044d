"""CORS: only the configured extension origins may call the API, and never with cookies."""

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]

EXTENSION = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"


@pytest.fixture(autouse=True)
def _origins(settings):
    settings.CORS_ALLOWED_ORIGINS = [EXTENSION, "moz-extension://1b2c3d4e-0000-4000-8000-000000000000"]


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


def test_unknown_origin_gets_no_cors_headers(client):
    response = preflight(client, "https://evil.example.com")
    assert "Access-Control-Allow-Origin" not in response


def test_cors_applies_only_to_the_api(client):
    response = client.get("/", HTTP_ORIGIN=EXTENSION)
    assert "Access-Control-Allow-Origin" not in response
