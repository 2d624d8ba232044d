"""Extension OAuth login (Google, GitHub) through allauth, offline: the providers' HTTP is mocked with `responses`."""

from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.core import mail
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Session, User
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory

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
            # A blanket override must not beat Google's own email_verified=false (accounts.adapters).
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


# --- connected providers (DESIGN §3): only provider-verified emails, never before the account's own proof ----------


def hosted_flow(browser: Client, provider: str, *, process: str = "login"):
    """A provider login or connection from the hosted pages; returns allauth's response to the callback."""
    start = browser.post(f"/account/{provider}/login/", {"process": process})
    assert start.status_code == 302, start.content
    return browser.get(
        f"/account/{provider}/login/callback/", {"code": "provider-code", "state": query(start["Location"])["state"]}
    )


def test_pre_registration_takeover_journey_ends_at_the_victims_first_proof(django_capture_on_commit_callbacks):
    """The attacker registers the victim's address and tries to keep a way in through their own GitHub."""
    attacker = Client()
    signup = attacker.post(
        "/account/signup/",
        {"email": "victim@example.com", "password1": "attackers-pass-123", "password2": "attackers-pass-123"},
    )
    assert signup.status_code == 302
    account = User.objects.get(email="victim@example.com")
    attacker_github = [{"email": "mallory@evil.example", "primary": True, "verified": True}]

    # Connecting a provider needs the account's own address verified: refused, nothing stored.
    with responses.RequestsMock() as rsps:
        mock_github(rsps, emails=attacker_github, uid=666)
        refused = hosted_flow(attacker, "github", process="connect")
    assert refused.status_code == 302 and refused["Location"] == "/account/connections/"
    assert not SocialAccount.objects.exists()

    # A connection made before these rules existed (or by any other way in) does not survive the proof either.
    SocialAccount.objects.create(user=account, provider="github", uid="666")
    attacker_api = exchange_for_session(account)

    # The victim resets the password on the hosted pages: the first proof that the mailbox is theirs.
    victim = Client()
    with django_capture_on_commit_callbacks(execute=True):
        assert victim.post("/account/password/reset/", {"email": "victim@example.com"}).status_code == 302
    (message,) = [m for m in mail.outbox if "/account/password/reset/key/" in m.body]
    link = urlsplit(next(word for word in message.body.split() if "/account/password/reset/key/" in word)).path
    form = victim.get(link, follow=True)
    new_password = {"password1": "victims-own-pass-456", "password2": "victims-own-pass-456"}
    assert victim.post(form.redirect_chain[-1][0], new_password).status_code == 302

    assert not SocialAccount.objects.filter(user=account).exists()
    assert EmailAddress.objects.get(user=account, email="victim@example.com").verified
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {attacker_api}").get("/api/users/me").status_code == 401
    assert attacker.get("/account/").status_code == 302  # the attacker's browser session is gone
    # The attacker's GitHub no longer reaches the account.
    with responses.RequestsMock() as rsps:
        mock_github(rsps, emails=attacker_github, uid=666)
        final = run_flow(Client(), "github")
    assert exchange(query(final)["code"]).json()["user"]["id"] != str(account.id)
    assert SocialAccount.objects.get(uid="666").user.email == "mallory@evil.example"


def exchange_for_session(user) -> str:
    from accounts.services import issue_session_tokens

    access, _, _ = issue_session_tokens(user=user, device_name="attacker")
    return access


@pytest.mark.parametrize("link", ["api", "hosted"])
def test_the_first_confirmation_link_disconnects_earlier_providers_and_signs_out_every_session(auth_client, link):
    user = UserFactory(email="victim@example.com")
    address = EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=False)
    SocialAccount.objects.create(user=user, provider="github", uid="666")
    client = auth_client(user)
    browser = Client()
    assert browser.post("/account/login/", {"login": user.email, "password": DEFAULT_PASSWORD}).status_code == 302
    assert browser.get("/account/").status_code == 200
    from allauth.account.models import EmailConfirmationHMAC

    key = EmailConfirmationHMAC(address).key
    if link == "api":
        assert APIClient().post("/api/auth/verify-email", {"key": key}, format="json").status_code == 204
    else:
        assert Client().post(f"/account/confirm-email/{key}/").status_code == 302
    assert EmailAddress.objects.get(id=address.id).verified
    assert not SocialAccount.objects.exists()
    assert client.get("/api/users/me").status_code == 401
    assert browser.get("/account/")["Location"] == "/account/login/?next=/account/"


@pytest.mark.parametrize("flow", ["extension", "hosted"])
@pytest.mark.parametrize("provider", ["github", "google"])
@pytest.mark.parametrize("existing", [None, "verified", "unverified"])
def test_a_provider_email_the_provider_did_not_verify_never_creates_or_links_an_account(flow, provider, existing):
    """GitHub `verified: false`, Google `email_verified: false`: no account is created, none is linked."""
    if existing:
        user = UserFactory(email="mona@example.com")
        EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=existing == "verified")
    users_before = User.objects.count()
    browser = Client()
    with responses.RequestsMock() as rsps:
        if provider == "github":
            mock_github(rsps, emails=[{"email": "mona@example.com", "primary": True, "verified": False}])
        else:
            mock_google(rsps, email="mona@example.com", verified=False)
        if flow == "extension":
            final = run_flow(browser, provider)
            assert query(final) == {"error": "email_not_verified"}
        else:
            response = hosted_flow(browser, provider)
            assert response.status_code == 302 and response["Location"] == "/account/login/"
    assert not SocialAccount.objects.exists()
    assert User.objects.count() == users_before
    assert "_auth_user_id" not in browser.session


def test_github_never_gives_a_new_account_an_address_it_did_not_verify():
    emails = [
        {"email": "public@example.com", "primary": True, "verified": False},
        {"email": "work@example.com", "primary": False, "verified": True},
    ]
    with responses.RequestsMock() as rsps:
        rsps.post(GITHUB_TOKEN, json={"access_token": "t", "token_type": "bearer", "scope": "read:user,user:email"})
        rsps.get(GITHUB_USER, json={"id": 7, "login": "mona", "name": "Mona", "email": "public@example.com"})
        rsps.get(GITHUB_EMAILS, json=emails)
        final = run_flow(Client(), "github")
    body = exchange(query(final)["code"]).json()
    assert body["user"]["email"] == "work@example.com"
    assert list(EmailAddress.objects.values_list("email", "verified")) == [("work@example.com", True)]


def test_a_verified_account_connects_github_with_a_verified_address():
    user = UserFactory(email="ada@example.com")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    browser = Client()
    assert browser.post("/account/login/", {"login": user.email, "password": DEFAULT_PASSWORD}).status_code == 302
    with responses.RequestsMock() as rsps:
        mock_github(rsps, emails=[{"email": "ada@github.example", "primary": True, "verified": True}])
        response = hosted_flow(browser, "github", process="connect")
    assert response.status_code == 302
    assert SocialAccount.objects.get(provider="github").user_id == user.id


def test_connecting_a_provider_that_did_not_verify_its_email_is_refused():
    user = UserFactory(email="ada@example.com")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    browser = Client()
    browser.force_login(user)
    with responses.RequestsMock() as rsps:
        mock_github(rsps, emails=[{"email": "ada@github.example", "primary": True, "verified": False}])
        response = hosted_flow(browser, "github", process="connect")
    assert response.status_code == 302 and response["Location"] == "/account/connections/"
    assert not SocialAccount.objects.exists()
