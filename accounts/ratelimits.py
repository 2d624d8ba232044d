"""Fixed-window rate limits kept in the cache (Redis in production, so every worker shares them).

Numbers come from `settings.RATE_LIMITS` as "count/seconds". A window is `seconds` long and
aligned to the epoch, so its key and its end are known without extra state; `incr` is atomic in
Redis, so concurrent workers never lose a hit.
"""

import hashlib
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from chatfocus.exceptions import RateLimited


def client_ip(request) -> str:
    """The client address as DRF's throttles see it (honours NUM_PROXIES behind a proxy); API and hosted pages alike."""
    return BaseThrottle().get_ident(request) or ""


def _limit(scope: str) -> tuple[int, int]:
    count, seconds = settings.RATE_LIMITS[scope].split("/")
    return int(count), int(seconds)


def _window(scope: str, key: str) -> tuple[str, int, int]:
    """(cache key, limit, seconds until the window ends)."""
    count, seconds = _limit(scope)
    now = time.time()
    window = int(now // seconds)
    digest = hashlib.sha256(str(key).lower().encode()).hexdigest()[:32]
    return f"ratelimit:{scope}:{digest}:{window}", count, int((window + 1) * seconds - now) + 1


def record(*, scope: str, key: str) -> int | None:
    """Count one attempt; returns the window's count (None when the cache is down: fail open)."""
    cache_key, _, retry_after = _window(scope, key)
    cache.add(cache_key, 0, timeout=retry_after + 1)
    try:
        return cache.incr(cache_key)
    except ValueError:  # the window ended between add and incr
        return None


def hit(*, scope: str, key: str) -> None:
    """Count one attempt; raise RateLimited once the window's limit is passed."""
    used = record(scope=scope, key=key)
    count, _ = _limit(scope)
    if used is not None and used > count:
        raise RateLimited(retry_after=_window(scope, key)[2])


def check(*, scope: str, key: str) -> None:
    """Raise RateLimited if the window's limit is already used up (counts nothing)."""
    cache_key, count, retry_after = _window(scope, key)
    if (cache.get(cache_key) or 0) >= count:
        raise RateLimited(retry_after=retry_after)


def clear(*, scope: str, key: str) -> None:
    """Forget the attempts of the current window (a success resets a failure counter)."""
    cache.delete(_window(scope, key)[0])
