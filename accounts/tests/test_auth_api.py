"""The /api/auth endpoints: registration, login, tokens, sessions, password and email flows."""

import re
from datetime import timedelta

import pytest
import time_machine
from allauth.account.models import EmailAddress
from django.conf import settings
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from accounts.models import Session, User
from accounts.services import issue_session_tokens
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory, access_token_for
from chatfocus import metrics

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-much-better-passphrase-42"


def error_code(response):
    return response.json()["error"]["code"]


def post(client, path, data, **extra):
    return client.post(path, data, format="json", **extra)


def login(client, email, password=DEFAULT_PASSWORD, **fields):
    """POST /api/auth/login; upper-case keyword arguments are request META (REMOTE_ADDR, HTTP_…)."""
    meta = {key: value for key, value in fields.items() if key.isupper()}
    data = {key: value for key, value in fields.items() if not key.isupper()}
    return post(client, "/api/auth/login", {"email": email, "password": password, **data}, **meta)


def bearer(access):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def counter(metric, **labels):
    return metric.labels(**labels)._value.get()


# --- register -----------------------------------------------------------------------------


def test_register_creates_an_unverified_account_and_sends_the_verification_email(
    api_client, django_capture_on_commit_callbacks
):
    signups = counter(metrics.SIGNUPS, method="password")
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            api_client, "/api/auth/register", {"email": "Ada@Example.com", "password": NEW_PASSWORD, "name": "Ada"}
        )
    assert response.status_code == 201
    assert set(response.json()) == {"detail"}
    user = User.objects.get(email="ada@example.com")
    assert user.name == "Ada" and user.check_password(NEW_PASSWORD)
    assert EmailAddress.objects.filter(user=user, email="ada@example.com", primary=True, verified=False).exists()
    assert counter(metrics.SIGNUPS, method="password") == signups + 1
    (message,) = mail.outbox
    assert message.to == ["ada@example.com"]
    assert "confirm" in message.subject.lower()
    assert re.search(r"https?://\S+/account/confirm-email/\S+/", message.body)
    assert "/account/confirm-email/" in message.alternatives[0][0]


def test_register_with_an_existing_email_answers_the_same_and_sends_a_notice(
    api_client, django_capture_on_commit_callbacks
):
    UserFactory(email="taken@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        new = post(api_client, "/api/auth/register", {"email": "fresh@example.com", "password": NEW_PASSWORD})
        existing = post(api_client, "/api/auth/register", {"email": "TAKEN@example.com", "password": NEW_PASSWORD})
    assert (new.status_code, new.json()) == (existing.status_code, existing.json())
    assert User.objects.filter(email="taken@example.com").count() == 1
    notice = next(m for m in mail.outbox if m.to == ["taken@example.com"])
    assert "already have" in notice.subject
    assert "/account/password/reset/" in notice.body


@pytest.mark.parametrize(
    "password, message",
    [
        ("short1", "too short"),
        ("password1234", "too common"),
        ("8172635409182", "entirely numeric"),
        ("ada.lovelace", "too similar"),
    ],
)
def test_register_rejects_weak_passwords(api_client, password, message):
    response = post(api_client, "/api/auth/register", {"email": "ada.lovelace@example.com", "password": password})
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert message in " ".join(response.json()["error"]["fields"]["password"])
    assert not User.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"password": NEW_PASSWORD}, "email"),
        ({"email": "not-an-email", "password": NEW_PASSWORD}, "email"),
        ({"email": "a@example.com"}, "password"),
        ({"email": "a@example.com", "password": NEW_PASSWORD, "admin": True}, "admin"),
    ],
)
def test_register_validation_errors(api_client, body, field):
    response = post(api_client, "/api/auth/register", body)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_register_is_rate_limited_per_ip(fresh_rate_limit_window, api_client):
    limit = int(settings.RATE_LIMITS["register_ip"].split("/")[0])
    for n in range(limit):
        assert (
            post(api_client, "/api/auth/register", {"email": f"u{n}@example.com", "password": NEW_PASSWORD}).status_code
            == 201
        )
    response = post(api_client, "/api/auth/register", {"email": "late@example.com", "password": NEW_PASSWORD})
    assert response.status_code == 429
    assert error_code(response) == "rate_limited"
    assert 0 < int(response["Retry-After"]) <= 3600
    assert not User.objects.filter(email="late@example.com").exists()
    other_ip = post(
        api_client,
        "/api/auth/register",
        {"email": "other@example.com", "password": NEW_PASSWORD},
        REMOTE_ADDR="10.0.0.9",
    )
    assert other_ip.status_code == 201


