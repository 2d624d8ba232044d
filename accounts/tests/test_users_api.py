"""/api/users/me, its settings, export and deletion."""

import re
from datetime import timedelta

import pytest
import time_machine
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.core import mail
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Preferences, User
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory, access_token_for

pytestmark = pytest.mark.django_db


def error(response):
    return response.json()["error"]


# --- profile ------------------------------------------------------------------------------


def test_me_shows_the_account(auth_client):
    user = UserFactory(email="me@example.com", name="Me")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    SocialAccount.objects.create(user=user, provider="github", uid="42")
    body = auth_client(user).get("/api/users/me").json()
    assert body["id"] == str(user.id) and body["email"] == "me@example.com" and body["name"] == "Me"
    assert (body["locale"], body["timezone"], body["tier"]) == ("en", "UTC", "free")
    assert body["email_verified"] is True and body["has_password"] is True and body["pending_email"] is None
    assert [(a["provider"], a["uid"]) for a in body["social_accounts"]] == [("github", "42")]
    assert body["date_joined"]


def test_me_requires_authentication():
    response = APIClient().get("/api/users/me")
    assert response.status_code == 401 and error(response)["code"] == "not_authenticated"


def test_patch_me_changes_name_locale_and_timezone_stored_with_the_preferences(auth_client):
    client = auth_client()
    response = client.patch(
        "/api/users/me", {"name": "Ada L.", "locale": "pt", "timezone": "Europe/Lisbon"}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["locale"], response.json()["timezone"]) == (
        "Ada L.",
        "pt",
        "Europe/Lisbon",
    )
    preferences = Preferences.objects.get(user=client.user)
    assert (preferences.locale, preferences.timezone) == ("pt", "Europe/Lisbon")
    assert client.get("/api/users/me/settings").json()["timezone"] == "Europe/Lisbon"


def test_put_me_needs_every_writable_field(auth_client):
    client = auth_client()
    response = client.put("/api/users/me", {"name": "Only name"}, format="json")
    assert response.status_code == 400
    assert {"email", "locale", "timezone"} <= set(error(response)["fields"])
    full = {"name": "N", "email": client.user.email, "locale": "de", "timezone": "Europe/Berlin"}
    assert client.put("/api/users/me", full, format="json").json()["locale"] == "de"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"locale": "english please"}, "locale"),
        ({"email": "nope"}, "email"),
        ({"tier": "premium"}, "tier"),
        ({"name": "x" * 151}, "name"),
    ],
)
def test_patch_me_validation(auth_client, body, field):
    response = auth_client().patch("/api/users/me", body, format="json")
    assert response.status_code == 400 and field in error(response)["fields"]


def verified_user(email: str, **fields) -> User:
    user = UserFactory(email=email, **fields)
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
    return user


@pytest.mark.parametrize("method", ["patch", "put"])
@pytest.mark.parametrize("password", [None, "", "not-my-password"])
def test_email_change_without_the_current_password_is_403(auth_client, method, password):
    client = auth_client(verified_user("old@example.com"))
    body = {"name": "N", "email": "attacker@example.com", "locale": "en", "timezone": "UTC"}
    if password is not None:
        body["current_password"] = password
    response = getattr(client, method)("/api/users/me", body, format="json")
    assert response.status_code == 403 and error(response)["code"] == "permission_denied"
    user = User.objects.get(id=client.user.id)
    assert (user.email, user.pending_email, user.name) == ("old@example.com", "", client.user.name)
    assert not EmailAddress.objects.filter(email="attacker@example.com").exists() and not mail.outbox


def test_email_change_of_an_account_without_password_needs_a_login_from_the_last_10_minutes(auth_client):
    user = verified_user("old@example.com")
    user.set_unusable_password()
    user.save()
    client = auth_client(user)
    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        stale = client.patch("/api/users/me", {"email": "new@example.com"}, format="json")
    assert stale.status_code == 403 and error(stale)["code"] == "permission_denied"
    assert client.patch("/api/users/me", {"email": "new@example.com"}, format="json").status_code == 200


