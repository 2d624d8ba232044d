"""GET /api/users/me is served from the cache, and every write that changes what it shows invalidates it."""

from datetime import timedelta

import pytest
from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from allauth.account.utils import user_pk_to_url_str
from allauth.socialaccount.models import SocialAccount
from django.core.cache import caches
from django.utils import timezone

from accounts import services
from accounts.models import User
from accounts.tests.factories import UserFactory
from billing.services import grant_comp_tier

pytestmark = pytest.mark.django_db


def me(client) -> dict:
    response = client.get("/api/users/me")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_repeated_me_is_answered_without_a_database_query(auth_client, django_assert_num_queries):
    client = auth_client()
    first = me(client)
    with django_assert_num_queries(0):
        assert me(client) == first


def test_a_repeated_me_costs_one_cache_round_trip(auth_client, monkeypatch):
    # The session state, the profile, its version and billing's entitlements in one batch.
    client = auth_client()
    me(client)
    backend, calls = caches["default"], []

    def counted(name):
        real = getattr(backend, name)

        def call(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)

        return call

    for name in ("get", "get_many"):
        monkeypatch.setattr(backend, name, counted(name))
    assert me(client)["tier"] == "free"
    assert calls == ["get_many"]


def test_patching_the_name_shows_at_once(auth_client):
    client = auth_client()
    me(client)
    client.patch("/api/users/me", {"name": "New Name"}, format="json")
    assert me(client)["name"] == "New Name"


def test_changing_locale_and_timezone_in_the_preferences_shows_in_me(auth_client):
    client = auth_client()
    me(client)
    response = client.patch("/api/users/me/settings", {"locale": "de", "timezone": "Europe/Berlin"}, format="json")
    assert response.status_code == 200
    assert (me(client)["locale"], me(client)["timezone"]) == ("de", "Europe/Berlin")


def test_verifying_the_email_shows_in_me(auth_client):
    user = UserFactory()
    address = EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=False)
    client = auth_client(user)
    assert me(client)["email_verified"] is False
    response = client.post("/api/auth/verify-email", {"key": EmailConfirmationHMAC(address).key}, format="json")
    assert response.status_code == 204
    # A first proof of the address signs every session out: a new one reads the profile.
    assert me(auth_client(user))["email_verified"] is True


def test_resetting_the_password_marks_the_email_verified_in_me(auth_client):
    user = UserFactory()
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=False)
    assert me(auth_client(user))["email_verified"] is False
    token = f"{user_pk_to_url_str(user)}-{default_token_generator.make_token(user)}"
    response = auth_client().post(
        "/api/auth/reset-password", {"token": token, "password": "a-brand-new-passphrase"}, format="json"
    )
    assert response.status_code == 204
    # The reset signed every session out: a new one reads the profile.
    assert me(auth_client(user))["email_verified"] is True


def test_writes_outside_our_services_show_too(auth_client):
    # The admin and allauth's hosted pages save these rows themselves.
    user = UserFactory()
    client = auth_client(user)
    assert me(client)["social_accounts"] == [] and me(client)["has_password"] is True
    row = User.objects.get(id=user.id)
    row.name = "Renamed By Staff"
    row.set_unusable_password()
    row.save()
    account = SocialAccount.objects.create(user=user, provider="github", uid="42")
    body = me(client)
    assert (body["name"], body["has_password"]) == ("Renamed By Staff", False)
    assert [(a["provider"], a["uid"]) for a in body["social_accounts"]] == [("github", "42")]
    account.delete()
    assert me(client)["social_accounts"] == []


def test_a_tier_change_shows_without_touching_the_profile(auth_client):
    client = auth_client()
    assert me(client)["tier"] == "free"
    grant_comp_tier(user_id=client.user.id, tier="pro", until=timezone.now() + timedelta(days=30), granted_by=None)
    assert me(client)["tier"] == "pro"


def test_a_deactivated_account_is_no_longer_served_from_the_cache(auth_client):
    client = auth_client()
    me(client)
    row = User.objects.get(id=client.user.id)
    row.is_active = False
    row.save()
    response = client.get("/api/users/me")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_a_profile_read_before_a_concurrent_write_is_not_kept_as_current(auth_client, monkeypatch):
    user = UserFactory(name="Old Name")
    client = auth_client(user)
    load = services._load_profile

    def load_then_someone_writes(*, user_id):
        loaded = load(user_id=user_id)  # the old row...
        row = User.objects.get(id=user_id)
        row.name = "New Name"
        row.save()  # ...then a write lands before this reader stores what it read
        return loaded

    monkeypatch.setattr(services, "_load_profile", load_then_someone_writes)
    assert me(client)["name"] == "Old Name"
    monkeypatch.setattr(services, "_load_profile", load)
    assert me(client)["name"] == "New Name"
