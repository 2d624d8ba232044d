"""Extension OAuth login (Google, GitHub) through allauth, offline: the providers' HTTP is mocked with `responses`."""

from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Session, User
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

REDIRECT_URI = "https://abcdefghijklmnopabcdefghijklmnop.chromiumapp.org/"
FIREFOX_REDIRECT_URI = "https://0123abcd-0000-4000-8000-000000000000.extensions.allizom.org/"
GOOGLE_TOKEN = "https://oauth2.googleapis.com/token"
GOOGLE_USERINFO = "https://www.googleapis.com/oauth2/v2/userinfo"
GITHUB_TOKEN = "https://github.com/login/oauth/access_token"
GITHUB_USER = "https://api.github.com/user"
GITHUB_EMAILS = "https://api.github.com/user/emails"


@pytest.fixture(autouse=True)
def providers(settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "google": {
            "APPS": [{"client_id": "google-id", "secret": "google-secret"}],
            "SCOPE": ["openid", "profile", "email"],
            "VERIFIED_EMAIL": True,
        },
        "github": {
            "APPS": [{"client_id": "github-id", "secret": "github-secret"}],
            "SCOPE": ["read:user", "user:email"],
        },
    }
    settings.OAUTH_REDIRECT_URIS = [REDIRECT_URI, FIREFOX_REDIRECT_URI]


def query(url: str) -> dict:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def mock_google(rsps, *, email="ada@gmail.com", verified=True, sub="google-1"):
    rsps.post(GOOGLE_TOKEN, json={"access_token": "google-access", "token_type": "Bearer", "expires_in": 3600})
    rsps.get(
        GOOGLE_USERINFO,
        json={
            "id": sub,
            "email": email,
            "verified_email": verified,
            "name": "Ada Lovelace",
            "given_name": "Ada",
            "family_name": "Lovelace",
        },
    )


def mock_github(rsps, *, emails, uid=4242):
    rsps.post(
        GITHUB_TOKEN, json={"access_token": "github-access", "token_type": "bearer", "scope": "read:user,user:email"}
    )
    rsps.get(GITHUB_USER, json={"id": uid, "login": "octocat", "name": "Mona Octocat", "email": None})
    rsps.get(GITHUB_EMAILS, json=emails)


def run_flow(browser: Client, provider: str, *, redirect_uri=REDIRECT_URI, callback_params=None) -> str:
    """Start, come back from the provider and finish; returns the final redirect to the extension."""
    start = browser.get(f"/api/auth/oauth/{provider}", {"redirect_uri": redirect_uri})
    assert start.status_code == 302, start.content
    state = query(start["Location"])["state"]
    callback = browser.get(
        f"/account/{provider}/login/callback/", callback_params or {"code": "provider-code", "state": state}
    )
    assert callback.status_code == 302, callback.content
    if callback["Location"].startswith(redirect_uri):
        return callback["Location"]
    assert callback["Location"] == "/api/auth/oauth/complete"
    final = browser.get(callback["Location"])
    assert final.status_code == 302
    return final["Location"]


def exchange(code, **extra):
    return APIClient().post("/api/auth/oauth/token", {"code": code, **extra}, format="json")


def test_google_login_creates_a_verified_account_and_returns_a_one_time_code():
    browser = Client()
    with responses.RequestsMock() as rsps:
        mock_google(rsps)
        final = run_flow(browser, "google")
    assert final.startswith(REDIRECT_URI)
    code = query(final)["code"]
    response = exchange(code, device_name="Chrome")
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["email"] == "ada@gmail.com" and body["user"]["email_verified"] is True
    assert body["user"]["has_password"] is False and body["user"]["name"] == "Ada Lovelace"
    assert [a["provider"] for a in body["user"]["social_accounts"]] == ["google"]
    session = Session.objects.get(user__email="ada@gmail.com")
    assert (session.method, session.device_name) == ("google", "Chrome")
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {body['access']}").get("/api/users/me").status_code == 200
    # The browser session only carried the login to the code: it is gone.
    assert "_auth_user_id" not in browser.session


def test_the_authorization_request_goes_to_the_provider_with_allauths_state():
    start = Client().get("/api/auth/oauth/google", {"redirect_uri": REDIRECT_URI})
    location = urlsplit(start["Location"])
    assert location.netloc == "accounts.google.com"
    params = query(start["Location"])
    assert params["client_id"] == "google-id" and params["state"]
    assert params["redirect_uri"].endswith("/account/google/login/callback/")


def test_google_login_links_an_existing_account_with_the_same_verified_email():
    user = UserFactory(email="ada@gmail.com")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    with responses.RequestsMock() as rsps:
        mock_google(rsps)
        final = run_flow(Client(), "google")
    body = exchange(query(final)["code"]).json()
    assert body["user"]["id"] == str(user.id)
    assert SocialAccount.objects.get(provider="google").user_id == user.id
    user.refresh_from_db()
    assert user.has_usable_password()  # linking never takes the password away
    assert User.objects.count() == 1


def test_an_unverified_existing_account_is_never_linked():
    user = UserFactory(email="ada@gmail.com")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=False)
    with responses.RequestsMock() as rsps:
        mock_google(rsps)
        final = run_flow(Client(), "google")
    assert final.startswith(REDIRECT_URI)
    assert query(final) == {"error": "account_not_linkable"}
    assert not SocialAccount.objects.exists()
    assert User.objects.count() == 1
    user.refresh_from_db()
    assert user.has_usable_password()


