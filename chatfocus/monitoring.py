"""Operational metrics read when Prometheus scrapes /metrics: readiness, beat's heartbeat, Celery's backlog and tasks.

Worker and beat serve no HTTP, so nothing scrapes them: they leave their numbers in Redis (the heartbeat
through the cache, task outcomes in a hash) and every web process exports the same values. Queries take
the `max` across web instances.
"""

import time

from django.conf import settings
from django.core.cache import cache
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

HEARTBEAT_KEY = "ops:beat-heartbeat"
TASK_OUTCOMES_KEY = "cf:ops:task-outcomes"


def _redis():
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def record_heartbeat() -> float:
    """Called by beat's heartbeat task on a worker: both processes (and the broker) are alive."""
    now = time.time()
    cache.set(HEARTBEAT_KEY, now, timeout=None)
    return now


def record_task_outcome(task_name: str, outcome: str) -> None:
    """Counts a finished task by outcome (succeeded, failed, retried); without Redis there is no worker to count."""
    if not settings.REDIS_URL:
        return
    try:
        _redis().hincrby(TASK_OUTCOMES_KEY, f"{task_name} {outcome}", 1)
    except Exception:
        pass  # a metric never fails a task; the readiness gauge shows the outage


class OperationsCollector:
    def collect(self):
        from chatfocus.api import check_database, check_redis
        from chatfocus.celery import app

        ready = GaugeMetricFamily(
            "chatfocus_ready", "1 when the dependency answers (as /readyz checks it).", labels=["check"]
        )
        ready.add_metric(["database"], float(check_database()))
        redis_up = bool(settings.REDIS_URL) and check_redis()
        if settings.REDIS_URL:
            ready.add_metric(["redis"], float(redis_up))
        yield ready

        heartbeat = GaugeMetricFamily(
            "chatfocus_beat_heartbeat_timestamp_seconds",
            "Unix time of beat's last heartbeat task run by a worker (0: none seen).",
        )
        heartbeat.add_metric([], float(cache.get(HEARTBEAT_KEY) or 0))
        yield heartbeat

        if not redis_up:
            return
        queue = app.conf.task_default_queue
        backlog = GaugeMetricFamily(
            "chatfocus_celery_queue_length", "Tasks waiting in the broker queue.", labels=["queue"]
        )
        tasks = CounterMetricFamily(
            "chatfocus_celery_tasks", "Finished Celery tasks by outcome.", labels=["task", "outcome"]
        )
        try:
            connection = _redis()
            backlog.add_metric([queue], float(connection.llen(queue)))
            outcomes = connection.hgetall(TASK_OUTCOMES_KEY)
        except Exception:
            return
        for field, count in sorted(outcomes.items()):
            tasks.add_metric(field.decode().split(" ", 1), float(count))
        yield backlog
        yield tasks


_registry = CollectorRegistry(auto_describe=False)
_registry.register(OperationsCollector())


def operations_metrics() -> bytes:
    return generate_latest(_registry)
