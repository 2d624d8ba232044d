"""Fault tests: PostgreSQL and Redis going away under a real gunicorn, and Stripe unreachable.

The server runs the shipped gunicorn config (one sync worker) against the test database. Its
PostgreSQL and Redis connections go through TCP proxies owned by the test, so a test can cut a
dependency (every open connection dropped, new ones refused) and restore it without touching the
machine's servers; `pg_terminate_backend` kills the server's backend from the test's own connection.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
from django.conf import settings
from django.db import connection
from redis.connection import parse_url

from accounts.models import Session
from accounts.services import issue_session_tokens
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from billing.stripe_gateway import MAX_NETWORK_RETRIES
from chatfocus.tests.test_deploy import free_port
from chatfocus.tests.test_project import ROOT

SERVER_APPLICATION_NAME = "cf-fault-server"


class TcpProxy:
    """A loopback TCP forwarder the test can cut (drop every connection, refuse new ones) and restore."""

    def __init__(self, *, target: tuple[str, int], port: int = 0):
        self.port, self.target = port, target
        self.lock = threading.Lock()
        self.listener = None
        self.sockets: set[socket.socket] = set()

    def start(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        self.port = listener.getsockname()[1]  # the OS's free port at the first start; restore() reuses it
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self):
        """The dependency is gone: the listener closes (connection refused) and open connections drop."""
        with self.lock:
            victims, self.sockets = [self.listener, *self.sockets], set()
        # shutdown() wakes the thread blocked in accept(); close() alone leaves it accepting.
        for sock in victims:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    restore = start

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source, destination):
        try:
            while data := source.recv(65536):
                destination.sendall(data)
        except OSError:
            pass
        for sock in (source, destination):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.lock:
            self.sockets.discard(source)
            self.sockets.discard(destination)


class Server:
    """A gunicorn process and a tiny JSON HTTP client for it."""

    def __init__(self, process, log_path, db_proxy, redis_proxy, port):
        self.process, self.log_path = process, log_path
        self.db_proxy, self.redis_proxy = db_proxy, redis_proxy
        self.base_url = f"http://127.0.0.1:{port}"

    def request(self, method, path, body=None, *, token=None, headers=None):
        """(status, headers, parsed JSON body or None) of one request; never raises on an HTTP error status."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        request.add_header("X-Forwarded-Proto", "https")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, response_headers, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, response_headers, raw = error.code, error.headers, error.read()
        content_type = response_headers.get("Content-Type", "")
        parsed = json.loads(raw) if raw and content_type.startswith("application/json") else None
        if parsed is None and raw:
            parsed = raw.decode(errors="replace")
        return status, response_headers, parsed

    def push(self, token, ops, device_id="dev-a"):
        return self.request("POST", "/api/sync/push", {"device_id": device_id, "ops": ops}, token=token)

    def log(self) -> str:
        with open(self.log_path) as log:
            return log.read()

    def records(self, since: int = 0) -> list[dict]:
        """The server's JSON log records written after offset `since` (a len() of an earlier log())."""
        return [json.loads(line) for line in self.log()[since:].splitlines() if line.startswith("{")]


def wait_until_serving(server: Server, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.log()
        try:
            if server.request("GET", "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"gunicorn did not serve on {server.base_url}:\n{server.log()}")


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    """gunicorn (shipped config, one worker, Celery not eager as in production) behind DB and Redis proxies."""
    database = connection.settings_dict
    db_proxy = TcpProxy(target=(database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432)))
    redis = parse_url(settings.REDIS_URL)
    redis_proxy = TcpProxy(target=(redis.get("host", "127.0.0.1"), redis.get("port", 6379)))
    db_proxy.start()
    redis_proxy.start()
    port = free_port()
    log_path = tmp_path_factory.mktemp("faults") / "gunicorn.log"
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        DATABASE_URL=(
            f"postgres://{database['USER']}@127.0.0.1:{db_proxy.port}/{database['NAME']}"
            f"?application_name={SERVER_APPLICATION_NAME}"
        ),
        REDIS_URL=f"redis://127.0.0.1:{redis_proxy.port}/{redis.get('db', 0)}",
        CELERY_TASK_ALWAYS_EAGER="0",
        WEB_CONCURRENCY="1",
        LOG_LEVEL="WARNING",
        PORT=str(port),
    )
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
            + ["chatfocus.wsgi"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, log_path, db_proxy, redis_proxy, port)
    try:
        wait_until_serving(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=35)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for proxy in (db_proxy, redis_proxy):
            if proxy.listener.fileno() != -1:
                proxy.cut()


