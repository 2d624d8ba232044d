"""Worker and beat as the Procfile runs them, against this test run's Redis and PostgreSQL (not eager).

Beat queues its heartbeat, a worker runs it; a web request's task runs on the worker under the
request's id; both processes log JSON lines that carry the request id and the task name.
"""

import importlib
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.sessions.models import Session as DjangoSession
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import UserFactory
from chatfocus.celery import app as celery_app
from chatfocus.tests.test_deploy import procfile
from chatfocus.tests.test_project import ROOT

WAIT_SECONDS = 120  # an upper bound on a busy CI host, never a timing assertion


def json_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass  # a line still being written
    return lines


def wait_for(description, find, processes):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        for name, (process, log) in processes.items():
            assert process.poll() is None, f"{name} exited:\n{log.read_text()[-3000:]}"
        found = find()
        if found:
            return found
        time.sleep(0.2)
    logs = "\n".join(f"--- {name}\n{log.read_text()[-3000:]}" for name, (_, log) in processes.items())
    raise AssertionError(f"Not seen within {WAIT_SECONDS} s: {description}\n{logs}")


def start(name: str, env: dict, tmp_path: Path):
    argv = shlex.split(procfile()[name])
    argv[0] = str(Path(sys.executable).parent / argv[0])  # the virtualenv's celery
    log = tmp_path / f"{name}.log"
    output = log.open("w")
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    output.close()
    return process, log


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # warm shutdown: the worker finishes what it runs
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def celery_processes(tmp_path):
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "BEAT_HEARTBEAT_SECONDS": "1",
        "CELERY_BEAT_SCHEDULE_FILENAME": str(tmp_path / "beat-schedule"),
        "LOG_LEVEL": "INFO",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # Left over by an interrupted run: tasks no worker of this run should pick up.
    celery_app.control.purge()
    processes = {"worker": start("worker", env, tmp_path), "beat": start("beat", env, tmp_path)}
    try:
        yield processes
    finally:
        for process, _ in processes.values():
            stop(process)


@pytest.mark.django_db(transaction=True)
def test_beat_schedules_the_worker_runs_and_both_log_json_with_request_id_and_task(
    celery_processes, monkeypatch, tmp_path
):
    worker_log, beat_log = celery_processes["worker"][1], celery_processes["beat"][1]
    heartbeat = "chatfocus.tasks.beat_heartbeat_task"

    def heartbeat_ran():
        queued = {
            line["request_id"]: line
            for line in json_lines(beat_log)
            if line.get("message") == "task queued" and line.get("task") == heartbeat
        }
        ran = [
            line
            for line in json_lines(worker_log)
            if line.get("task") == heartbeat and "succeeded" in line.get("message", "")
        ]
        return [(queued[line["request_id"]], line) for line in ran if line.get("request_id") in queued]

    (beat_line, worker_line), *_ = wait_for("beat's heartbeat run by the worker", heartbeat_ran, celery_processes)
    assert beat_line["logger"] == "chatfocus.tasks" and beat_line["task_id"]
    assert worker_line["logger"] == "celery.app.trace" and worker_line["level"] == "INFO"
    assert worker_line["data"]["id"] == beat_line["task_id"]
    assert "args" not in worker_line["data"]  # task arguments stay out of the logs
    # Beat keeps its state where it was told (the image's code directory is not writable), never in the code.
    assert list(tmp_path.glob("beat-schedule*")) and not list(ROOT.glob("celerybeat-schedule*"))

    # A web request queues an email through the broker; the worker sends it under the request's id.
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    user = UserFactory()
    request_id = "ops-test-forgot-password-1"
    response = Client().post(
        "/api/auth/forgot-password",
        {"email": user.email},
        content_type="application/json",
        HTTP_X_REQUEST_ID=request_id,
    )
    assert response.status_code == 202

    def email_task_lines():
        return [
            line
            for line in json_lines(worker_log)
            if line.get("request_id") == request_id and line.get("task") == "chatfocus.tasks.send_email_task"
        ]

    lines = wait_for(
        "the email task's success logged with the request id",
        lambda: [line for line in email_task_lines() if "succeeded" in line.get("message", "")],
        celery_processes,
    )
    assert lines[0]["data"]["name"] == "chatfocus.tasks.send_email_task"
    assert user.email in worker_log.read_text()  # the console backend printed the mail in the worker

    # A cleanup task on the worker deletes a row of this run's PostgreSQL database.
    expired = DjangoSession.objects.create(
        session_key="ops-test-expired", session_data="x", expire_date=timezone.now() - timedelta(days=1)
    )
    from chatfocus.tasks import clear_expired_sessions_task

    clear_expired_sessions_task.delay()
    wait_for(
        "the worker's clearsessions deleting the expired row",
        lambda: not DjangoSession.objects.filter(pk=expired.pk).exists(),
        celery_processes,
    )


def registered_tasks() -> dict:
    """The tasks a worker registers at start: every installed app's tasks module (Celery's autodiscovery)."""
    for app_config in apps.get_app_configs():
        if importlib.util.find_spec(f"{app_config.name}.tasks"):
            importlib.import_module(f"{app_config.name}.tasks")
    return celery_app.tasks


def test_every_task_has_soft_and_hard_time_limits():
    registered_tasks()
    ours = [task for name, task in celery_app.tasks.items() if not name.startswith("celery.")]
    assert len(ours) >= 10
    for task in ours:
        soft = task.soft_time_limit or celery_app.conf.task_soft_time_limit
        hard = task.time_limit or celery_app.conf.task_time_limit
        assert soft and hard and soft < hard, task.name
    reconcile = celery_app.tasks["billing.tasks.reconcile_accounts_task"]
    assert reconcile.soft_time_limit == 30 * 60 < reconcile.time_limit


def test_beat_keeps_its_state_outside_the_code_directory():
    assert not Path(celery_app.conf.beat_schedule_filename).resolve().is_relative_to(ROOT)
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {
        "chatfocus.tasks.beat_heartbeat_task",
        "chatfocus.tasks.flush_expired_tokens_task",
        "chatfocus.tasks.clear_expired_sessions_task",
        "chatfocus.tasks.prune_ended_api_sessions_task",
        "chatfocus.tasks.prune_webhook_payloads_task",
    } <= schedule
    assert schedule <= set(registered_tasks())
