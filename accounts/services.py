"""Account verbs; other apps call these, never accounts' models."""

from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Preferences, Session, User
from accounts.sessions import issue_session_tokens  # noqa: F401  (callers import it from services)
from accounts.sessions import revoke_session_by_id
from chatfocus.exceptions import NotFound

PREFERENCE_FIELDS = ("analytics_opt_in", "product_emails", "marketing_emails", "locale", "timezone")
OPT_IN_CACHE_KEY = "accounts:analytics_opt_in:{user_id}"


def get_preferences(*, user) -> Preferences:
    """The user's preferences row, created with defaults on first use."""
    preferences, _ = Preferences.objects.get_or_create(user_id=user.id)
    return preferences


def update_preferences(*, user, **changes) -> Preferences:
    """Apply validated preference changes (keys from PREFERENCE_FIELDS only)."""
    unknown = set(changes) - set(PREFERENCE_FIELDS)
    if unknown:
        raise ValueError(f"Unknown preference fields: {sorted(unknown)}")
    preferences = get_preferences(user=user)
    for name, value in changes.items():
        setattr(preferences, name, value)
    preferences.save()
    cache.delete(OPT_IN_CACHE_KEY.format(user_id=user.id))
    return preferences


def get_analytics_opt_in(*, user_id) -> bool:
    """Whether the user agreed to product analytics (cached; False when never set)."""
    key = OPT_IN_CACHE_KEY.format(user_id=user_id)
    opted_in = cache.get(key)
    if opted_in is None:
        opted_in = Preferences.objects.filter(user_id=user_id, analytics_opt_in=True).exists()
        cache.set(key, opted_in, timeout=300)
    return opted_in


def get_user(*, user_id) -> User:
    """The user row (for endpoints that need more than the id the access token carries)."""
    user = User.objects.filter(id=user_id, is_active=True).first()
    if user is None:
        raise NotFound("This account no longer exists.")
    return user


def list_sessions(*, user) -> QuerySet[Session]:
    """The user's live sessions, newest first."""
    return Session.objects.filter(
        user_id=user.id, revoked_at__isnull=True, refresh_expires_at__gt=timezone.now()
    ).order_by("-created_at")


def revoke_session(*, user, session_id) -> None:
    """Sign one of the user's own sessions out; its tokens stop working at once."""
    if not Session.objects.filter(id=session_id, user_id=user.id, revoked_at__isnull=True).exists():
        raise NotFound("No such session.")
    revoke_session_by_id(session_id=session_id, reason="revoked")
