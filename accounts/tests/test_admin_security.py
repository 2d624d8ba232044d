"""The admin's door: the API's login limits, a second factor for staff, no token text on its pages."""

import json

import pyotp
import pytest
import time_machine
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from django.urls import reverse
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.services import export_user_data, issue_session_tokens
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from chatfocus.tests.test_project import PROD_ENV, run_manage

pytestmark = pytest.mark.django_db

STAFF_EMAIL = "staff@example.com"
# Mid-window of a 30 s TOTP period: the code computed here is the one the server expects.
FROZEN_AT = 1_800_000_015


@pytest.fixture
def staff(db):
    user = UserFactory(email=STAFF_EMAIL, is_staff=True, is_superuser=True)
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    return user


@pytest.fixture
def mfa_required(settings):
    settings.ADMIN_REQUIRE_MFA = True
    return settings


def admin_login(client, password=DEFAULT_PASSWORD, code="", email=STAFF_EMAIL):
    return client.post(
        reverse("admin:login"), {"username": email, "password": password, "code": code, "next": reverse("admin:index")}
    )


def errors(response) -> str:
    return " ".join(response.context["form"].non_field_errors())


def test_admin_login_is_locked_after_the_api_limit_of_wrong_passwords_and_shares_its_counter(
    client, api_client, staff, settings, fresh_rate_limit_window
):
    allowed_failures = int(settings.RATE_LIMITS["login_failures_account"].split("/")[0])
    for _ in range(allowed_failures):
        response = admin_login(client, password="wrong-password-123")
        assert response.status_code == 200 and "correct email" in errors(response).lower()
    locked = admin_login(client)
    assert locked.status_code == 200
    assert "too many failed logins" in errors(locked).lower()
    assert client.get(reverse("admin:index")).status_code == 302
    # The same counter as the API's login: the right password is refused there too.
    api = api_client.post("/api/auth/login", {"email": STAFF_EMAIL, "password": DEFAULT_PASSWORD}, format="json")
    assert api.status_code == 429


def test_api_login_failures_lock_the_admin_login_too(client, api_client, staff, settings, fresh_rate_limit_window):
    allowed_failures = int(settings.RATE_LIMITS["login_failures_account"].split("/")[0])
    for _ in range(allowed_failures):
        api_client.post("/api/auth/login", {"email": STAFF_EMAIL, "password": "wrong-password-1"}, format="json")
    assert "too many failed logins" in errors(admin_login(client)).lower()


def test_staff_without_a_second_factor_cannot_reach_the_admin_when_required(client, staff, mfa_required):
    response = admin_login(client)
    assert response.status_code == 200
    assert "two-factor" in errors(response).lower()
    assert reverse("mfa_index") in response.content.decode()
    assert client.get(reverse("admin:index")).status_code == 302
    # Nor with a session from the hosted pages that had no second factor.
    client.force_login(staff)
    assert client.get(reverse("admin:index")).status_code == 302
    assert client.get(reverse("admin:accounts_user_changelist")).status_code == 302


def test_staff_without_a_second_factor_reach_the_admin_when_not_required(client, staff, settings):
    settings.ADMIN_REQUIRE_MFA = False
    assert admin_login(client).status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


def test_staff_who_enrolled_a_second_factor_need_it_even_when_not_required(client, staff, settings):
    settings.ADMIN_REQUIRE_MFA = False
    secret = pyotp.random_base32()
    Authenticator.objects.create(user=staff, type=Authenticator.Type.TOTP, data={"secret": secret})
    with time_machine.travel(FROZEN_AT, tick=False):
        assert "code" in errors(admin_login(client)).lower()
        assert admin_login(client, code=pyotp.TOTP(secret).now()).status_code == 302


def test_staff_enroll_totp_on_the_account_pages_then_reach_the_admin_with_a_current_code(client, staff, mfa_required):
    with time_machine.travel(FROZEN_AT, tick=False):
        login = client.post(reverse("account_login"), {"login": STAFF_EMAIL, "password": DEFAULT_PASSWORD})
        assert login.status_code == 302
        # allauth asks for the password again before a second factor is added.
        client.post(reverse("account_reauthenticate"), {"password": DEFAULT_PASSWORD})
        setup = client.get(reverse("mfa_activate_totp"))
        assert setup.status_code == 200
        secret = setup.context["form"].secret
        activated = client.post(reverse("mfa_activate_totp"), {"code": pyotp.TOTP(secret).now()})
        assert activated.status_code == 302
        assert Authenticator.objects.filter(user=staff, type=Authenticator.Type.TOTP).exists()
        client.logout()

    with time_machine.travel(FROZEN_AT + 60, tick=False):
        assert "code" in errors(admin_login(client, code="000000")).lower()
        assert client.get(reverse("admin:index")).status_code == 302
        response = admin_login(client, code=pyotp.TOTP(secret).now())
        assert response.status_code == 302 and response["Location"] == reverse("admin:index")
        assert client.get(reverse("admin:index")).status_code == 200


