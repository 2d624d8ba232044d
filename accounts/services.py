"""Account verbs; other apps call these, never accounts' models."""

from django.core.cache import cache

from accounts.models import Preferences

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
