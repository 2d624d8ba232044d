from unittest import mock

import pytest
from django.db import OperationalError, connections

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]


def test_healthz_answers_while_process_is_up(api_client):
    response = api_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_database_and_redis(api_client, settings):
    response = api_client.get("/readyz")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["database"] is True
    assert checks.get("redis", True) is True
    assert ("redis" in checks) == bool(settings.REDIS_URL)


def test_readyz_is_503_in_error_shape_when_database_unreachable(api_client):
    with mock.patch.object(connections["default"], "cursor", side_effect=OperationalError("down")):
        response = api_client.get("/readyz")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert error["details"]["checks"]["database"] is False
    assert int(response["Retry-After"]) > 0


def test_readyz_is_503_when_redis_unreachable(api_client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    with mock.patch("chatfocus.api.check_redis", return_value=False):
        response = api_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["details"]["checks"]["redis"] is False