@pytest.fixture
def dependencies_restored(server):
    """Whatever a test cut comes back before the next test."""
    yield
    for proxy in (server.db_proxy, server.redis_proxy):
        if proxy.listener.fileno() == -1:
            proxy.restore()


def new_token(user=None) -> tuple[object, str]:
    user = user or UserFactory()
    access, _, _ = issue_session_tokens(user=user, device_name="faults", user_agent="faults")
    return user, access


def assert_unavailable(status, headers, body):
    assert status == 503, (status, body)
    assert body["error"]["code"] == "unavailable"
    assert body["error"]["request_id"] == headers["X-Request-ID"]
    assert int(headers["Retry-After"]) > 0


def hlc(counter=0) -> str:
    return f"{int(time.time() * 1000)}-{counter}"


def set_op(key, value, counter=0) -> dict:
    return {"op_id": uuid.uuid4().hex, "key": key, "op": "set", "value": value, "hlc": hlc(counter)}


def server_backends(cursor, *, waiting_for_lock=False) -> list[int]:
    query = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
    if waiting_for_lock:
        query += " AND wait_event_type = 'Lock'"
    cursor.execute(query, [SERVER_APPLICATION_NAME])
    return [pid for (pid,) in cursor.fetchall()]


def terminate_server_backends(*, wait=False) -> int:
    """pg_terminate_backend on every connection of the server, from the test's own connection.

    Termination is asynchronous; `wait` returns only once the backends are gone.
    """
    with connection.cursor() as cursor:
        pids = server_backends(cursor)
        for pid in pids:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 5
        while wait and set(pids) & set(server_backends(cursor)):
            assert time.monotonic() < deadline, "a terminated backend lives on"
            time.sleep(0.01)
    return len(pids)


class RowLock:
    """Holds a user's sync row lock on its own connection, so a push waits inside its transaction."""

    def __init__(self, user_id):
        import psycopg

        database = connection.settings_dict
        self.conn = psycopg.connect(
            host=database["HOST"] or "127.0.0.1",
            port=database["PORT"] or 5432,
            user=database["USER"],
            dbname=database["NAME"],
        )
        self.conn.execute("SELECT 1 FROM syncsettings_syncstate WHERE user_id = %s FOR UPDATE", [user_id])

    def wait_for_server(self, seconds=5) -> int:
        """The pid of the server backend blocked on this lock."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.conn.cursor() as cursor:
                pids = server_backends(cursor, waiting_for_lock=True)
            if pids:
                return pids[0]
            time.sleep(0.02)
        raise AssertionError("the server's push never waited for the row lock")

    def release(self):
        self.conn.rollback()
        self.conn.close()


def in_thread(function):
    """Start `function` in a thread; the returned callable joins it and gives its result."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", function()), daemon=True)
    thread.start()

    def join():
        thread.join(30)
        assert "value" in result, "the request never finished"
        return result["value"]

    return join


