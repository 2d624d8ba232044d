"""Access-token authentication: no user row loaded, revocation seen at once, every failure a 401 in the shape."""

import base64
import json
import uuid
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.authentication import TokenUser
from accounts.models import User
from accounts.services import issue_session_tokens, revoke_session
from accounts.sessions import SESSION_STATE_KEY
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ME = "/api/auth/sessions"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _assert_token_invalid(response):
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_invalid"
    assert response.json()["error"]["request_id"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_valid_access_token_authenticates_without_loading_the_user(rf):
    from accounts.authentication import JWTAuthentication

    user = UserFactory()
    access, _, session = issue_session_tokens(user=user, device_name="Laptop")
    request = rf.get("/api/auth/sessions", HTTP_AUTHORIZATION=f"Bearer {access}")
    cache.set(SESSION_STATE_KEY.format(session_id=session.id), str(user.id))
    with CaptureQueriesContext(connection) as queries:
        token_user, _ = JWTAuthentication().authenticate(request)
    assert len(queries) == 0
    assert isinstance(token_user, TokenUser)
    assert token_user.id == user.id and isinstance(token_user.id, uuid.UUID)
    assert token_user.pk == user.id
    assert token_user.session_id == session.id
    assert token_user.is_authenticated and token_user.is_active


def test_cache_miss_costs_one_query_and_is_remembered(rf):
    from accounts.authentication import JWTAuthentication

    access, _, _ = issue_session_tokens(user=UserFactory())
    request = rf.get("/", HTTP_AUTHORIZATION=f"Bearer {access}")
    with CaptureQueriesContext(connection) as queries:
        JWTAuthentication().authenticate(request)
    assert len(queries) == 1
    with CaptureQueriesContext(connection) as queries:
        JWTAuthentication().authenticate(request)
    assert len(queries) == 0


def test_revoked_session_access_token_fails_immediately(auth_client):
    client = auth_client()
    assert client.get(ME).status_code == 200  # state now cached as active
    revoke_session(user=client.user, session_id=client.auth_session.id)
    _assert_token_invalid(client.get(ME))


def test_token_with_bad_signature_is_rejected(auth_client):
    client = auth_client()
    access = client._credentials["HTTP_AUTHORIZATION"].split()[1]
    header, payload, signature = access.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    _assert_token_invalid(_bearer(tampered).get(ME))


def test_token_with_forged_claims_is_rejected(auth_client):
    client = auth_client()
    access = client._credentials["HTTP_AUTHORIZATION"].split()[1]
    header, payload, signature = access.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["user_id"] = str(uuid.uuid4())
    _assert_token_invalid(_bearer(f"{header}.{_b64(claims)}.{signature}").get(ME))


def test_alg_none_token_is_rejected(user):
    access, _, _ = issue_session_tokens(user=user)
    claims = json.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    _assert_token_invalid(_bearer(unsigned).get(ME))


def test_token_signed_with_the_right_key_but_another_algorithm_is_rejected(user):
    import jwt

    access, _, _ = issue_session_tokens(user=user)
    claims = json.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))
    other = jwt.encode(claims, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS384")
    _assert_token_invalid(_bearer(other).get(ME))


def test_expired_token_is_rejected(user):
    access, _, _ = issue_session_tokens(user=user)
    with time_machine.travel(timezone.now() + settings.JWT_ACCESS_LIFETIME + timedelta(seconds=5)):
        _assert_token_invalid(_bearer(access).get(ME))


def test_a_token_accepted_before_is_rejected_once_expired(user):
    # This process remembers tokens it verified: expiry must still be checked on every request.
    access, _, _ = issue_session_tokens(user=user)
    assert _bearer(access).get(ME).status_code == 200
    with time_machine.travel(timezone.now() + settings.JWT_ACCESS_LIFETIME + timedelta(seconds=5)):
        _assert_token_invalid(_bearer(access).get(ME))


def test_refresh_token_is_not_accepted_as_access_token(user):
    _, refresh, _ = issue_session_tokens(user=user)
    _assert_token_invalid(_bearer(refresh).get(ME))


def test_token_of_a_deleted_user_is_rejected(auth_client):
    client = auth_client()
    assert client.get(ME).status_code == 200
    User.objects.filter(id=client.user.id).delete()
    cache.clear()  # the account deletion service also revokes the cached state; here only the row goes
    _assert_token_invalid(client.get(ME))


def test_token_of_a_deactivated_user_is_rejected(user):
    access, _, _ = issue_session_tokens(user=user)
    User.objects.filter(id=user.id).update(is_active=False)
    _assert_token_invalid(_bearer(access).get(ME))


def test_garbage_and_malformed_headers_are_rejected():
    _assert_token_invalid(_bearer("not-a-jwt").get(ME))
    response = APIClient().get(ME, HTTP_AUTHORIZATION="Bearer a b")
    _assert_token_invalid(response)


def test_missing_token_is_not_authenticated():
    response = APIClient().get(ME)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.fixture
def redis_round_trips(monkeypatch):
    """Counts the commands sent to the real Redis behind the cache (each one a network round trip)."""
    from redis.client import Redis

    commands = []
    send = Redis.execute_command

    def counting(self, *args, **options):
        commands.append(args[0])
        return send(self, *args, **options)

    monkeypatch.setattr(Redis, "execute_command", counting)
    return commands


HOT_READS = ["/api/users/me", "/api/subscriptions", "/api/sync/pull?since=0", "/api/sync/settings"]


@pytest.mark.parametrize("path", HOT_READS)
def test_a_hot_read_reads_the_session_state_and_its_own_cache_keys_in_one_round_trip(
    auth_client, redis_round_trips, path
):
    client = auth_client()
    assert client.get(path).status_code == 200  # fills the cache
    redis_round_trips.clear()
    response = client.get(path)
    assert response.status_code == 200
    assert redis_round_trips == ["MGET"]


@pytest.mark.parametrize("path", HOT_READS)
def test_a_hot_read_refuses_a_session_revoked_after_the_cache_was_warm(auth_client, path):
    client = auth_client()
    assert client.get(path).status_code == 200
    revoke_session(user=client.user, session_id=client.auth_session.id)
    _assert_token_invalid(client.get(path))


def test_a_push_reads_the_session_state_devices_and_tier_in_one_round_trip_before_the_lock(
    auth_client, redis_round_trips
):
    client = auth_client()
    op = {"op_id": "op-1", "key": "focusedContacts/alice", "op": "set", "value": True}

    def push(op_id):
        hlc = f"{int(timezone.now().timestamp() * 1000)}-0"
        return client.post(
            "/api/sync/push", {"device_id": "laptop", "ops": [{**op, "op_id": op_id, "hlc": hlc}]}, format="json"
        )

    assert push("op-1").status_code == 200  # registers the device, caches the tier
    redis_round_trips.clear()
    assert push("op-2").json()["results"][0]["status"] == "applied"
    # The one read, then the new version published under the row lock.
    assert redis_round_trips == ["MGET", "SET"]


def test_the_session_salt_keeps_djangos_hash_until_set_so_deploying_it_signs_no_one_out(settings):
    from django.contrib.auth.base_user import AbstractBaseUser

    settings.SECRET_KEY_FALLBACKS = ["an-older-secret-key"]
    user = User(password="bcrypt_sha256$stored-hash")
    assert user.get_session_auth_hash() == AbstractBaseUser.get_session_auth_hash(user)
    assert list(user.get_session_auth_fallback_hash()) == list(AbstractBaseUser.get_session_auth_fallback_hash(user))
    before = user.get_session_auth_hash()
    user.session_salt = "rotated"
    assert user.get_session_auth_hash() != before
    assert before not in user.get_session_auth_fallback_hash()
