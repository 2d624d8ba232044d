"""The security checklist, cross-cutting items (README "Security"); app-specific items live in the apps' tests."""

import importlib.util
import io
import logging
import os
import re
import signal
import subprocess
import sys

import pytest
import requests
import responses
from allauth.socialaccount.models import SocialAccount
from django.conf import settings
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core import mail
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse
from pythonjsonlogger.json import JsonFormatter
from rest_framework.test import APIClient

from accounts.models import Session, User
from accounts.services import issue_session_tokens
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from accounts.tests.test_oauth import REDIRECT_URI, exchange, mock_google, query, run_flow
from billing.tests.helpers import send, subscribe
from chatfocus.logging import RequestContextFilter
from chatfocus.tests.test_deploy import free_port, wait_until_serving
from chatfocus.tests.test_project import ROOT
from conftest import STRIPE_TEST_KEY, STRIPE_TEST_WEBHOOK_SECRET
from syncsettings.models import Device, Snapshot
from syncsettings.tests.conftest import SyncClient
from syncsettings.tests.factories import make_op

NEW_PASSWORD = "a-much-better-passphrase-42"


def post(client, path, data, **extra):
    return client.post(path, data, format="json", **extra)


def login(client, email, password=DEFAULT_PASSWORD, **meta):
    return post(client, "/api/auth/login", {"email": email, "password": password}, **meta)


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["request_id"]
    return error


# --- Rate limits shared by every server process ---------------------------------------------

# Small counts keep the test quick; day-long windows make a window edge inside the test unlikely.
SHARED_LIMITS = {
    "RATE_LIMIT_LOGIN_IP": "4/86400",
    "RATE_LIMIT_LOGIN_FAILURES_ACCOUNT": "2/86400",
    "RATE_LIMIT_REGISTER_IP": "2/86400",
    "RATE_LIMIT_FORGOT_EMAIL": "2/86400",
    "RATE_LIMIT_FORGOT_IP": "5/86400",
    "RATE_LIMIT_REFRESH_SESSION": "3/86400",
}