@pytest.mark.django_db(transaction=True)
def test_database_cut_mid_request_is_503_unavailable_and_the_server_recovers_by_itself(server, dependencies_restored):
    user, token = new_token()
    assert server.push(token, [set_op("a", 1)])[0] == 200

    # A push waits inside its transaction (the test holds the user's row lock) when PostgreSQL goes away.
    pending = set_op("b", 2)
    lock = RowLock(user.id)
    try:
        push = in_thread(lambda: server.push(token, [pending]))
        lock.wait_for_server()
        server.db_proxy.cut()
        assert_unavailable(*push())
    finally:
        lock.release()

    for method, path, body in [
        ("GET", "/api/auth/sessions", None),
        ("POST", "/api/sync/push", {"device_id": "dev-a", "ops": [set_op("theme", "dark")]}),
        ("GET", "/api/sync/pull?since=0", None),
        ("POST", "/api/auth/login", {"email": "nobody@example.com", "password": "wrong-password-1"}),
        ("POST", "/api/auth/register", {"email": "new@example.com", "password": "a-long-password-1"}),
    ]:
        assert_unavailable(*server.request(method, path, body, token=token))
    assert server.request("GET", "/healthz")[0] == 200
    assert_unavailable(*server.request("GET", "/readyz"))
    status, headers, page = server.request("GET", "/account/login/")  # a hosted page: HTML, still not a 500
    assert (status, headers["Content-Type"].split(";")[0], int(headers["Retry-After"])) == (503, "text/html", 5)
    assert "Temporarily unavailable" in page

    # Back without a restart: the push cut mid-way applied nothing, and its retry applies.
    server.db_proxy.restore()
    assert server.request("GET", "/api/auth/sessions", token=token)[0] == 200
    assert [c["key"] for c in server.request("GET", "/api/sync/pull?since=0", token=token)[2]["changes"]] == ["a"]
    status, _, body = server.push(token, [pending])
    assert (status, body["results"]) == (200, [{"op_id": pending["op_id"], "status": "applied", "version": 2}])
    assert server.request("GET", "/readyz")[0] == 200


@pytest.mark.django_db(transaction=True)
def test_killed_database_backends_lose_no_acknowledged_push_and_failed_pushes_can_be_retried(
    server, dependencies_restored
):
    user, token = new_token()
    acknowledged, failed = {}, []

    def push(ops):
        status, headers, body = server.push(token, ops)
        if status == 200:
            acknowledged.update({op["key"]: op["value"] for op in ops})
        else:
            assert_unavailable(status, headers, body)
            failed.append(ops)
        return status

    def pull_since(version):
        status, headers, body = server.request("GET", f"/api/sync/pull?since={version}", token=token)
        if status != 200:
            assert_unavailable(status, headers, body)
        return status

    # Between requests: the persistent connection died while idle; the health check replaces it unseen.
    for i in range(12):
        assert terminate_server_backends(wait=True) <= 1
        assert push([set_op(f"idle/{i}", i)]) == 200
        assert pull_since(i) == 200

    # In the middle of a push: the backend dies while the push waits for the user's row lock.
    for i in range(3):
        lock = RowLock(user.id)
        try:
            result = in_thread(lambda i=i: push([set_op(f"mid/{i}", i), set_op(f"mid/{i}/b", -i)]))
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [lock.wait_for_server()])
            assert result() == 503
        finally:
            lock.release()

    # Anywhere: a killer thread terminates the server's backends while pushes and pulls go on.
    stop = threading.Event()

    def killer():
        while not stop.wait(0.06):
            terminate_server_backends()
        connection.close()

    killing = threading.Thread(target=killer, daemon=True)
    killing.start()
    try:
        for i in range(40):
            push([set_op(f"storm/{i}", i), set_op(f"storm/{i}/b", str(i))])
            pull_since(0)
    finally:
        stop.set()
        killing.join(10)

    # Every failed push goes through when retried with the same op ids.
    for ops in failed:
        status, _, body = server.push(token, ops)
        assert status == 200
        assert {result["status"] for result in body["results"]} <= {"applied", "duplicate"}
        acknowledged.update({op["key"]: op["value"] for op in ops})

    status, _, body = server.request("GET", "/api/sync/pull?since=0&limit=1000", token=token)
    pulled = {change["key"]: change["value"] for change in body["changes"]}
    assert pulled == acknowledged
    assert body["version"] == len(acknowledged)  # gapless: one version per applied op, none lost
    assert len(failed) >= 3


