import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from pythonjsonlogger.json import JsonFormatter

from analytics.tests.factories import make_event
from chatfocus.logging import RequestContextFilter

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "metrics-token-for-tests"


def run_python(code: str, **env_overrides) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatfocus.settings", "ALLOWED_HOSTS": "testserver"}
    env.pop("SENTRY_DSN", None)
    env.update(env_overrides)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.django_db
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Token {TOKEN}", TOKEN])
def test_metrics_without_the_token_is_401(client, settings, header):
    settings.METRICS_TOKEN = TOKEN
    response = client.get("/metrics", **({"HTTP_AUTHORIZATION": header} if header else {}))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_metrics_are_closed_when_no_token_is_configured(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


@pytest.mark.django_db
def test_metrics_with_the_token_show_business_counters_after_a_request(client, settings, auth_client, opted_in_user):
    settings.METRICS_TOKEN = TOKEN
    auth_client(opted_in_user).post("/api/analytics/events", {"events": [make_event()]}, format="json")
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    assert 'chatfocus_analytics_events_total{outcome="accepted"}' in body
    for counter in ("signups", "logins", "sync_pushes", "sync_ops", "webhook_events"):
        assert f"# TYPE chatfocus_{counter}_total counter" in body
    # Request latency by view, from django-prometheus' middleware.
    assert (
        'django_http_requests_latency_seconds_by_view_method_bucket{le="0.01",method="POST",view="analytics-events"}'
        in body
    )


def test_metrics_add_up_across_worker_processes(tmp_path):
    """Two processes count into the multiprocess directory; a third serves the sum, as gunicorn workers do."""
    count = (
        "import django; django.setup()\n"
        "from chatfocus.metrics import ANALYTICS_EVENTS, SIGNUPS\n"
        "ANALYTICS_EVENTS.labels(outcome='accepted').inc({n})\n"
        "SIGNUPS.labels(method='email').inc()\n"
    )
    serve = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        f"response = Client().get('/metrics', HTTP_AUTHORIZATION='Bearer {TOKEN}')\n"
        "print(response.status_code)\n"
        "print(response.content.decode())\n"
    )
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"), "METRICS_TOKEN": TOKEN}
    run_python(count.format(n=3), **env)
    run_python(count.format(n=4), **env)
    output = run_python(serve, **env).stdout
    assert output.startswith("200")
    assert 'chatfocus_analytics_events_total{outcome="accepted"} 7.0' in output
    assert 'chatfocus_signups_total{method="email"} 2.0' in output
    assert list((tmp_path / "prometheus").glob("counter_*.db"))


def test_sentry_is_initialised_from_the_dsn():
    report = (
        "import json, django; django.setup()\n"
        "import sentry_sdk\n"
        "client = sentry_sdk.get_client()\n"
        "print(json.dumps({'active': client.is_active(), 'dsn': client.options['dsn'],"
        " 'pii': client.options['send_default_pii'], 'release': client.options['release'],"
        " 'integrations': sorted(client.integrations)}))\n"
    )
    dsn = "https://public@o0.ingest.sentry.io/1"
    options = json.loads(run_python(report, SENTRY_DSN=dsn, SENTRY_RELEASE="chatfocus@1.2.3").stdout)
    assert options["active"] is True
    assert options["dsn"] == dsn
    assert options["pii"] is False
    assert options["release"] == "chatfocus@1.2.3"
    assert {"django", "celery"} <= set(options["integrations"])
    without = json.loads(run_python(report.replace("'dsn': client.options['dsn'],", "")).stdout)
    assert without["active"] is False


@pytest.mark.django_db
def test_each_request_logs_one_json_line_with_its_context(auth_client, opted_in_user):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestContextFilter())
    json_format = django_settings.LOGGING["formatters"]["json"]
    handler.setFormatter(JsonFormatter(json_format["fmt"], rename_fields=json_format["rename_fields"]))
    request_logger = logging.getLogger("chatfocus.request")
    request_logger.addHandler(handler)
    previous_level = request_logger.level
    request_logger.setLevel(logging.INFO)
    try:
        response = auth_client(opted_in_user).post(
            "/api/analytics/events", {"events": [make_event()]}, format="json", HTTP_X_REQUEST_ID="req-123"
        )
    finally:
        request_logger.removeHandler(handler)
        request_logger.setLevel(previous_level)
    assert response.status_code == 202
    line = json.loads(stream.getvalue().strip())
    assert line["message"] == "request"
    assert line["request_id"] == "req-123"
    assert line["user_id"] == str(opted_in_user.id)
    assert line["path"] == "/api/analytics/events"
    assert line["method"] == "POST"
    assert line["status"] == 202
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "INFO" and "ts" in line
