"""The shipped alert rules and dashboard, checked with Debian's real Prometheus against a live server.

`make test` installs Debian's `prometheus` package (scripts/ensure-test-services.sh). Prometheus scrapes
the live test server's /metrics with the bearer token every second, evaluates alerts.yml every second,
and answers every dashboard query and alert expression through its HTTP API.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest
import requests
import yaml

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from chatfocus import tasks
from chatfocus.tests.test_deploy import free_port
from chatfocus.tests.test_project import ROOT
from syncsettings.tests.factories import make_op

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
DASHBOARD = ROOT / "deploy/grafana/chatfocus.json"
TOKEN = "prometheus-test-token"
WAIT_SECONDS = 120  # an upper bound on a busy CI host, never a timing assertion


def dashboard_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel["targets"]]


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_alert_rules_and_the_compose_prometheus_config(tmp_path):
    result = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout
    # The compose config, with its container paths pointed at the repository's files.
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    config["rule_files"] = [str(ALERTS)]
    (token_file := tmp_path / "token").write_text(TOKEN)
    config["scrape_configs"][0]["authorization"]["credentials_file"] = str(token_file)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_covers_what_operators_watch():
    queries = " ".join(expr for _, expr in dashboard_queries())
    for metric in (
        "django_http_responses_total_by_status_view_method_total",
        "django_http_requests_latency_seconds_by_view_method_bucket",
        "chatfocus_sync_pushes_total",
        "chatfocus_sync_ops_total",
        "chatfocus_logins_total",
        "chatfocus_webhook_events_total",
        "chatfocus_analytics_events_total",
        "chatfocus_celery_tasks_total",
        "chatfocus_celery_queue_length",
    ):
        assert metric in queries
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "ChatFocusHigh5xxRatio",
        "ChatFocusSlowView",
        "ChatFocusWebhookFailures",
        "ChatFocusBeatHeartbeatStale",
        "ChatFocusNotReady",
        "ChatFocusCeleryBacklog",
    } <= names
    datasources = {
        target["datasource"]["uid"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel["targets"]
    }
    provisioned = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasources == {source["uid"] for source in provisioned["datasources"]}


class Load:
    """Requests of every kind the dashboard shows, sent until stopped; failures surface in the test."""

    def __init__(self, base_url: str, user):
        self.base_url, self.user = base_url, user
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.rounds = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            session = requests.Session()
            while not self.stop.is_set():
                self.round(session)
                self.rounds += 1
                self.stop.wait(0.2)
        except BaseException as error:  # surfaced by finish()
            self.errors.append(error)

    def post(self, session, path, body, **headers):
        return session.post(self.base_url + path, json=body, headers=headers, timeout=30)

    def round(self, session):
        n = self.rounds
        register = self.post(
            session, "/api/auth/register", {"email": f"load{n}@example.com", "password": f"load-Correct-Horse-{n}"}
        )
        assert register.status_code in (201, 400, 429), register.text
        login = self.post(session, "/api/auth/login", {"email": self.user.email, "password": DEFAULT_PASSWORD})
        assert login.status_code in (200, 429), login.text
        if login.status_code == 200:
            bearer = {"Authorization": f"Bearer {login.json()['access']}"}
            push = self.post(session, "/api/sync/push", {"device_id": "load", "ops": [make_op("k", n)]}, **bearer)
            assert push.status_code in (200, 429), push.text
            event = {"id": f"{n:08d}-0000-4000-8000-000000000000", "name": "extension_opened", "ts": now_iso()}
            events = self.post(session, "/api/analytics/events", {"events": [event]}, **bearer)
            assert events.status_code in (202, 429), events.text
        webhook = self.post(session, "/api/subscriptions/webhook", {"id": "evt_x"}, **{"Stripe-Signature": "t=1,v1=x"})
        assert webhook.status_code == 400, webhook.text
        assert session.get(self.base_url + "/api/no-such-endpoint", timeout=30).status_code == 404
        assert session.get(self.base_url + "/healthz", timeout=30).status_code == 200
        tasks.beat_heartbeat_task.apply()

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        if self.errors:
            raise self.errors[0]


def now_iso():
    from django.utils import timezone

    return timezone.now().isoformat().replace("+00:00", "Z")


@pytest.fixture
def prometheus(live_server, settings, tmp_path):
    settings.METRICS_TOKEN = TOKEN
    host, port = urllib.parse.urlsplit(live_server.url).netloc.rsplit(":", 1)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": "chatfocus",
                "metrics_path": "/metrics",
                "authorization": {"credentials": TOKEN},
                "static_configs": [{"targets": [f"{host}:{port}"]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    api_port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{api_port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    api = f"http://127.0.0.1:{api_port}"
    try:
        wait_for("Prometheus ready", lambda: ready(api), process, tmp_path)
        yield api, process, tmp_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ready(api):
    try:
        return requests.get(f"{api}/-/ready", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def wait_for(description, check, process, tmp_path):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"Not within {WAIT_SECONDS} s: {description}\n{(tmp_path / 'prometheus.log').read_text()}")


def query(api, expr) -> dict:
    return requests.get(f"{api}/api/v1/query", params={"query": expr}, timeout=30).json()


def has_numbers(answer: dict) -> bool:
    return answer["status"] == "success" and any(
        sample["value"][1] not in ("NaN", "+Inf", "-Inf") for sample in answer["data"]["result"]
    )


@pytest.mark.django_db(transaction=True)
def test_real_prometheus_evaluates_every_dashboard_query_and_alert_against_a_live_server(prometheus, live_server):
    api, process, tmp_path = prometheus
    load = Load(live_server.url, UserFactory())
    load.thread.start()
    try:
        # The scrape succeeds with the bearer token.
        def target_up():
            targets = requests.get(f"{api}/api/v1/targets", timeout=30).json()["data"]["activeTargets"]
            return targets and all(target["health"] == "up" for target in targets)

        wait_for("the live server scraped", target_up, process, tmp_path)
        queries = dashboard_queries()

        def every_query_has_data():
            return all(has_numbers(query(api, expr)) for _, expr in queries)

        wait_for("every dashboard query returning numbers", every_query_has_data, process, tmp_path)
    finally:
        load.finish()
    assert load.rounds >= 2
    for title, expr in queries:
        answer = query(api, expr)
        assert has_numbers(answer), (title, expr, answer)

    # Every alert expression evaluates without error, both as a query and as a rule Prometheus runs.
    for rule in alert_rules():
        answer = query(api, rule["expr"])
        assert answer["status"] == "success", (rule["alert"], answer)

    def every_rule_evaluated():
        groups = requests.get(f"{api}/api/v1/rules", timeout=30).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        evaluated = all(not rule["lastEvaluation"].startswith("0001") for rule in rules)
        return rules if evaluated and len(rules) == len(alert_rules()) else None

    rules = wait_for("every alert rule evaluated", every_rule_evaluated, process, tmp_path)
    assert {rule["name"]: (rule["health"], rule.get("lastError", "")) for rule in rules} == {
        rule["alert"]: ("ok", "") for rule in alert_rules()
    }
    # The live numbers behind the operational alerts: ready, a fresh heartbeat, an empty queue.
    assert query(api, "min(chatfocus_ready)")["data"]["result"][0]["value"][1] == "1"
    assert (
        float(query(api, "time() - max(chatfocus_beat_heartbeat_timestamp_seconds)")["data"]["result"][0]["value"][1])
        < 3600
    )
    firing = {
        alert["labels"]["alertname"]
        for alert in requests.get(f"{api}/api/v1/alerts", timeout=30).json()["data"]["alerts"]
    }
    assert not firing & {"ChatFocusNotReady", "ChatFocusBeatHeartbeatStale", "ChatFocusScrapeFailing"}


SENTRY_PROBE = """
import json
import os

import django

django.setup()
import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration

from chatfocus.logging import request_id_var

client = sentry_sdk.get_client()
envelopes = []
client.transport.capture_envelope = envelopes.append  # nothing leaves the machine
request_id_var.set("req-sentry-probe")
sentry_sdk.capture_message("probe")
print(json.dumps({
    "monitor_beat_tasks": client.get_integration(CeleryIntegration).monitor_beat_tasks,
    "tags": envelopes[0].get_event().get("tags", {}),
}))
"""


def test_sentry_tags_events_with_the_request_id_and_monitors_beat():
    env = {**os.environ, "SENTRY_DSN": "https://public@127.0.0.1:9/1", "DJANGO_SETTINGS_MODULE": "chatfocus.settings"}
    result = subprocess.run(
        [sys.executable, "-c", SENTRY_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["monitor_beat_tasks"] is True
    assert probe["tags"]["request_id"] == "req-sentry-probe"
