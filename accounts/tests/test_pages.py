"""Hosted pages without a browser: access control, CSRF, cookies."""

import pytest
from django.test import Client

from accounts.tests.factories import UserFactory

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