def test_register_is_rate_limited_per_email_alike_for_taken_and_new_addresses(
    fresh_rate_limit_window, api_client, django_capture_on_commit_callbacks
):
    UserFactory(email="victim@example.com")
    limit = int(settings.RATE_LIMITS["register_email"].split("/")[0])
    refusals = []
    for email in ("victim@example.com", "brand-new@example.com"):
        for n in range(limit):
            body = {"email": email, "password": NEW_PASSWORD}
            with django_capture_on_commit_callbacks(execute=True):
                assert post(api_client, "/api/auth/register", body, REMOTE_ADDR=f"10.3.{n}.1").status_code == 201
        refused = post(
            api_client, "/api/auth/register", {"email": email, "password": NEW_PASSWORD}, REMOTE_ADDR="10.3.9.9"
        )
        assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 3600
        refusals.append({**refused.json()["error"], "request_id": None})
    assert refusals[0] == refusals[1]  # the limit tells nothing about which address has an account
    assert len([m for m in mail.outbox if m.to == ["victim@example.com"]]) == limit


def test_passwords_are_stored_with_bcrypt_sha256_at_12_rounds_or_more(api_client, settings):
    from chatfocus import settings as project_settings

    # The shipped setting, not conftest's fast MD5 stand-in.
    settings.PASSWORD_HASHERS = project_settings.PASSWORD_HASHERS
    post(api_client, "/api/auth/register", {"email": "bcrypt@example.com", "password": NEW_PASSWORD})
    stored = User.objects.get(email="bcrypt@example.com").password
    algorithm, bcrypt_hash = stored.split("$", 1)
    assert algorithm == "bcrypt_sha256"
    match = re.match(r"\$2b\$(\d\d)\$", bcrypt_hash)
    assert match and int(match.group(1)) >= 12, stored


def test_login_upgrades_an_old_hash(api_client, settings):
    user = UserFactory()  # MD5 under the test hasher
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    assert login(api_client, user.email).status_code == 200
    user.refresh_from_db()
    assert user.password.startswith("bcrypt_sha256$$2b$12$")


# --- login ------------------------------------------------------------------------------


def test_login_returns_tokens_user_and_records_the_session(api_client):
    user = UserFactory(email="grace@example.com", name="Grace")
    logins = counter(metrics.LOGINS, method="password", outcome="success")
    response = login(api_client, "GRACE@example.com", device_name="Work laptop", HTTP_USER_AGENT="Chrome/140")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"user", "access", "refresh"}
    assert body["user"]["id"] == str(user.id) and body["user"]["email"] == "grace@example.com"
    assert body["user"]["email_verified"] is False and body["user"]["has_password"] is True
    session = Session.objects.get(user=user)
    assert (session.device_name, session.user_agent, session.ip_address) == ("Work laptop", "Chrome/140", "127.0.0.1")
    assert bearer(body["access"]).get("/api/users/me").status_code == 200
    assert counter(metrics.LOGINS, method="password", outcome="success") == logins + 1
    user.refresh_from_db()
    assert user.last_login is not None


def test_login_works_before_the_email_is_verified(api_client, django_capture_on_commit_callbacks):
    post(api_client, "/api/auth/register", {"email": "new@example.com", "password": NEW_PASSWORD})
    response = login(api_client, "new@example.com", NEW_PASSWORD)
    assert response.status_code == 200
    assert bearer(response.json()["access"]).get("/api/users/me").json()["email_verified"] is False