@pytest.fixture(scope="module")
def two_servers(django_db_setup):
    """Two gunicorn servers (separate processes) on the test database and this run's Redis db."""
    from django.db import connection

    db = connection.settings_dict
    if not (settings.REDIS_URL and connection.vendor == "postgresql"):
        pytest.fail("Rate limits across processes need the PostgreSQL test database and REDIS_URL (make test).")
    env = {
        **os.environ,
        **SHARED_LIMITS,
        "DEBUG": "0",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "WEB_CONCURRENCY": "1",
        "CELERY_TASK_ALWAYS_EAGER": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    processes = []
    ports = (free_port(), free_port())
    try:
        for port in ports:
            command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
            processes.append(
                subprocess.Popen(
                    [*command, "chatfocus.wsgi"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                    start_new_session=True,  # its own process group: arbiter and worker end together
                )
            )
        for port, process in zip(ports, processes, strict=True):
            wait_until_serving(port, process)
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)  # nothing to finish; gunicorn's own shutdown takes seconds
            process.wait()


class Spread:
    """POSTs that alternate between the servers, so every count below is a sum over both processes."""

    def __init__(self, servers):
        self.servers = servers
        self.sent = 0

    def post(self, path, body):
        url = self.servers[self.sent % len(self.servers)] + path
        self.sent += 1
        return requests.post(url, json=body, timeout=30)


def limit_of(variable):
    count, seconds = SHARED_LIMITS[variable].split("/")
    return int(count), int(seconds)


def assert_rate_limited(response, variable):
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limited"
    assert 0 < int(response.headers["Retry-After"]) <= limit_of(variable)[1]


@pytest.fixture
def committed_user(django_db_blocker):
    """A user committed outside any test transaction (the servers see it); deleted afterwards."""
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    with django_db_blocker.unblock():
        user = UserFactory()
        yield user
        OutstandingToken.objects.filter(user_id=user.id).delete()
        User.objects.filter(id=user.id).delete()


def test_login_limit_per_ip_is_shared_by_two_server_processes(two_servers):
    spread = Spread(two_servers)
    count, _ = limit_of("RATE_LIMIT_LOGIN_IP")
    for n in range(count):
        response = spread.post("/api/auth/login", {"email": f"ip{n}@example.com", "password": "wrong-password"})
        assert response.status_code == 401, response.text
    assert_rate_limited(
        spread.post("/api/auth/login", {"email": "ip-x@example.com", "password": "x"}), "RATE_LIMIT_LOGIN_IP"
    )


def test_login_failure_limit_per_account_is_shared_by_two_server_processes(two_servers):
    spread = Spread(two_servers)
    count, _ = limit_of("RATE_LIMIT_LOGIN_FAILURES_ACCOUNT")
    for _ in range(count):
        response = spread.post("/api/auth/login", {"email": "target@example.com", "password": "guess"})
        assert response.status_code == 401, response.text
    locked = spread.post("/api/auth/login", {"email": "TARGET@example.com", "password": "guess"})
    assert_rate_limited(locked, "RATE_LIMIT_LOGIN_FAILURES_ACCOUNT")
    # Per account, not per address: another account from the same address still gets an answer.
    assert spread.post("/api/auth/login", {"email": "other@example.com", "password": "guess"}).status_code == 401


def test_register_limit_per_ip_is_shared_by_two_server_processes(two_servers, django_db_blocker):
    spread = Spread(two_servers)
    count, _ = limit_of("RATE_LIMIT_REGISTER_IP")
    emails = [f"shared-register-{n}@example.com" for n in range(count + 1)]
    try:
        for email in emails[:count]:
            assert spread.post("/api/auth/register", {"email": email, "password": NEW_PASSWORD}).status_code == 201
        refused = spread.post("/api/auth/register", {"email": emails[-1], "password": NEW_PASSWORD})
        assert_rate_limited(refused, "RATE_LIMIT_REGISTER_IP")
        with django_db_blocker.unblock():
            assert set(User.objects.filter(email__in=emails).values_list("email", flat=True)) == set(emails[:count])
    finally:
        with django_db_blocker.unblock():
            User.objects.filter(email__in=emails).delete()


def test_forgot_password_limits_per_email_and_per_ip_are_shared_by_two_server_processes(two_servers):
    spread = Spread(two_servers)
    per_email, _ = limit_of("RATE_LIMIT_FORGOT_EMAIL")
    for _ in range(per_email):
        assert spread.post("/api/auth/forgot-password", {"email": "forgot@example.com"}).status_code == 202
    assert_rate_limited(
        spread.post("/api/auth/forgot-password", {"email": "forgot@example.com"}), "RATE_LIMIT_FORGOT_EMAIL"
    )
    per_ip, _ = limit_of("RATE_LIMIT_FORGOT_IP")
    for n in range(per_ip - per_email - 1):  # the refused request above counted for the address too
        assert spread.post("/api/auth/forgot-password", {"email": f"f{n}@example.com"}).status_code == 202
    assert_rate_limited(
        spread.post("/api/auth/forgot-password", {"email": "fresh@example.com"}), "RATE_LIMIT_FORGOT_IP"
    )


def test_refresh_limit_per_session_is_shared_by_two_server_processes(two_servers, committed_user, django_db_blocker):
    with django_db_blocker.unblock():
        _, refresh, _ = issue_session_tokens(user=committed_user)
    spread = Spread(two_servers)
    count, _ = limit_of("RATE_LIMIT_REFRESH_SESSION")
    for _ in range(count):
        response = spread.post("/api/auth/refresh", {"refresh": refresh})
        assert response.status_code == 200, response.text
        refresh = response.json()["refresh"]
    assert_rate_limited(spread.post("/api/auth/refresh", {"refresh": refresh}), "RATE_LIMIT_REFRESH_SESSION")


@pytest.mark.django_db
def test_a_forged_x_forwarded_for_does_not_escape_the_per_ip_limit(api_client):
    user = UserFactory()
    count = int(settings.RATE_LIMITS["login_ip"].split("/")[0])
    for n in range(count):
        forged = f"198.51.100.{n}"
        assert login(api_client, f"guess{n}@example.com", HTTP_X_FORWARDED_FOR=forged).status_code == 401
    refused = login(api_client, user.email, HTTP_X_FORWARDED_FOR="198.51.100.250")
    assert_error(refused, 429, "rate_limited")


@pytest.mark.django_db
def test_behind_a_configured_proxy_the_limit_keys_on_the_address_the_proxy_saw(api_client, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    user = UserFactory()
    count = int(settings.RATE_LIMITS["login_ip"].split("/")[0])
    for n in range(count):
        forged = f"198.51.100.{n}, 203.0.113.7"  # the client's own prefix, then what the proxy appended
        assert login(api_client, f"guess{n}@example.com", HTTP_X_FORWARDED_FOR=forged).status_code == 401
    assert_error(login(api_client, user.email, HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.7"), 429, "rate_limited")
    assert login(api_client, user.email, HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 200


# --- Body size limits -----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path, limit", sorted(settings.API_BODY_LIMITS.items()))
def test_each_per_endpoint_body_limit_holds_at_its_exact_size(auth_client, path, limit):
    client = auth_client()
    at_limit = client.generic("POST", path, b" " * limit, content_type="application/json")
    assert at_limit.status_code != 413
    over = client.generic("POST", path, b" " * (limit + 1), content_type="application/json")
    assert assert_error(over, 413, "payload_too_large")["details"]["limit_bytes"] == limit
    assert limit < settings.DATA_UPLOAD_MAX_MEMORY_SIZE


# --- No user enumeration ------------------------------------------------------------------


class CountingMD5PasswordHasher(MD5PasswordHasher):
    """MD5 (fast) that counts its hash computations: verify() encodes too."""

    encodes = 0

    def encode(self, password, salt):
        CountingMD5PasswordHasher.encodes += 1
        return super().encode(password, salt)


@pytest.fixture
def hash_count(settings):
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingMD5PasswordHasher"]

    def count(action) -> int:
        before = CountingMD5PasswordHasher.encodes
        action()
        return CountingMD5PasswordHasher.encodes - before

    return count


@pytest.mark.django_db
def test_login_hashes_a_password_once_whether_or_not_the_email_exists(api_client, hash_count):
    user = UserFactory(email="known@example.com")
    unknown_email = hash_count(lambda: login(api_client, "nobody@example.com", "some-password"))
    wrong_password = hash_count(lambda: login(api_client, user.email, "some-password"))
    right_password = hash_count(lambda: login(api_client, user.email))
    assert unknown_email == wrong_password == right_password == 1


@pytest.mark.django_db
def test_register_hashes_a_password_once_whether_or_not_the_email_exists(api_client, hash_count):
    UserFactory(email="taken@example.com")
    body = {"password": NEW_PASSWORD}
    new = hash_count(lambda: post(api_client, "/api/auth/register", {**body, "email": "fresh@example.com"}))
    existing = hash_count(lambda: post(api_client, "/api/auth/register", {**body, "email": "taken@example.com"}))
    assert new == existing == 1


@pytest.mark.django_db
def test_failed_logins_lock_an_unknown_email_like_a_known_one(api_client):
    UserFactory(email="known@example.com")
    count = int(settings.RATE_LIMITS["login_failures_account"].split("/")[0])
    answers = {}
    for email in ("known@example.com", "nobody@example.com"):
        for n in range(count):
            assert login(api_client, email, "wrong", REMOTE_ADDR=f"10.7.{len(answers)}.{n}").status_code == 401
        refused = login(api_client, email, "wrong", REMOTE_ADDR="10.7.9.9")
        answers[email] = (refused.status_code, {**refused.json()["error"], "request_id": None})
    assert answers["known@example.com"] == answers["nobody@example.com"]


# --- Object endpoints: another user's id is a 404 -----------------------------------------


def routes_with_parameters(resolver=None, prefix=""):
    """(route, name, view) of every URL pattern that takes a parameter, the admin's aside."""
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if route != settings.ADMIN_URL:
                yield from routes_with_parameters(pattern, route)
        elif re.search(r"<[^>]+>|\(\?P<", route):
            yield route, pattern.name, pattern.callback


# Routes whose parameter names no stored object of a user (the keys are tested with their flows).
NOT_OBJECT_ROUTES = {
    "auth-oauth-start": "the provider name (google, github)",
    "account_confirm_email": "the key from the verification email",
    "account_reset_password_from_key": "the key from the password reset email",
    "account_undo_email_change": "the signed token from the email change notice",
}
HOSTED_PAGE_ROUTES = {"account_revoke_session"}


@pytest.fixture
def owner_and_intruder(auth_client):
    owner, intruder = SyncClient(auth_client()), SyncClient(auth_client())
    owner.push("owner-laptop", [make_op("theme", "dark")])
    snapshot = owner.client.post("/api/sync/snapshots", {"label": "mine"}, format="json").json()
    owner.push("owner-laptop", [make_op("theme", "light", counter=1)])
    intruder.push("intruder-laptop", [make_op("theme", "intruder")])
    # Route name → URL arguments naming one of the owner's objects.
    owner_objects = {
        "auth-session": {"session_id": owner.client.auth_session.id},
        "account_revoke_session": {"session_id": owner.client.auth_session.id},
        "sync-device": {"device_id": "owner-laptop"},
        "sync-snapshot-restore": {"snapshot_id": snapshot["id"]},
    }
    return owner, intruder, owner_objects


def world_state():
    """Everything an object endpoint could change, for before/after comparison."""
    return {
        "sessions": sorted(Session.objects.values_list("id", "revoked_at")),
        "devices": sorted(Device.objects.values_list("user_id", "device_id")),
        "snapshots": sorted(Snapshot.objects.values_list("user_id", "id")),
        "social accounts": sorted(SocialAccount.objects.values_list("user_id", "id")),
    }


@pytest.mark.django_db
def test_every_route_with_an_id_is_in_the_idor_sweep(owner_and_intruder):
    _, _, owner_objects = owner_and_intruder
    names = {name for _, name, _ in routes_with_parameters()}
    uncovered = names - set(owner_objects) - set(NOT_OBJECT_ROUTES)
    assert not uncovered, f"Add these routes to the IDOR sweep (owner_and_intruder): {sorted(uncovered)}"
    assert HOSTED_PAGE_ROUTES <= names


@pytest.mark.django_db
def test_every_api_object_endpoint_answers_404_for_another_users_id_and_changes_nothing(owner_and_intruder):
    owner, intruder, owner_objects = owner_and_intruder
    before, owner_document = world_state(), owner.document()
    checked = []
    for route, name, view in routes_with_parameters():
        if name in NOT_OBJECT_ROUTES or name in HOSTED_PAGE_ROUTES:
            continue
        path = reverse(name, kwargs=owner_objects[name])
        for method in ("get", "put", "patch", "post", "delete"):
            if hasattr(view.view_class, method):
                response = intruder.client.generic(method.upper(), path, "{}", content_type="application/json")
                assert_error(response, 404, "not_found")
                checked.append(f"{method.upper()} {route}")
    assert world_state() == before
    assert owner.document() == owner_document and intruder.document() == {"theme": "intruder"}
    assert owner.client.get("/api/auth/sessions").status_code == 200
    assert len(checked) == 3, checked


@pytest.mark.django_db
def test_hosted_pages_change_nothing_of_another_user(owner_and_intruder, client):
    owner, intruder, owner_objects = owner_and_intruder
    social = SocialAccount.objects.create(user=owner.user, provider="github", uid="4242")
    client.force_login(intruder.user)
    before = world_state()
    for name in sorted(HOSTED_PAGE_ROUTES):
        path = reverse(name, kwargs=owner_objects[name])
        assert client.get(path).status_code == 405
        refused = client.post(path, follow=True)
        assert "No such session." in [str(message) for message in refused.context["messages"]]
    disconnect = client.post("/account/connections/", {"account": social.id})
    assert disconnect.status_code == 200 and "account" in disconnect.context["form"].errors
    assert world_state() == before
    assert owner.client.get("/api/auth/sessions").status_code == 200


# --- Admin --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url_name", ["admin:index", "admin:accounts_user_changelist"])
def test_admin_sends_a_logged_in_non_staff_user_to_the_admin_login(client, url_name):
    client.force_login(UserFactory(is_staff=False))
    response = client.get(reverse(url_name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_admin_url_setting_comes_from_the_environment():
    result = subprocess.run(
        [sys.executable, "-c", "import chatfocus.settings as s; print(s.ADMIN_URL)"],
        cwd=ROOT,
        env={**os.environ, "ADMIN_URL": "/ops-7f3k"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.strip() == "ops-7f3k/", result.stderr


@pytest.mark.django_db
def test_admin_is_served_only_at_the_admin_url(client, settings):
    settings.ADMIN_URL = "ops-7f3k/"
    # A fresh copy of the project's URLconf built under that setting (the imported one keeps admin/).
    spec = importlib.util.spec_from_file_location("urls_with_custom_admin", ROOT / "chatfocus" / "urls.py")
    urlconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(urlconf)
    settings.ROOT_URLCONF = urlconf
    assert client.get("/admin/").status_code == 404
    assert client.get("/admin/login/").status_code == 404
    anonymous = client.get("/ops-7f3k/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/ops-7f3k/login/")
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert client.get("/ops-7f3k/").status_code == 200


# --- Secrets never logged -----------------------------------------------------------------


@pytest.fixture
def all_logs(caplog):
    """Every log record at DEBUG, as caplog keeps them and as the JSON log lines production writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    production_format = {key: value for key, value in settings.LOGGING["formatters"]["json"].items() if key != "()"}
    handler.setFormatter(JsonFormatter(**production_format))
    handler.addFilter(RequestContextFilter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    quiet = {name: logging.getLogger(name).level for name in ("django.request", "django.server")}
    for name in quiet:
        logging.getLogger(name).setLevel(logging.DEBUG)

    def text() -> str:
        records = "\n".join(f"{record.getMessage()} {record.__dict__!r}" for record in caplog.records)
        return records + "\n" + stream.getvalue()

    yield text
    root.removeHandler(handler)
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)


def assert_not_logged(logs: str, secrets: dict) -> None:
    leaked = sorted(name for name, value in secrets.items() if value in logs)
    assert not leaked, f"Secrets in the logs: {leaked}"


def emailed_link_key(pattern: str) -> str:
    return re.search(pattern, mail.outbox[-1].body).group(1)


CONFIRM_LINK, RESET_LINK = r"/account/confirm-email/(\S+)/", r"/account/password/reset/key/(\S+)/"


@pytest.mark.django_db
def test_password_and_token_flows_log_no_password_token_or_key(all_logs, settings, django_capture_on_commit_callbacks):
    api = APIClient()
    secrets = {
        "password": NEW_PASSWORD,
        "wrong password": "a-wrong-passphrase-77",
        "changed password": "changed-passphrase-913",
        "reset password": "reset-passphrase-5521",
        "jwt key": settings.SIMPLE_JWT["SIGNING_KEY"],
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert post(api, "/api/auth/register", {"email": "leak@example.com", "password": NEW_PASSWORD}).status_code
    secrets["verification key"] = emailed_link_key(CONFIRM_LINK)
    assert post(api, "/api/auth/verify-email", {"key": secrets["verification key"]}).status_code == 204
    assert login(api, "leak@example.com", secrets["wrong password"]).status_code == 401
    tokens = login(api, "leak@example.com", NEW_PASSWORD).json()
    secrets["login access"], secrets["login refresh"] = tokens["access"], tokens["refresh"]
    rotated = post(api, "/api/auth/refresh", {"refresh": tokens["refresh"]}).json()
    secrets["refreshed access"], secrets["refreshed refresh"] = rotated["access"], rotated["refresh"]
    settings.JWT_REFRESH_REUSE_SECONDS = 0  # no reuse window: the second use is a theft
    assert post(api, "/api/auth/refresh", {"refresh": tokens["refresh"]}).status_code == 401  # reuse
    session = login(api, "leak@example.com", NEW_PASSWORD).json()
    secrets["session access"], secrets["session refresh"] = session["access"], session["refresh"]
    me = APIClient(HTTP_AUTHORIZATION=f"Bearer {session['access']}")
    change = {"current_password": NEW_PASSWORD, "new_password": secrets["changed password"]}
    assert post(me, "/api/auth/change-password", change).status_code == 204
    with django_capture_on_commit_callbacks(execute=True):
        assert post(api, "/api/auth/forgot-password", {"email": "leak@example.com"}).status_code == 202
    secrets["reset token"] = emailed_link_key(RESET_LINK)
    reset = {"token": secrets["reset token"], "password": secrets["reset password"]}
    assert post(api, "/api/auth/reset-password", reset).status_code == 204
    assert post(api, "/api/auth/logout", {"refresh": session["refresh"]}).status_code == 204

    logs = all_logs()
    # The capture sees the request log and the email task's records (which carried the links).
    assert '"logger": "chatfocus.request"' in logs and "/api/auth/login" in logs
    assert '"logger": "celery.app.trace"' in logs and "send_email_task" in logs
    assert_not_logged(logs, secrets)


@pytest.mark.django_db
def test_email_links_opened_on_the_hosted_pages_log_no_key(all_logs, client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post(APIClient(), "/api/auth/register", {"email": "pages@example.com", "password": NEW_PASSWORD})
    confirm_key = emailed_link_key(CONFIRM_LINK)
    assert client.get(f"/account/confirm-email/{confirm_key}/").status_code == 200
    assert client.post(f"/account/confirm-email/{confirm_key}/").status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        post(APIClient(), "/api/auth/forgot-password", {"email": "pages@example.com"})
    reset_key = emailed_link_key(RESET_LINK)
    form = client.get(f"/account/password/reset/key/{reset_key}/", follow=True)
    assert form.status_code == 200
    new_password = "hosted-reset-passphrase-31"
    done = client.post(form.redirect_chain[-1][0], {"password1": new_password, "password2": new_password})
    assert done.status_code == 302
    assert User.objects.get(email="pages@example.com").check_password(new_password)
    logs = all_logs()
    assert "/account/confirm-email/" in logs and "/account/password/reset/key/" in logs
    assert_not_logged(logs, {"confirmation key": confirm_key, "reset key": reset_key.split("-", 1)[1]})


@pytest.mark.django_db
def test_oauth_login_logs_no_client_secret_provider_token_or_code(all_logs, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "google": {
            "APPS": [{"client_id": "google-id", "secret": "google-client-secret-xyz"}],
            "SCOPE": ["openid", "profile", "email"],
            "VERIFIED_EMAIL": True,
        }
    }
    settings.OAUTH_REDIRECT_URIS = [REDIRECT_URI]
    with responses.RequestsMock() as provider:
        mock_google(provider, email="leak-oauth@example.com")
        final = run_flow(Client(), "google")
    code = query(final)["code"]
    tokens = exchange(code).json()
    secrets = {
        "client secret": "google-client-secret-xyz",
        "provider access token": "google-access",
        "one-time code": code,
        "access": tokens["access"],
        "refresh": tokens["refresh"],
    }
    assert_not_logged(all_logs(), secrets)


@pytest.mark.django_db
def test_stripe_calls_and_webhooks_log_no_api_key_or_webhook_secret(all_logs, api_client, stripe_fake, stripe_prices):
    subscription_id = subscribe(stripe_fake, UserFactory())
    event = stripe_fake.event("customer.subscription.updated", stripe_fake.objects[subscription_id])
    assert send(api_client, event).status_code == 200
    logs = all_logs()
    assert "stripe" in logs  # the library's DEBUG request lines are captured
    assert_not_logged(logs, {"api key": STRIPE_TEST_KEY, "webhook secret": STRIPE_TEST_WEBHOOK_SECRET})
