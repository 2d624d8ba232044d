"""Access tokens signed with the right key but with claims no session issued: 401 `token_invalid`, never a 500."""

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.services import issue_session_tokens
from accounts.sessions import SESSION_CLAIM
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def signed_access_token(**claims) -> str:
    token = AccessToken()
    for name, value in claims.items():
        token[name] = value
    return str(token)


def assert_token_invalid(token: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get("/api/users/me")
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "token_invalid"


@pytest.mark.parametrize(
    "exp", [10**20, -(10**20), 1e300, "tomorrow", None], ids=["huge", "negative", "float", "text", "null"]
)
def test_an_expiry_out_of_range_is_token_invalid(exp):
    user = UserFactory()
    _access, _refresh, session = issue_session_tokens(user=user, device_name="t")
    assert_token_invalid(signed_access_token(user_id=str(user.id), **{SESSION_CLAIM: str(session.id)}, exp=exp))


def test_a_session_of_another_user_does_not_authenticate(auth_client):
    victim, attacker = UserFactory(), auth_client()
    attacker_token = signed_access_token(user_id=str(victim.id), **{SESSION_CLAIM: str(attacker.auth_session.id)})
    # Twice: the first answer must not leave a cached state that lets the second one in (nor lock the owner out).
    assert_token_invalid(attacker_token)
    assert_token_invalid(attacker_token)
    assert attacker.get("/api/users/me").json()["id"] == str(attacker.user.id)


def test_a_session_id_that_is_not_a_uuid_is_token_invalid(user):
    assert_token_invalid(signed_access_token(user_id=str(user.id), **{SESSION_CLAIM: "not-a-uuid"}))