def test_unknown_email_and_wrong_password_answer_identically(api_client):
    UserFactory(email="known@example.com")
    wrong_password = login(api_client, "known@example.com", "not-the-password")
    unknown_email = login(api_client, "nobody@example.com", "not-the-password")
    assert wrong_password.status_code == unknown_email.status_code == 401
    strip = lambda body: {**body["error"], "request_id": None}  # noqa: E731
    assert strip(wrong_password.json()) == strip(unknown_email.json())
    assert error_code(wrong_password) == "invalid_credentials"


def test_inactive_user_cannot_log_in(api_client):
    user = UserFactory(is_active=False)
    assert login(api_client, user.email).status_code == 401


def test_login_validation_error(api_client):
    response = post(api_client, "/api/auth/login", {"email": "a@example.com"})
    assert response.status_code == 400
    assert "password" in response.json()["error"]["fields"]


def test_login_ignores_a_stale_authorization_header():
    user = UserFactory()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer expired.or.garbage")
    assert login(client, user.email).status_code == 200


def test_login_is_rate_limited_per_ip(fresh_rate_limit_window, api_client):
    user = UserFactory()
    limit = int(settings.RATE_LIMITS["login_ip"].split("/")[0])
    for _ in range(limit):
        assert login(api_client, user.email).status_code == 200
    response = login(api_client, user.email)
    assert response.status_code == 429
    assert error_code(response) == "rate_limited"
    assert 0 < int(response["Retry-After"]) <= 60
    assert login(api_client, user.email, REMOTE_ADDR="10.1.1.1").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        assert login(api_client, user.email).status_code == 200


def test_failed_logins_lock_the_account_then_reset_after_the_window(fresh_rate_limit_window, api_client):
    user = UserFactory()
    limit = int(settings.RATE_LIMITS["login_failures_account"].split("/")[0])
    for n in range(limit):
        assert login(api_client, user.email, "wrong", REMOTE_ADDR=f"10.0.0.{n}").status_code == 401
    # Even the right password (from another address) is refused while locked.
    response = login(api_client, user.email, REMOTE_ADDR="10.9.9.9")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 900
    with time_machine.travel(timezone.now() + timedelta(seconds=901)):
        assert login(api_client, user.email, REMOTE_ADDR="10.9.9.8").status_code == 200


def test_a_successful_login_resets_the_failure_count(api_client):
    user = UserFactory()
    limit = int(settings.RATE_LIMITS["login_failures_account"].split("/")[0])
    for _ in range(limit - 1):
        login(api_client, user.email, "wrong", REMOTE_ADDR="10.0.1.1")
    assert login(api_client, user.email, REMOTE_ADDR="10.0.1.2").status_code == 200
    for _ in range(limit - 1):
        assert login(api_client, user.email, "wrong", REMOTE_ADDR="10.0.1.3").status_code == 401
    assert login(api_client, user.email, REMOTE_ADDR="10.0.1.4").status_code == 200


# --- refresh, logout ----------------------------------------------------------------------


def test_refresh_rotates_the_pair(api_client):
    user = UserFactory()
    first = login(api_client, user.email).json()
    response = post(api_client, "/api/auth/refresh", {"refresh": first["refresh"]})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh"} and body["refresh"] != first["refresh"]
    assert bearer(body["access"]).get("/api/users/me").status_code == 200
    assert post(api_client, "/api/auth/refresh", {"refresh": body["refresh"]}).status_code == 200
    assert BlacklistedToken.objects.count() == 2