def test_email_change_applies_when_confirmed_and_tells_the_old_address_with_an_undo_link(
    auth_client, django_capture_on_commit_callbacks
):
    client = auth_client(verified_user("old@example.com"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.patch(
            "/api/users/me", {"email": "New@Example.com", "current_password": DEFAULT_PASSWORD}, format="json"
        )
    assert response.status_code == 200
    assert response.json()["email"] == "old@example.com" and response.json()["pending_email"] == "new@example.com"
    (message,) = mail.outbox
    assert message.to == ["new@example.com"] and "new" in message.subject.lower()
    key = re.search(r"/account/confirm-email/(\S+)/", message.body).group(1)
    with django_capture_on_commit_callbacks(execute=True):
        assert APIClient().post("/api/auth/verify-email", {"key": key}, format="json").status_code == 204
    body = client.get("/api/users/me").json()
    assert (body["email"], body["pending_email"], body["email_verified"]) == ("new@example.com", None, True)
    assert list(EmailAddress.objects.filter(user=client.user).values_list("email", flat=True)) == ["new@example.com"]
    notice = mail.outbox[-1]
    assert notice.to == ["old@example.com"] and "changed" in notice.subject.lower()
    assert "new@example.com" in notice.body and re.search(r"/account/email/undo/\S+/", notice.body)


def test_the_undo_link_restores_the_old_email_and_signs_out_every_session(
    auth_client, django_capture_on_commit_callbacks
):
    victim = verified_user("victim@example.com")
    api_sessions = [auth_client(victim), auth_client(victim)]
    browser = Client()
    browser.force_login(victim)
    thief = api_sessions[0]
    with django_capture_on_commit_callbacks(execute=True):
        thief.patch(
            "/api/users/me", {"email": "thief@example.com", "current_password": DEFAULT_PASSWORD}, format="json"
        )
    key = re.search(r"/account/confirm-email/(\S+)/", mail.outbox[-1].body).group(1)
    with django_capture_on_commit_callbacks(execute=True):
        APIClient().post("/api/auth/verify-email", {"key": key}, format="json")
    assert User.objects.get(id=victim.id).email == "thief@example.com"
    undo_path = re.search(r"https?://[^/]+(/account/email/undo/\S+/)", mail.outbox[-1].body).group(1)

    assert Client().get(undo_path).status_code == 200  # a button, so a mail scanner opening the link changes nothing
    assert User.objects.get(id=victim.id).email == "thief@example.com"
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post(undo_path)
    assert response.status_code == 302
    victim.refresh_from_db()
    assert (victim.email, victim.pending_email, victim.has_usable_password()) == ("victim@example.com", "", False)
    assert list(EmailAddress.objects.filter(user=victim).values_list("email", "verified")) == [
        ("victim@example.com", True)
    ]
    for client in api_sessions:
        assert client.get("/api/users/me").status_code == 401
        assert (
            APIClient().post("/api/auth/refresh", {"refresh": client.refresh_token}, format="json").status_code == 401
        )
    assert browser.get("/account/").status_code == 302  # the hosted session is gone too
    reset = mail.outbox[-1]
    assert reset.to == ["victim@example.com"] and "/account/password/reset/key/" in reset.body
    # The link works once.
    assert Client().post(undo_path).status_code == 400


def test_an_undo_link_expires_after_7_days(auth_client, django_capture_on_commit_callbacks):
    client = auth_client(verified_user("old@example.com"))
    with django_capture_on_commit_callbacks(execute=True):
        client.patch("/api/users/me", {"email": "new@example.com", "current_password": DEFAULT_PASSWORD}, format="json")
    key = re.search(r"/account/confirm-email/(\S+)/", mail.outbox[-1].body).group(1)
    with django_capture_on_commit_callbacks(execute=True):
        APIClient().post("/api/auth/verify-email", {"key": key}, format="json")
    undo_path = re.search(r"https?://[^/]+(/account/email/undo/\S+/)", mail.outbox[-1].body).group(1)
    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=1)):
        assert Client().post(undo_path).status_code == 400
    assert User.objects.get(id=client.user.id).email == "new@example.com"


