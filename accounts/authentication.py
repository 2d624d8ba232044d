"""DRF authentication for the API: a Bearer access JWT, validated without loading the user row."""

import functools
import time
import uuid

from django.utils.functional import cached_property
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework import exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from chatfocus.logging import bind_user_id

# Access tokens this process has verified, by their exact text. A client sends the same token for its
# whole lifetime, and verifying one (PyJWT's strict base64 checks, the HMAC) cost more than the rest of
# an idle sync pull. The signature of a given text cannot change; expiry is checked on every request.
VERIFIED_TOKENS_KEPT = 4096


class TokenUser:
    """`request.user` on the API: who (id) and which session, nothing loaded from the database."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, *, user_id: uuid.UUID, session_id: uuid.UUID):
        self.id = user_id
        self.session_id = session_id

    @cached_property
    def pk(self) -> uuid.UUID:
        return self.id

    def __str__(self):
        return f"user {self.id}"

    def __eq__(self, other):
        return isinstance(other, TokenUser) and (self.id, self.session_id) == (other.id, other.session_id)

    def __hash__(self):
        return hash((self.id, self.session_id))


def _token_invalid() -> exceptions.AuthenticationFailed:
    return exceptions.AuthenticationFailed("The token is invalid or expired.", code="token_invalid")


@functools.lru_cache(maxsize=VERIFIED_TOKENS_KEPT)
def _verified_access_token(raw_token: bytes) -> AccessToken:
    return AccessToken(raw_token)  # a TokenError is raised, not cached


class JWTAuthentication(SimpleJWTAuthentication):
    """simplejwt's signature/expiry checks, then the session's revocation state (cache first)."""

    def get_validated_token(self, raw_token: bytes) -> AccessToken:
        try:
            token = _verified_access_token(raw_token)
        except TokenError as error:
            raise InvalidToken() from error
        if token["exp"] <= time.time():
            raise InvalidToken()
        return token

    def authenticate(self, request):
        try:
            result = super().authenticate(request)
        except (InvalidToken, exceptions.AuthenticationFailed) as error:
            raise _token_invalid() from error
        if result is not None:
            bind_user_id(result[0].id)
        return result

    def get_user(self, validated_token) -> TokenUser:
        # Imported here: DRF loads this class while rest_framework.views loads, and accounts.sessions
        # needs chatfocus.exceptions, which imports rest_framework.views.
        from accounts import sessions

        try:
            user_id = uuid.UUID(str(validated_token[api_settings.USER_ID_CLAIM]))
            session_id = uuid.UUID(str(validated_token[sessions.SESSION_CLAIM]))
        except (KeyError, ValueError) as error:
            raise _token_invalid() from error
        if not sessions.is_session_active(session_id):
            raise _token_invalid()
        return TokenUser(user_id=user_id, session_id=session_id)


class JWTAuthenticationScheme(SimpleJWTScheme):
    """OpenAPI: the same Bearer JWT security scheme drf-spectacular declares for simplejwt."""

    target_class = JWTAuthentication