def test_reusing_a_rotated_refresh_token_after_the_window_revokes_the_whole_family_only(api_client):
    user = UserFactory()
    stolen = login(api_client, user.email, device_name="Phone").json()
    other = login(api_client, user.email, device_name="Laptop").json()
    rotated = post(api_client, "/api/auth/refresh", {"refresh": stolen["refresh"]}).json()

    after_window = timezone.now() + timedelta(seconds=settings.JWT_REFRESH_REUSE_SECONDS + 1)
    with time_machine.travel(after_window, tick=False):
        reuse = post(api_client, "/api/auth/refresh", {"refresh": stolen["refresh"]})
    assert reuse.status_code == 401
    assert error_code(reuse) == "token_reused"

    # The family is gone: the newest refresh and access tokens of that session fail.
    assert error_code(post(api_client, "/api/auth/refresh", {"refresh": rotated["refresh"]})) == "token_invalid"
    assert bearer(rotated["access"]).get("/api/users/me").status_code == 401
    assert bearer(stolen["access"]).get("/api/users/me").status_code == 401
    phone = Session.objects.get(device_name="Phone")
    assert phone.revoked_at is not None and phone.revoked_reason == "token_reused"
    # The other session lives on.
    assert bearer(other["access"]).get("/api/users/me").status_code == 200
    assert post(api_client, "/api/auth/refresh", {"refresh": other["refresh"]}).status_code == 200


def test_refresh_of_a_revoked_session_fails(auth_client, api_client):
    client = auth_client()
    assert client.delete(f"/api/auth/sessions/{client.auth_session.id}").status_code == 204
    response = post(api_client, "/api/auth/refresh", {"refresh": client.refresh_token})
    assert response.status_code == 401
    assert error_code(response) == "token_invalid"


@pytest.mark.parametrize("token", ["garbage", "a.b.c", ""])
def test_refresh_with_an_invalid_token(api_client, token):
    response = post(api_client, "/api/auth/refresh", {"refresh": token})
    assert response.status_code in (400, 401)
    assert error_code(response) in ("token_invalid", "validation_error")


def test_refresh_with_an_access_token_is_refused(api_client, user):
    access, _, _ = issue_session_tokens(user=user)
    assert error_code(post(api_client, "/api/auth/refresh", {"refresh": access})) == "token_invalid"


def test_expired_refresh_token_is_refused(api_client, user):
    _, refresh, _ = issue_session_tokens(user=user)
    with time_machine.travel(timezone.now() + settings.JWT_REFRESH_LIFETIME + timedelta(minutes=1)):
        assert error_code(post(api_client, "/api/auth/refresh", {"refresh": refresh})) == "token_invalid"


def test_refresh_is_rate_limited_per_session(fresh_rate_limit_window, api_client, user):
    _, refresh, _ = issue_session_tokens(user=user)
    limit = int(settings.RATE_LIMITS["refresh_session"].split("/")[0])
    for _ in range(limit):
        response = post(api_client, "/api/auth/refresh", {"refresh": refresh})
        assert response.status_code == 200
        refresh = response.json()["refresh"]
    response = post(api_client, "/api/auth/refresh", {"refresh": refresh})
    assert response.status_code == 429 and int(response["Retry-After"]) <= 60
    # A refused refresh does not use the token up: it works after the window.
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        assert post(api_client, "/api/auth/refresh", {"refresh": refresh}).status_code == 200


def test_logout_ends_the_session(api_client, user):
    access, refresh, session = issue_session_tokens(user=user)
    other_access, _, _ = issue_session_tokens(user=user)
    assert bearer(access).get("/api/users/me").status_code == 200
    assert post(api_client, "/api/auth/logout", {"refresh": refresh}).status_code == 204
    assert bearer(access).get("/api/users/me").status_code == 401
    assert error_code(post(api_client, "/api/auth/refresh", {"refresh": refresh})) == "token_invalid"
    assert bearer(other_access).get("/api/users/me").status_code == 200
    assert post(api_client, "/api/auth/logout", {"refresh": refresh}).status_code == 204  # idempotent
    session.refresh_from_db()
    assert session.revoked_reason == "logout"


def test_logout_with_an_invalid_token(api_client):
    assert error_code(post(api_client, "/api/auth/logout", {"refresh": "nope"})) == "token_invalid"
    assert post(api_client, "/api/auth/logout", {}).status_code == 400


# --- sessions -----------------------------------------------------------------------------