def test_email_change_to_an_address_in_use_is_refused(auth_client):
    UserFactory(email="taken@example.com")
    client = auth_client()
    body = {"email": "taken@example.com", "current_password": DEFAULT_PASSWORD}
    response = client.patch("/api/users/me", body, format="json")
    assert response.status_code == 400 and "email" in error(response)["fields"]


def test_email_change_is_refused_on_confirmation_if_someone_took_the_address_meanwhile(
    auth_client, django_capture_on_commit_callbacks
):
    client = auth_client(UserFactory(email="first@example.com"))
    with django_capture_on_commit_callbacks(execute=True):
        body = {"email": "contested@example.com", "current_password": DEFAULT_PASSWORD}
        client.patch("/api/users/me", body, format="json")
    key = re.search(r"/account/confirm-email/(\S+)/", mail.outbox[-1].body).group(1)
    UserFactory(email="contested@example.com")
    response = APIClient().post("/api/auth/verify-email", {"key": key}, format="json")
    assert response.status_code == 400
    assert User.objects.get(id=client.user.id).email == "first@example.com"


# --- settings -----------------------------------------------------------------------------


def test_settings_defaults(auth_client):
    assert auth_client().get("/api/users/me/settings").json() == {
        "analytics_opt_in": False,
        "product_emails": True,
        "marketing_emails": False,
        "locale": "en",
        "timezone": "UTC",
    }


def test_settings_patch_put_and_strict_validation(auth_client):
    client = auth_client()
    response = client.patch("/api/users/me/settings", {"analytics_opt_in": True}, format="json")
    assert response.status_code == 200 and response.json()["analytics_opt_in"] is True
    from accounts.services import get_analytics_opt_in

    assert get_analytics_opt_in(user_id=client.user.id) is True
    unknown = client.patch("/api/users/me/settings", {"analytics_opt_in": False, "dark_mode": True}, format="json")
    assert unknown.status_code == 400 and error(unknown)["fields"] == {"dark_mode": ["Unknown field."]}
    assert client.get("/api/users/me/settings").json()["analytics_opt_in"] is True  # nothing applied
    partial_put = client.put("/api/users/me/settings", {"analytics_opt_in": False}, format="json")
    assert partial_put.status_code == 400
    full = {
        "analytics_opt_in": False,
        "product_emails": False,
        "marketing_emails": True,
        "locale": "fr",
        "timezone": "Europe/Paris",
    }
    assert client.put("/api/users/me/settings", full, format="json").json() == full
    assert client.get("/api/users/me").json()["locale"] == "fr"
    bad = client.patch("/api/users/me/settings", {"timezone": "Nowhere", "product_emails": "maybe"}, format="json")
    assert bad.status_code == 400 and set(error(bad)["fields"]) == {"timezone", "product_emails"}


def test_settings_body_must_be_an_object(auth_client):
    response = auth_client().patch("/api/users/me/settings", [1, 2], format="json")
    assert response.status_code == 400


# --- delete: identity checks (the cascade is in test_account_lifecycle) -----------------


def test_delete_needs_the_right_password(auth_client):
    client = auth_client()
    missing = client.delete("/api/users/me", {}, format="json")
    wrong = client.delete("/api/users/me", {"password": "wrong"}, format="json")
    for response in (missing, wrong):
        assert response.status_code == 400 and "password" in error(response)["fields"]
    assert User.objects.filter(id=client.user.id).exists()


def test_oauth_only_account_needs_a_recent_login_to_delete(auth_client):
    user = UserFactory()
    user.set_unusable_password()
    user.save()
    client = auth_client(user)
    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        client.credentials(HTTP_AUTHORIZATION="Bearer " + access_token_for(client.auth_session))
        response = client.delete("/api/users/me", {}, format="json")
    assert response.status_code == 403 and error(response)["code"] == "permission_denied"
    assert User.objects.filter(id=user.id).exists()
