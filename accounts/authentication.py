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

    def __init__(self, *, user_id: uuid.UUID, session_id: uuid.UUID, prefetched: dict | None = None):
        self.id = user_id
        self.session_id = session_id
        # What the view's `cache_keys_for` asked for, read with the session state (None if it asked nothing).
        self.prefetched = prefetched

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


def _view_cache_keys(request, user_id) -> list[str]:
    """The cache keys the view will read for this request: `view.cache_keys_for(request, user_id=…)`, if any."""
    view = (getattr(request, "parser_context", None) or {}).get("view")
    keys_for = getattr(view, "cache_keys_for", None)
    return keys_for(request, user_id=user_id) if keys_for is not None else []


@functools.lru_cache(maxsize=VERIFIED_TOKENS_KEPT)
def _verified_access_token(raw_token: bytes) -> AccessToken:
    try:
        return AccessToken(raw_token)  # a TokenError is raised, not cached
    except (OverflowError, ValueError, TypeError) as error:
        # A correctly signed token whose claims simplejwt cannot turn into dates (`exp` = 10**20 overflows
        # datetime): only the holder of JWT_SECRET can make one, and it is still just an invalid token.
        raise TokenError("Token claims are out of range.") from error


class JWTAuthentication(SimpleJWTAuthentication):
    """simplejwt's signature/expiry checks, then the session's revocation state (cache first)."""

    def get_validated_token(self, raw_token: bytes) -> AccessToken:
        try:
            token = _verified_access_token(raw_token)
        except TokenError as error:
            raise InvalidToken() from error
        if not isinstance(token["exp"], int | float) or token["exp"] <= time.time():
            raise InvalidToken()
        return token

    def authenticate(self, request):
        """simplejwt's flow, with the session check reading the view's cache keys in the same round trip.

        A hot endpoint (idle pull, entitlements, profile) would otherwise pay two cache round trips: the
        session state here and its own data in the view.
        """
        header = self.get_header(request)
        if header is None:
            return None
        try:
            raw_token = self.get_raw_token(header)
            if raw_token is None:
                return None
            token = self.get_validated_token(raw_token)
            user_id, session_id = self._claims(token)
            user = self._active_user(user_id, session_id, prefetch=_view_cache_keys(request, user_id))
        except (InvalidToken, exceptions.AuthenticationFailed) as error:
            raise _token_invalid() from error
        bind_user_id(user.id)
        return user, token

    @staticmethod
    def _claims(validated_token) -> tuple[uuid.UUID, uuid.UUID]:
        # Imported here: DRF loads this class while rest_framework.views loads, and accounts.sessions
        # needs chatfocus.exceptions, which imports rest_framework.views.
        from accounts import sessions

        try:
            return (
                uuid.UUID(str(validated_token[api_settings.USER_ID_CLAIM])),
                uuid.UUID(str(validated_token[sessions.SESSION_CLAIM])),
            )
        except (KeyError, ValueError) as error:
            raise _token_invalid() from error

    @staticmethod
    def _active_user(user_id, session_id, *, prefetch: list[str]) -> TokenUser:
        from accounts import sessions

        prefetched = sessions.read_with_session_state(session_id, prefetch) if prefetch else None
        if not sessions.is_session_active(session_id, user_id=user_id, prefetched=prefetched):
            raise _token_invalid()
        return TokenUser(user_id=user_id, session_id=session_id, prefetched=prefetched)


class JWTAuthenticationScheme(SimpleJWTScheme):
    """OpenAPI: the same Bearer JWT security scheme drf-spectacular declares for simplejwt."""

    target_class = JWTAuthentication