def test_sessions_list_shows_own_live_sessions_and_marks_the_current_one(auth_client):
    client = auth_client()
    issue_session_tokens(user=client.user, device_name="Phone", user_agent="Firefox", ip="192.0.2.1")
    _, _, revoked = issue_session_tokens(user=client.user, device_name="Old")
    revoked.revoked_at = timezone.now()
    revoked.save()
    issue_session_tokens(user=UserFactory(), device_name="Someone else")
    body = client.get("/api/auth/sessions").json()
    names = {item["device_name"]: item for item in body["results"]}
    assert set(names) == {"pytest", "Phone"}
    assert names["pytest"]["current"] is True and names["Phone"]["current"] is False
    assert names["Phone"]["user_agent"] == "Firefox" and names["Phone"]["ip_address"] == "192.0.2.1"
    assert {"id", "created_at", "last_used_at"} <= set(names["Phone"])


def test_revoking_someone_elses_or_an_unknown_session_is_404(auth_client):
    client = auth_client()
    _, _, foreign = issue_session_tokens(user=UserFactory())
    for session_id in (foreign.id, "00000000-0000-0000-0000-000000000000"):
        response = client.delete(f"/api/auth/sessions/{session_id}")
        assert response.status_code == 404 and error_code(response) == "not_found"
    foreign.refresh_from_db()
    assert foreign.revoked_at is None


def test_revoking_another_session_stops_its_tokens(auth_client):
    client = auth_client()
    other_access, _, other = issue_session_tokens(user=client.user)
    assert bearer(other_access).get("/api/users/me").status_code == 200
    assert client.delete(f"/api/auth/sessions/{other.id}").status_code == 204
    assert bearer(other_access).get("/api/users/me").status_code == 401
    assert client.get("/api/users/me").status_code == 200


# --- change password ----------------------------------------------------------------------


