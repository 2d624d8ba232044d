"""gunicorn settings for production: sync workers, graceful shutdown, multiprocess metrics."""

import multiprocessing
import os

# GUNICORN_POOL=login starts the login pool instead of the web pool: a second, small server for the
# password endpoints that a path-routing proxy sends there (README "Performance"). A bcrypt check costs
# ~0.3 s of CPU; at a lower CPU priority the login workers take what the web workers leave, so
# concurrent logins cannot starve sync requests.
POOL = os.environ.get("GUNICORN_POOL", "web")
LOGIN_NICE = int(os.environ.get("LOGIN_NICE", "19"))

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Sync workers: each request holds one DB connection, kept open between requests (CONN_MAX_AGE).
worker_class = "sync"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
if POOL == "login":
    bind = f"0.0.0.0:{os.environ.get('LOGIN_PORT', '8001')}"
    # One bcrypt check keeps a core busy. Half the cores at most: even at nice 19 a running check
    # finishes its time slice before a waking web worker gets the core, so the web pool keeps cores
    # that never run one.
    workers = int(os.environ.get("LOGIN_CONCURRENCY", max(1, multiprocessing.cpu_count() // 2)))
    # A deprioritised worker may wait for CPU while the web pool is saturated.
    timeout = max(timeout, 60)
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak cannot grow without bound. The jitter spans a whole
# period: workers that share the load evenly otherwise reach their limit together, and gunicorn takes
# 1-3 s to boot their replacements on a busy host. With a jitter of 200 all five bench workers
# recycled within a second of each other every ~7 s: the bare view's p99 was 270-920 ms and its
# throughput 1,340-1,380 req/s; spread out, p99 21 ms and 1,680-1,770 req/s (bench/run.py --only).
max_requests = 5000
max_requests_jitter = 5000
# Load Django once in the master: a recycled worker is a cheap fork instead of a full import of the
# app (about 2 s of CPU each on the bench machine; at 800 req/s, recycling every 2000 requests, an
# earlier setting, that was some 40 % of two cores). Nothing connects to the database or Redis at
# import time; code changes need a restart, not a HUP.
preload_app = True
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
accesslog = None  # The app logs one JSON line per request (chatfocus.request).
errorlog = "-"
# gunicorn 27's control socket lives at one fixed path per user: a second server on the host (a
# login pool, a benchmark) would take it over. Nothing here uses it.
control_socket_disable = True


def when_ready(server):
    """Import every view in the master too, so a forked worker's first request does not pay for it."""
    from django.core.cache import caches
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (importing the URLconf imports the views)
    caches["default"]  # noqa: B018  (imports the cache backend; it connects lazily, after the fork)


def post_fork(server, worker):
    if POOL == "login":
        deprioritise_login_worker()


def deprioritise_login_worker():
    """Give this login worker a low CPU priority, also against processes of other sessions.

    SCHED_IDLE on Linux: a waking web worker takes the core at once instead of after the check's time
    slice. With the kernel's autogroups (the default on most distributions) the CPU is shared between
    sessions first and nice only ranks processes within one, so a worker also leads a session of its
    own whose autogroup gets the same low priority. Across containers or systemd units, cgroup CPU
    weights decide instead (README "Performance").
    """
    os.nice(LOGIN_NICE)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass  # not Linux: nice alone applies
    try:
        os.setsid()
        with open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write(str(LOGIN_NICE))
    except OSError:
        pass  # no autogroups here (or not Linux): nice alone applies


def on_starting(server):
    """Empty the Prometheus multiprocess directory: a previous run's files would add stale counts.

    The login pool shares the directory (the web pool's /metrics then counts its logins) and leaves
    emptying it to the web pool, which starts with it.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and POOL == "web":
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the Prometheus multiprocess directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