@pytest.mark.django_db(transaction=True)
def test_redis_down_degrades_cache_rate_limits_and_task_queue_without_failing_a_request(
    server, dependencies_restored, settings
):
    from django_redis import get_redis_connection

    # The server checks passwords with the real hasher (the suite's fast MD5 one is not in its list).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.BCryptSHA256PasswordHasher"]
    user, token = new_token()
    redis = get_redis_connection()
    assert server.request("POST", "/api/auth/forgot-password", {"email": user.email})[0] == 202
    assert redis.llen("celery") == 1  # Celery is not eager here: the email task went to the broker

    # Warm the caches the outage will make stale: the sync version and the session's state.
    assert server.push(token, [set_op("before", 1)])[0] == 200
    status, _, body = server.request("GET", "/api/sync/pull?since=0", token=token)
    version_before_outage = body["version"]
    _, revoked_token = new_token(user)
    revoked_session = Session.objects.filter(user=user).order_by("-created_at").first()
    assert server.request("GET", "/api/users/me", token=revoked_token)[0] == 200

    log_start = len(server.log())
    server.redis_proxy.cut()
    status, _, body = server.request("POST", "/api/auth/login", {"email": user.email, "password": DEFAULT_PASSWORD})
    assert status == 200
    assert server.request("GET", "/api/users/me", token=body["access"])[0] == 200
    assert server.request("GET", "/api/users/me", token=token)[0] == 200
    assert server.push(token, [set_op("theme", "dark")])[0] == 200
    status, _, body = server.request("GET", f"/api/sync/pull?since={version_before_outage}", token=token)
    assert (status, [change["key"] for change in body["changes"]]) == (200, ["theme"])
    assert server.request("GET", "/api/subscriptions", token=token)[0] == 200
    # The broker is down too: the reset email is sent from the web process instead of being lost.
    assert server.request("POST", "/api/auth/forgot-password", {"email": user.email})[0] == 202
    assert f"To: {user.email}" in server.log()[log_start:]
    assert server.request("GET", "/readyz")[0] == 503

    records = server.records(log_start)
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL") and r["logger"] != "django.request"]
    assert not [r for r in records if r.get("status_code", 0) >= 500 and r["status_code"] != 503]
    assert {"chatfocus.cache", "chatfocus.emails"} <= {r["logger"] for r in records if r["level"] == "WARNING"}

    assert server.request("DELETE", f"/api/auth/sessions/{revoked_session.id}", token=token)[0] == 204

    server.redis_proxy.restore()
    assert server.request("GET", "/readyz")[0] == 200
    # Redis kept its pre-outage entries; the invalidations lost meanwhile are replayed, so nothing stale is served.
    status, _, body = server.request("GET", f"/api/sync/pull?since={version_before_outage}", token=token)
    assert (status, [change["key"] for change in body["changes"]]) == (200, ["theme"])
    assert server.request("GET", "/api/users/me", token=revoked_token)[0] == 401
    # Rate limits count again once Redis is back (forgot_email: 3 an hour per address).
    statuses = [server.request("POST", "/api/auth/forgot-password", {"email": "x@example.com"})[0] for _ in range(4)]
    assert statuses == [202, 202, 202, 429]


# --- Stripe unreachable -----------------------------------------------------------------------


@pytest.fixture
def stripe_unreachable(stripe_fake, monkeypatch):
    """Swap the fake for the stripe library's real HTTP client (short timeout) at STRIPE_API_HOST (pytest.ini:
    a closed port); `.go_silent()` points it at a socket that accepts and never answers."""
    import stripe

    assert stripe.api_base == settings.STRIPE_API_HOST == "http://127.0.0.1:9"

    class Switch:
        listener = None
        connections: list[socket.socket] = []

        def cut(self):
            monkeypatch.setattr(stripe, "default_http_client", stripe.new_default_http_client(timeout=0.3))

        def go_silent(self):
            self.listener = socket.create_server(("127.0.0.1", 0), backlog=16)
            self.connections = []
            threading.Thread(target=self._hold, daemon=True).start()
            monkeypatch.setattr(stripe, "api_base", f"http://127.0.0.1:{self.listener.getsockname()[1]}")

        def _hold(self):
            """Accepts each attempt and never answers: the count of connections is the count of attempts."""
            while True:
                try:
                    connection, _ = self.listener.accept()
                except OSError:
                    return
                self.connections.append(connection)

    switch = Switch()
    yield switch
    if switch.listener is not None:
        switch.listener.shutdown(socket.SHUT_RDWR)
        switch.listener.close()
        for connection in switch.connections:
            connection.close()