def test_a_provider_email_that_is_not_verified_is_refused():
    with responses.RequestsMock() as rsps:
        mock_github(rsps, emails=[{"email": "mona@example.com", "primary": True, "verified": False}])
        final = run_flow(Client(), "github")
    assert query(final) == {"error": "email_not_verified"}
    assert not User.objects.exists()


def test_github_login_uses_the_primary_verified_email():
    emails = [
        {"email": "old@example.com", "primary": False, "verified": False},
        {"email": "Mona@Example.com", "primary": True, "verified": True},
    ]
    with responses.RequestsMock() as rsps:
        mock_github(rsps, emails=emails)
        final = run_flow(Client(), "github", redirect_uri=FIREFOX_REDIRECT_URI)
    assert final.startswith(FIREFOX_REDIRECT_URI)
    body = exchange(query(final)["code"], redirect_uri=FIREFOX_REDIRECT_URI).json()
    assert body["user"]["email"] == "mona@example.com" and body["user"]["email_verified"] is True
    assert SocialAccount.objects.get(provider="github").uid == "4242"


def test_second_login_with_the_same_provider_account_reuses_the_user():
    for _ in range(2):
        with responses.RequestsMock() as rsps:
            mock_google(rsps)
            final = run_flow(Client(), "google")
        assert exchange(query(final)["code"]).status_code == 200
    assert User.objects.count() == 1 and Session.objects.count() == 2


def test_the_code_works_once():
    with responses.RequestsMock() as rsps:
        mock_google(rsps)
        code = query(run_flow(Client(), "google"))["code"]
    assert exchange(code).status_code == 200
    again = exchange(code)
    assert again.status_code == 400 and "code" in again.json()["error"]["fields"]


def test_the_code_expires_after_60_seconds():
    with responses.RequestsMock() as rsps:
        mock_google(rsps)
        code = query(run_flow(Client(), "google"))["code"]
    from accounts.oauth import _code_key

    assert 0 < cache.ttl(_code_key(code)) <= 60
    cache.delete(_code_key(code))  # what Redis does when the 60 s are over
    assert exchange(code).status_code == 400


def test_the_code_is_bound_to_its_redirect_uri():
    with responses.RequestsMock() as rsps:
        mock_google(rsps)
        code = query(run_flow(Client(), "google"))["code"]
    response = exchange(code, redirect_uri=FIREFOX_REDIRECT_URI)
    assert response.status_code == 400 and "redirect_uri" in response.json()["error"]["fields"]
    assert exchange(code).status_code == 400  # and it is used up


@pytest.mark.parametrize("code", ["made-up", "x" * 43])
def test_unknown_codes_are_refused(code):
    response = exchange(code)
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "redirect_uri",
    ["https://evil.example.com/", "https://abcdefghijklmnopabcdefghijklmnop.chromiumapp.org/other", "not a url", ""],
)
def test_unlisted_or_bad_redirect_uri_is_400(redirect_uri):
    response = Client().get("/api/auth/oauth/google", {"redirect_uri": redirect_uri})
    assert response.status_code == 400
    assert "redirect_uri" in response.json()["error"]["fields"]


def test_missing_redirect_uri_is_400():
    assert Client().get("/api/auth/oauth/github").status_code == 400


def test_unknown_provider_is_404():
    response = Client().get("/api/auth/oauth/facebook", {"redirect_uri": REDIRECT_URI})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_unconfigured_provider_is_503(settings):
    settings.SOCIALACCOUNT_PROVIDERS = {"google": {"APPS": []}, "github": {"APPS": []}}
    response = Client().get("/api/auth/oauth/github", {"redirect_uri": REDIRECT_URI})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_not_configured"
    assert response["Retry-After"]


def test_state_mismatch_redirects_with_an_error_and_logs_nobody_in():
    browser = Client()
    with responses.RequestsMock():
        final = run_flow(browser, "google", callback_params={"code": "provider-code", "state": "forged-state"})
    assert query(final) == {"error": "state_mismatch"}
    assert not User.objects.exists()


def test_user_denial_redirects_with_access_denied():
    browser = Client()
    start = browser.get("/api/auth/oauth/google", {"redirect_uri": REDIRECT_URI})
    state = query(start["Location"])["state"]
    callback = browser.get("/account/google/login/callback/", {"error": "access_denied", "state": state})
    assert callback.status_code == 302
    assert callback["Location"] == f"{REDIRECT_URI}?error=access_denied"


def test_provider_failure_redirects_with_provider_error():
    browser = Client()
    with responses.RequestsMock() as rsps:
        rsps.post(GOOGLE_TOKEN, status=500, json={"error": "server_error"})
        final = run_flow(browser, "google")
    assert query(final) == {"error": "provider_error"}
    assert not User.objects.exists()


def test_complete_without_a_pending_login_is_400():
    response = Client().get("/api/auth/oauth/complete")
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


def test_a_browser_signed_in_to_the_hosted_pages_can_still_log_the_extension_in():
    browser = Client()
    browser.force_login(UserFactory(email="someone@example.com"))
    with responses.RequestsMock() as rsps:
        mock_google(rsps)
        final = run_flow(browser, "google")
    body = exchange(query(final)["code"]).json()
    assert body["user"]["email"] == "ada@gmail.com"