def test_change_password_keeps_this_session_and_ends_the_others(auth_client, api_client):
    client = auth_client()
    other_access, other_refresh, _ = issue_session_tokens(user=client.user)
    response = post(
        client, "/api/auth/change-password", {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 204
    assert client.get("/api/users/me").status_code == 200
    assert bearer(other_access).get("/api/users/me").status_code == 401
    assert post(api_client, "/api/auth/refresh", {"refresh": other_refresh}).status_code == 401
    assert login(api_client, client.user.email, NEW_PASSWORD).status_code == 200
    assert login(api_client, client.user.email, DEFAULT_PASSWORD).status_code == 401


def test_change_password_errors(auth_client):
    client = auth_client()
    wrong = post(client, "/api/auth/change-password", {"current_password": "wrong", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 400 and "current_password" in wrong.json()["error"]["fields"]
    weak = post(client, "/api/auth/change-password", {"current_password": DEFAULT_PASSWORD, "new_password": "123"})
    assert weak.status_code == 400 and "new_password" in weak.json()["error"]["fields"]
    assert APIClient().post("/api/auth/change-password", {}, format="json").status_code == 401
    client.user.refresh_from_db()
    assert client.user.check_password(DEFAULT_PASSWORD)


def test_change_password_wrong_current_password_counts_as_failed_login(auth_client):
    client = auth_client()
    limit = int(settings.RATE_LIMITS["login_failures_account"].split("/")[0])
    for _ in range(limit):
        post(client, "/api/auth/change-password", {"current_password": "wrong", "new_password": NEW_PASSWORD})
    response = post(
        client, "/api/auth/change-password", {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 429


def test_oauth_only_account_changes_password_after_a_recent_login(auth_client):
    user = UserFactory()
    user.set_unusable_password()
    user.save()
    client = auth_client(user)
    assert post(client, "/api/auth/change-password", {"new_password": NEW_PASSWORD}).status_code == 204
    stale = auth_client(UserFactory(password="!"))
    stale.user.set_unusable_password()
    stale.user.save()
    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        stale.credentials(HTTP_AUTHORIZATION="Bearer " + access_token_for(stale.auth_session))
        response = post(stale, "/api/auth/change-password", {"new_password": NEW_PASSWORD})
    assert response.status_code == 403 and error_code(response) == "permission_denied"


# --- forgot / reset password --------------------------------------------------------------


def reset_token_from(message) -> str:
    match = re.search(r"/account/password/reset/key/(\S+)/", message.body)
    assert match, message.body
    return match.group(1)


def test_forgot_password_answers_202_for_known_and_unknown_emails_alike(api_client, django_capture_on_commit_callbacks):
    UserFactory(email="known@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        known = post(api_client, "/api/auth/forgot-password", {"email": "known@example.com"})
        unknown = post(api_client, "/api/auth/forgot-password", {"email": "unknown@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    (message,) = mail.outbox
    assert message.to == ["known@example.com"]
    assert "1 hour" in message.body


def test_reset_password_with_the_emailed_token(api_client, django_capture_on_commit_callbacks):
    user = UserFactory(email="reset@example.com")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=False)
    access, refresh, _ = issue_session_tokens(user=user)
    with django_capture_on_commit_callbacks(execute=True):
        post(api_client, "/api/auth/forgot-password", {"email": "reset@example.com"})
    token = reset_token_from(mail.outbox[-1])
    response = post(api_client, "/api/auth/reset-password", {"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 204
    assert login(api_client, "reset@example.com", NEW_PASSWORD).status_code == 200
    # Every earlier session ended; the mailbox is proven.
    assert bearer(access).get("/api/users/me").status_code == 401
    assert post(api_client, "/api/auth/refresh", {"refresh": refresh}).status_code == 401
    assert EmailAddress.objects.get(user=user).verified
    # Single use.
    again = post(api_client, "/api/auth/reset-password", {"token": token, "password": "yet-another-passphrase-7"})
    assert again.status_code == 400 and "token" in again.json()["error"]["fields"]


def test_reset_password_accepts_the_whole_link(api_client, django_capture_on_commit_callbacks):
    UserFactory(email="link@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        post(api_client, "/api/auth/forgot-password", {"email": "link@example.com"})
    link = re.search(r"https?://\S+/account/password/reset/key/\S+/", mail.outbox[-1].body).group(0)
    assert post(api_client, "/api/auth/reset-password", {"token": link, "password": NEW_PASSWORD}).status_code == 204


def test_reset_token_expires(api_client, django_capture_on_commit_callbacks):
    UserFactory(email="late@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        post(api_client, "/api/auth/forgot-password", {"email": "late@example.com"})
    token = reset_token_from(mail.outbox[-1])
    with time_machine.travel(timezone.now() + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT + 5)):
        response = post(api_client, "/api/auth/reset-password", {"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 400 and "token" in response.json()["error"]["fields"]


@pytest.mark.parametrize("token", ["", "nodash", "zzzz-abc", "0123456789abcdef0123456789abcdef-cafe-babe"])
def test_reset_password_rejects_bad_tokens(api_client, token):
    response = post(api_client, "/api/auth/reset-password", {"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 400 and error_code(response) == "validation_error"


def test_reset_password_validates_the_new_password(api_client, django_capture_on_commit_callbacks):
    user = UserFactory(email="weak@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        post(api_client, "/api/auth/forgot-password", {"email": "weak@example.com"})
    response = post(
        api_client, "/api/auth/reset-password", {"token": reset_token_from(mail.outbox[-1]), "password": "123"}
    )
    assert response.status_code == 400 and "password" in response.json()["error"]["fields"]
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


def test_forgot_password_is_rate_limited_per_email_and_per_ip(fresh_rate_limit_window, api_client):
    per_email = int(settings.RATE_LIMITS["forgot_email"].split("/")[0])
    for n in range(per_email):
        assert (
            post(
                api_client, "/api/auth/forgot-password", {"email": "x@example.com"}, REMOTE_ADDR=f"10.2.0.{n}"
            ).status_code
            == 202
        )
    blocked = post(api_client, "/api/auth/forgot-password", {"email": "x@example.com"}, REMOTE_ADDR="10.2.1.1")
    assert blocked.status_code == 429 and error_code(blocked) == "rate_limited" and blocked["Retry-After"]

    per_ip = int(settings.RATE_LIMITS["forgot_ip"].split("/")[0])
    for n in range(per_ip):
        assert post(api_client, "/api/auth/forgot-password", {"email": f"ip{n}@example.com"}).status_code == 202
    assert post(api_client, "/api/auth/forgot-password", {"email": "one-more@example.com"}).status_code == 429


# --- email verification -------------------------------------------------------------------


def confirmation_key_from(message) -> str:
    return re.search(r"/account/confirm-email/(\S+)/", message.body).group(1)


def test_verify_email_with_the_key_from_the_signup_email(api_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post(api_client, "/api/auth/register", {"email": "verify@example.com", "password": NEW_PASSWORD})
    key = confirmation_key_from(mail.outbox[-1])
    assert post(api_client, "/api/auth/verify-email", {"key": key}).status_code == 204
    assert EmailAddress.objects.get(email="verify@example.com").verified
    again = post(api_client, "/api/auth/verify-email", {"key": key})
    assert again.status_code == 400 and "key" in again.json()["error"]["fields"]


def test_the_link_in_the_email_works_on_the_hosted_confirm_page(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        APIClient().post("/api/auth/register", {"email": "page@example.com", "password": NEW_PASSWORD}, format="json")
    link = re.search(r"https?://\S+/account/confirm-email/\S+/", mail.outbox[-1].body).group(0)
    path = "/" + link.split("/", 3)[3]
    assert client.get(path).status_code == 200
    assert client.post(path).status_code == 302
    assert EmailAddress.objects.get(email="page@example.com").verified


@pytest.mark.parametrize("key", ["nonsense", "MQ:1abc:def"])
def test_verify_email_rejects_bad_keys(api_client, key):
    response = post(api_client, "/api/auth/verify-email", {"key": key})
    assert response.status_code == 400 and error_code(response) == "validation_error"


def test_resend_verification_email(auth_client, django_capture_on_commit_callbacks):
    client = auth_client()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/api/auth/verify-email/resend").status_code == 204
    (message,) = mail.outbox
    assert message.to == [client.user.email]
    assert post(APIClient(), "/api/auth/verify-email", {"key": confirmation_key_from(message)}).status_code == 204
    with django_capture_on_commit_callbacks(execute=True):
        # The first proof signed every session out (DESIGN §3): a new one asks again.
        assert auth_client(client.user).post("/api/auth/verify-email/resend").status_code == 204
    assert len(mail.outbox) == 1  # already verified: nothing to send


def test_resend_verification_is_rate_limited(fresh_rate_limit_window, auth_client):
    client = auth_client()
    limit = int(settings.RATE_LIMITS["verify_resend_account"].split("/")[0])
    for _ in range(limit):
        assert client.post("/api/auth/verify-email/resend").status_code == 204
    response = client.post("/api/auth/verify-email/resend")
    assert response.status_code == 429 and response["Retry-After"]
    assert APIClient().post("/api/auth/verify-email/resend").status_code == 401


def test_hosted_signup_counts_as_a_signup_and_sends_our_verification_email(client, django_capture_on_commit_callbacks):
    signups = counter(metrics.SIGNUPS, method="password")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/account/signup/", {"email": "hosted@example.com", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
        )
    assert response.status_code == 302
    assert counter(metrics.SIGNUPS, method="password") == signups + 1
    (message,) = mail.outbox
    assert message.subject == "Welcome to ChatFocus: confirm your email address"
    assert message.alternatives and "/account/confirm-email/" in message.body


def test_hosted_password_change_signs_out_api_sessions(client, user):
    access, _, _ = issue_session_tokens(user=user)
    client.force_login(user)
    response = client.post(
        "/account/password/change/",
        {"oldpassword": DEFAULT_PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert bearer(access).get("/api/users/me").status_code == 401
