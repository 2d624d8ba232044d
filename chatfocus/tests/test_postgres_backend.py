"""The PostgreSQL backend's health check: no round trip while a connection is idle, and still sees a dead one."""

import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.db.backends.postgresql import base as stock

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stock_checks(monkeypatch):
    """Counts the stock health checks (each a `SELECT 1` round trip) the backend falls back to."""
    calls = []
    check = stock.DatabaseWrapper.is_usable

    def counting(self):
        calls.append(self.alias)
        return check(self)

    monkeypatch.setattr(stock.DatabaseWrapper, "is_usable", counting)
    return calls


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _terminate(pid: int) -> None:
    """pg_terminate_backend from a connection of its own, then wait until the backend is gone."""
    with psycopg.connect(_dsn(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(100):
            if other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone() is None:
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} still runs")


def _dsn() -> str:
    db = settings.DATABASES["default"]
    return psycopg.conninfo.make_conninfo(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or None, password=db["PASSWORD"] or None
    )


def test_the_shipped_settings_use_the_backend_with_the_local_health_check():
    assert settings.DATABASES["default"]["ENGINE"] == "chatfocus.postgres"
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    assert connection.vendor == "postgresql"


def test_an_idle_connection_is_usable_without_a_round_trip(stock_checks):
    _backend_pid()  # connected and idle
    assert connection.is_usable()
    assert stock_checks == []


def test_a_connection_whose_backend_was_terminated_is_unusable(stock_checks):
    _terminate(_backend_pid())
    try:
        assert not connection.is_usable()
        assert stock_checks == ["default"]  # something was waiting on the socket: the stock check confirmed it
    finally:
        connection.close()  # as the health check would: the test database's flush needs a live connection


def test_a_request_after_its_backend_was_terminated_reconnects_and_succeeds(auth_client):
    client = auth_client()
    assert client.get("/api/sync/settings").status_code == 200
    old_pid = _backend_pid()
    _terminate(old_pid)
    connection.health_check_done = False  # what the start of the next request does (request_started)
    response = client.get("/api/sync/devices")
    assert response.status_code == 200
    assert _backend_pid() != old_pid


def test_a_connection_inside_a_transaction_gets_the_stock_check(stock_checks):
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        try:
            assert connection.is_usable()
        finally:
            cursor.execute("ROLLBACK")
    assert stock_checks == ["default"]
