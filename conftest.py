"""Fixtures shared by every app's tests."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.services import issue_session_tokens
from accounts.tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # bcrypt at 12 rounds costs ~0.3 s a hash; tests that check the real hasher override this.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def fresh_rate_limit_window():
    """Run the test from the first second of a day (UTC), clock ticking.

    Rate limits count in fixed windows (a minute, a quarter, an hour, a day): a test that sends a
    limit's worth of requests must not straddle a window's end, where the count starts over.
    """
    import time

    import time_machine

    day = 86_400
    with time_machine.travel((int(time.time()) // day + 1) * day + 1, tick=True):
        yield


@pytest.fixture
def event_registry(db):
    """The analytics registry its data migration seeds (transactional tests elsewhere flush it)."""
    import importlib

    from django.apps import apps

    importlib.import_module("analytics.migrations.0002_seed_event_registry").seed(apps, None)


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def auth_client(db):
    """Make an APIClient sending a real access JWT of a new session of `user` (default: a new user).

    The client's `.user` is the user row, `.auth_session` the accounts Session behind the token (`.session`
    is Django's cookie session) and `.refresh_token` its refresh token.
    """

    def make(user=None):
        user = user or UserFactory()
        access, refresh, session = issue_session_tokens(user=user, device_name="pytest", user_agent="pytest")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
        client.user, client.auth_session, client.refresh_token = user, session, refresh
        return client

    return make


def pytest_collection_modifyitems(items):
    # Browser tests last: the async-safety switch they need (see _chromium) and the browser itself
    # then never leak into other tests or into their subprocesses (`check --deploy` flags the switch).
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def _chromium():
    """One headless Debian Chromium for the whole run (`make test` installs the package)."""
    import os

    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Browser tests need Debian's 'chromium' package at {CHROMIUM}: apt-get install -y chromium")
    # Playwright's sync API marks an asyncio loop as running in this thread between its calls, and
    # Django refuses ORM calls (test code, database flushes) under a running loop unless told that
    # this synchronous use is deliberate. Set for the rest of the run: browser tests run last.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def browser_page(_chromium, live_server):
    """A fresh browser context and page on the live server; the test fails on any console error."""
    context = _chromium.new_context(base_url=live_server.url, accept_downloads=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    console_errors = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    # A test that provokes an error on purpose (a 404 page) checks and clears this list itself.
    page.console_errors = console_errors
    yield page
    context.close()
    assert not console_errors, f"Console errors in the browser: {console_errors}"


STRIPE_TEST_KEY = "sk_test_" + "chatfocusfake" * 2
STRIPE_TEST_WEBHOOK_SECRET = "whsec_chatfocus_test_secret"


@pytest.fixture
def stripe_fake(settings, monkeypatch):
    """Stripe configured with test keys and answered by billing's stateful fake (see billing/tests/stripe_fake.py)."""
    import stripe

    from billing.tests.stripe_fake import StripeFake

    fake = StripeFake()
    monkeypatch.setattr(stripe, "default_http_client", fake)
    # Checkout and portal sessions send the browser to the fake's hosts after a POST: CSP form-action.
    policy = settings.CONTENT_SECURITY_POLICY
    form_action = [*policy["DIRECTIVES"]["form-action"], "https://checkout.stripe.test", "https://billing.stripe.test"]
    settings.CONTENT_SECURITY_POLICY = {**policy, "DIRECTIVES": {**policy["DIRECTIVES"], "form-action": form_action}}
    settings.STRIPE_SECRET_KEY = settings.STRIPE_TEST_SECRET_KEY = STRIPE_TEST_KEY
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_TEST_WEBHOOK_SECRET
    return fake


@pytest.fixture
def stripe_prices(stripe_fake, db):
    """The paid plans created in the fake and mirrored by billing_sync_plans: {(tier, interval): price id}."""
    from billing.services import sync_plans

    prices = stripe_fake.seed_catalog()
    sync_plans()
    return prices


class RealtimeServer:
    """The realtime ASGI process (`daphne chatfocus.asgi:application`) as a subprocess on a port the OS chose.

    The parent binds and listens on port 0 and hands the socket to daphne (`--fd`): no port is guessed.
    """

    def __init__(self, process, port: int):
        self.process, self.port = process, port
        self.url = f"ws://127.0.0.1:{port}"

    @classmethod
    def start(cls, env: dict, timeout: float = 60):
        import socket
        import subprocess
        import sys
        import time
        import urllib.request
        from pathlib import Path

        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1024)
            port = listener.getsockname()[1]
            process = subprocess.Popen(
                [sys.executable, "-m", "daphne", "--fd", str(listener.fileno()), "chatfocus.asgi:application"],
                cwd=Path(__file__).resolve().parent,
                env=env,
                pass_fds=[listener.fileno()],
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as response:
                    if response.status == 200:
                        return cls(process, port)
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"The realtime server did not start (exit code {process.poll()}).")
            time.sleep(0.1)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except Exception:
            self.process.kill()


@pytest.fixture(scope="session")
def realtime_server_factory(django_db_setup, django_db_blocker):
    """Start realtime servers against the test database and Redis: `factory(**extra_env) -> RealtimeServer`.

    They see only committed rows: use them from `transaction=True` tests (or live_server ones).
    """
    import os
    from urllib.parse import quote

    from django.conf import settings

    db = settings.DATABASES["default"]
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else "")
    database_url = f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    servers = []

    def start(**extra_env):
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": settings.REDIS_URL, **extra_env}
        server = RealtimeServer.start(env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def realtime_server(realtime_server_factory):
    """One realtime ASGI process for the session: `.url` is `ws://127.0.0.1:<port>` (the socket is `/ws/sync`)."""
    return realtime_server_factory()
