"""The `make run` default (SQLite, no Redis, no keys): a user's first steps work on any database.

Marked smoke: `make test` runs them a second time on SQLite. Push and pull: syncsettings/tests/test_smoke.py.
"""

import pytest
from django.test import Client

from accounts.tests.factories import DEFAULT_PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]

PASSWORD = "smoke-Correct-Horse-7"


def test_register_then_log_in_then_read_the_profile(api_client):
    registered = api_client.post(
        "/api/auth/register", {"email": "smoke@example.com", "password": PASSWORD}, format="json"
    )
    assert registered.status_code == 201, registered.json()
    login = api_client.post("/api/auth/login", {"email": "smoke@example.com", "password": PASSWORD}, format="json")
    assert login.status_code == 200, login.json()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {login.json()['access']}")
    me = api_client.get("/api/users/me")
    assert me.status_code == 200 and me.json()["email"] == "smoke@example.com"


def test_hosted_sign_in_page_signs_a_user_in_to_the_account_page(user):
    browser = Client(enforce_csrf_checks=False)
    page = browser.get("/account/login/")
    assert page.status_code == 200 and b'name="password"' in page.content
    signed_in = browser.post("/account/login/", {"login": user.email, "password": "unused"})
    assert signed_in.status_code == 200  # the form again, with the error
    signed_in = browser.post("/account/login/", {"login": user.email, "password": DEFAULT_PASSWORD}, follow=True)
    assert signed_in.status_code == 200
    assert user.email.encode() in browser.get("/account/").content


def test_plans_are_listed_without_stripe_keys(api_client):
    response = api_client.get("/api/subscriptions/plans")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["billing_configured"] is False
    assert [plan["tier"] for plan in body["plans"]] == ["free", "pro", "premium"]