def test_a_recovery_code_opens_the_admin_once(client, staff, mfa_required):
    with time_machine.travel(FROZEN_AT, tick=False):
        Authenticator.objects.create(user=staff, type=Authenticator.Type.TOTP, data={"secret": pyotp.random_base32()})
        recovery_code = RecoveryCodes.activate(staff).get_unused_codes()[0]
        assert admin_login(client, code=recovery_code).status_code == 302
        assert client.get(reverse("admin:index")).status_code == 200
        client.logout()
        assert "code" in errors(admin_login(client, code=recovery_code)).lower()


def test_hosted_login_with_the_second_factor_opens_the_admin(client, staff, mfa_required):
    secret = pyotp.random_base32()
    Authenticator.objects.create(user=staff, type=Authenticator.Type.TOTP, data={"secret": secret})
    with time_machine.travel(FROZEN_AT, tick=False):
        client.post(reverse("account_login"), {"login": STAFF_EMAIL, "password": DEFAULT_PASSWORD})
        assert client.get(reverse("admin:index")).status_code == 302  # password alone: the stage waits
        client.post(reverse("mfa_authenticate"), {"code": pyotp.TOTP(secret).now()})
        assert client.get(reverse("admin:index")).status_code == 200


@pytest.mark.parametrize("page", ["mfa_index", "mfa_activate_totp", "mfa_generate_recovery_codes"])
def test_users_cannot_enroll_a_second_factor_the_api_login_would_never_ask_for(client, page):
    user = UserFactory()
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    client.post(reverse("account_login"), {"login": user.email, "password": DEFAULT_PASSWORD})
    client.post(reverse("account_reauthenticate"), {"password": DEFAULT_PASSWORD})
    for response in (client.get(reverse(page)), client.post(reverse(page), {"code": "123456"})):
        assert response.status_code == 302 and response["Location"] == reverse("account_profile")
    profile = client.get(reverse("account_profile"))
    assert "Two-factor authentication is only for staff accounts." in profile.content.decode()
    assert not Authenticator.objects.exists()


def test_a_users_leftover_second_factor_is_not_asked_for_by_the_hosted_login(client):
    """Enrolled before enrolment became staff-only: the hosted login behaves like the API login."""
    user = UserFactory()
    Authenticator.objects.create(user=user, type=Authenticator.Type.TOTP, data={"secret": pyotp.random_base32()})
    client.post(reverse("account_login"), {"login": user.email, "password": DEFAULT_PASSWORD})
    assert client.get(reverse("account_profile")).status_code == 200


def test_admin_requires_a_second_factor_by_default_in_production():
    code = "from django.conf import settings; print(settings.ADMIN_REQUIRE_MFA)"
    production = run_manage("shell", "-c", code, env_overrides=PROD_ENV)
    assert production.stdout.split()[-1:] == ["True"], production.stderr
    development = run_manage("shell", "-c", code, env_overrides={**PROD_ENV, "DEBUG": "1"})
    assert development.stdout.split()[-1:] == ["False"], development.stderr


def test_token_admin_pages_never_show_a_refresh_token(client, staff):
    _, refresh, _ = issue_session_tokens(user=UserFactory(), device_name="laptop", user_agent="pytest")
    outstanding = OutstandingToken.objects.get(token=refresh)
    blacklisted = BlacklistedToken.objects.create(token=outstanding)
    client.force_login(staff)
    pages = [
        reverse("admin:token_blacklist_outstandingtoken_changelist"),
        reverse("admin:token_blacklist_outstandingtoken_change", args=[outstanding.pk]),
        reverse("admin:token_blacklist_blacklistedtoken_changelist"),
        reverse("admin:token_blacklist_blacklistedtoken_change", args=[blacklisted.pk]),
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert outstanding.jti in html
        assert refresh not in html and refresh.split(".")[1] not in html
    assert (
        client.post(reverse("admin:token_blacklist_blacklistedtoken_delete", args=[blacklisted.pk])).status_code == 403
    )
    assert BlacklistedToken.objects.filter(pk=blacklisted.pk).exists()


def test_the_export_lists_second_factors_but_never_their_secrets(staff):
    secret = pyotp.random_base32()
    Authenticator.objects.create(user=staff, type=Authenticator.Type.TOTP, data={"secret": secret})
    export = export_user_data(user=staff)
    assert [factor["type"] for factor in export["second_factors"]] == ["totp"]
    assert secret not in json.dumps(export)