def billing_snapshot(user) -> tuple:
    """The user's billing row and tier log; a missing row and an empty one (no customer yet) are the same state."""
    from billing.models import BillingAccount, TierChange

    account = BillingAccount.objects.filter(user=user).exclude(stripe_customer_id="").values().first()
    return account, TierChange.objects.filter(user=user).count()


PAID_ACTIONS = [
    ("put", "/api/subscriptions", {"tier": "premium"}),
    ("put", "/api/subscriptions", {"interval": "year"}),
    ("delete", "/api/subscriptions", None),
    ("post", "/api/subscriptions/portal", None),
]


@pytest.mark.django_db
def test_stripe_unreachable_billing_actions_are_502_with_no_local_change_and_entitlements_still_served(
    auth_client, stripe_fake, stripe_prices, stripe_unreachable, monkeypatch
):
    from billing import stripe_gateway
    from billing.tests.helpers import subscribe

    # Refused connections fail the same with or without retries; skipping them keeps this test fast.
    monkeypatch.setattr(stripe_gateway, "MAX_NETWORK_RETRIES", 0)

    client, newcomer, leaving = auth_client(), auth_client(), auth_client()
    subscribe(stripe_fake, client.user, "pro")
    subscribe(stripe_fake, leaving.user, "pro")
    assert leaving.delete("/api/subscriptions").json()["cancel_at_period_end"] is True
    users = (client.user, newcomer.user, leaving.user)
    before = [billing_snapshot(user) for user in users]
    stripe_unreachable.cut()

    responses = [getattr(client, method)(path, body, format="json") for method, path, body in PAID_ACTIONS]
    responses.append(newcomer.post("/api/subscriptions", {"tier": "pro", "interval": "month"}, format="json"))
    responses.append(leaving.put("/api/subscriptions", {"resume": True}, format="json"))
    responses.append(client.delete("/api/users/me", {"password": DEFAULT_PASSWORD}, format="json"))
    for response in responses:
        assert response.status_code == 502, response.content
        assert response.json()["error"]["code"] == "upstream_error"
    assert [billing_snapshot(user) for user in users] == before
    assert type(client.user).objects.filter(pk=client.user.pk).exists()  # the account was not deleted

    entitlements = client.get("/api/subscriptions")
    assert (entitlements.status_code, entitlements.json()["tier"]) == (200, "pro")
    quota = client.get("/api/sync/quota")
    assert (quota.status_code, quota.json()["tier"], quota.json()["devices_limit"]) == (200, "pro", 10)
    assert client.get("/api/subscriptions/plans").status_code == 200


@pytest.mark.django_db
def test_stripe_that_never_answers_times_out_into_502_with_no_local_change(
    auth_client, stripe_fake, stripe_prices, stripe_unreachable
):
    from billing.tests.helpers import subscribe

    client = auth_client()
    subscribe(stripe_fake, client.user, "pro")
    before = billing_snapshot(client.user)
    stripe_unreachable.cut()
    stripe_unreachable.go_silent()

    response = client.put("/api/subscriptions", {"tier": "premium"}, format="json")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"
    # Three attempts (two retries) of 0.3 s each, then the 502: a bounded wait, not a hung worker. The
    # holding thread may still be accepting the last attempt from the kernel's queue.
    deadline = time.monotonic() + 30
    while len(stripe_unreachable.connections) < 1 + MAX_NETWORK_RETRIES and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(stripe_unreachable.connections) == 1 + MAX_NETWORK_RETRIES
    assert billing_snapshot(client.user) == before
    assert client.get("/api/subscriptions").json()["tier"] == "pro"
