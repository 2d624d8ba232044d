"""Hosted pages without a browser: access control, CSRF, cookies."""

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from rest_framework.test import APIClient

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

ACCOUNT_PAGES = [
    "/account/",
    "/account/connections/",
    "/account/sessions/",
    "/account/billing/",
    "/account/export/",
    "/account/delete/",
]


@pytest.mark.parametrize("path", ACCOUNT_PAGES)
def test_account_pages_send_anonymous_visitors_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/account/login/?next={path}"


@pytest.mark.parametrize("path", ["/account/", "/account/export/", "/account/delete/"])
def test_account_forms_reject_posts_without_csrf_token(path):
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory())
    response = client.post(path, {"save_profile": "1", "name": "Mallory"})
    assert response.status_code == 403
    assert b"This form has expired" in response.content


def test_login_sets_a_secure_httponly_lax_session_cookie(client):
    user = UserFactory()
    response = client.post("/account/login/", {"login": user.email, "password": "correct-horse-battery-staple"})
    assert response.status_code == 302
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] is True
    assert cookie["secure"] is True
    assert cookie["samesite"] == "Lax"


def test_hosted_page_logins_count_in_the_login_metrics(client):
    from chatfocus import metrics

    def logins(outcome):
        return metrics.LOGINS.labels(method="password", outcome=outcome)._value.get()

    user = UserFactory()
    successes, failures = logins("success"), logins("failure")
    assert client.post("/account/login/", {"login": user.email, "password": "wrong-password"}).status_code == 200
    assert (
        client.post("/account/login/", {"login": user.email, "password": "correct-horse-battery-staple"}).status_code
        == 302
    )
    assert (logins("success"), logins("failure")) == (successes + 1, failures + 1)


def test_api_responses_set_no_cookies_even_for_a_logged_in_browser(client):
    client.force_login(UserFactory())
    response = client.get("/api/no-such-endpoint")
    assert response.status_code == 404
    assert not response.cookies


def test_server_error_page_renders_without_session_or_database(rf):
    from chatfocus.views import server_error

    request = rf.get("/account/")
    response = server_error(request)
    assert response.status_code == 500
    assert b"Something went wrong" in response.content


# --- the hosted pages count against the API's limits ----------------------------------------------


def test_hosted_password_reset_shares_the_apis_per_address_limit(
    fresh_rate_limit_window, django_capture_on_commit_callbacks
):

    UserFactory(email="ada@example.com")
    limit = int(settings.RATE_LIMITS["forgot_email"].split("/")[0])
    browser = Client()
    with django_capture_on_commit_callbacks(execute=True):
        api = APIClient().post("/api/auth/forgot-password", {"email": "ada@example.com"}, format="json")
        assert api.status_code == 202
        for n in range(limit - 1):
            response = browser.post("/account/password/reset/", {"email": "Ada@Example.com"}, REMOTE_ADDR=f"10.3.0.{n}")
            assert response.status_code == 302
        refused = browser.post("/account/password/reset/", {"email": "ada@example.com"}, REMOTE_ADDR="10.3.1.1")
    assert refused.status_code == 200 and "Too many requests" in str(refused.context["form"].errors)
    assert len(mail.outbox) == limit
    blocked = APIClient().post("/api/auth/forgot-password", {"email": "ada@example.com"}, format="json")
    assert blocked.status_code == 429


def test_hosted_login_shares_the_apis_login_counters(fresh_rate_limit_window):

    user = UserFactory(email="ada@example.com")
    limit = int(settings.RATE_LIMITS["login_failures_account"].split("/")[0])
    for n in range(limit - 1):
        response = Client().post(
            "/account/login/", {"login": "Ada@Example.com", "password": "wrong"}, REMOTE_ADDR=f"10.4.0.{n}"
        )
        assert response.status_code == 200 and response.context["form"].errors
    api = APIClient().post("/api/auth/login", {"email": user.email, "password": "wrong"}, format="json")
    assert api.status_code == 401
    # The limit is reached across both doors: the right password is refused on each.
    locked = Client().post(
        "/account/login/", {"login": user.email, "password": DEFAULT_PASSWORD}, REMOTE_ADDR="10.4.1.1"
    )
    assert locked.status_code == 200 and "Too many requests" in str(locked.context["form"].errors)
    assert "_auth_user_id" not in locked.client.session
    api = APIClient().post("/api/auth/login", {"email": user.email, "password": DEFAULT_PASSWORD}, format="json")
    assert api.status_code == 429


def test_hosted_logins_count_against_the_apis_per_ip_limit(fresh_rate_limit_window):

    user = UserFactory()
    limit = int(settings.RATE_LIMITS["login_ip"].split("/")[0])
    for _ in range(limit):
        Client().post("/account/login/", {"login": user.email, "password": DEFAULT_PASSWORD}, REMOTE_ADDR="10.5.0.1")
    body = {"email": user.email, "password": DEFAULT_PASSWORD}
    assert APIClient().post("/api/auth/login", body, format="json", REMOTE_ADDR="10.5.0.1").status_code == 429


def test_hosted_email_change_needs_the_current_password():
    from accounts.models import User

    user = UserFactory(email="ada@example.com", name="Ada")
    browser = Client()
    browser.force_login(user)
    form = {"save_profile": "1", "name": "Ada", "email": "new@example.com", "locale": "en", "timezone": "UTC"}
    refused = browser.post("/account/", form)
    assert refused.status_code == 200 and refused.context["profile_form"].errors
    assert User.objects.get(id=user.id).pending_email == ""
    assert browser.post("/account/", {**form, "current_password": DEFAULT_PASSWORD}).status_code == 302
    assert User.objects.get(id=user.id).pending_email == "new@example.com"


@pytest.mark.parametrize("action", ["action_add", "action_primary"])
def test_the_email_page_never_changes_the_address_without_the_password(action):
    from allauth.account.models import EmailAddress

    user = UserFactory(email="ada@example.com")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    EmailAddress.objects.create(user=user, email="other@example.com", primary=False, verified=True)
    browser = Client()
    browser.force_login(user)
    response = browser.post("/account/email/", {action: "1", "email": "other@example.com"})
    assert response.status_code == 302 and response["Location"] == "/account/"
    user.refresh_from_db()
    assert user.email == "ada@example.com"
    assert not EmailAddress.objects.filter(user=user, email="other@example.com", primary=True).exists()
