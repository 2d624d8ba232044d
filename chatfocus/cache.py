"""The Redis cache backend (fails open like django-redis, without serving stale entries once Redis is back),
and the reads that take what a caller already fetched.

Hot API paths read all their keys in one round trip with the session state (see
accounts.authentication) and hand the result to services as `prefetched`: a key missing from it is
a cache miss, as in `cache.get_many`.
"""

import time
from collections import defaultdict

from django.core.cache import cache
from django_redis.cache import RedisCache
from django_redis.exceptions import ConnectionInterrupted

RETRY_INTERVAL_SECONDS = 1.0


def get_prefetched(key: str, prefetched: dict | None):
    """`key` from what the caller prefetched, or from the cache when it prefetched nothing."""
    return prefetched.get(key) if prefetched is not None else cache.get(key)


def get_many_prefetched(keys: list[str], prefetched: dict | None) -> dict:
    """What the caller prefetched for `keys`, or one `get_many` when it prefetched nothing."""
    return prefetched if prefetched is not None else cache.get_many(keys)


class InvalidationRetryingRedisCache(RedisCache):
    """django-redis with IGNORE_EXCEPTIONS, plus invalidations that survive an outage.

    Failing open keeps requests served while Redis is unreachable, but each write or delete made
    meanwhile is lost, and Redis still holds the entries those writes meant to replace: once it is
    back, an idle sync pull would answer "no changes", entitlements would show the old tier and a
    revoked session would pass until their TTLs end. So this process remembers every key whose
    write or delete failed, reads them as misses, and deletes them before its next cache call once
    Redis answers (at most one attempt a second while it does not).
    """

    def __init__(self, server, params):
        super().__init__(server, params)
        self._lost_writes: dict[object, set[str]] = defaultdict(set)  # version → keys
        self._next_retry = 0.0

    def _remember_lost(self, keys, version) -> None:
        self._lost_writes[version].update(keys)

    def _retry_lost_writes(self) -> None:
        if not self._lost_writes or time.monotonic() < self._next_retry:
            return
        lost, self._lost_writes = self._lost_writes, defaultdict(set)
        try:
            for version, keys in lost.items():
                self.client.delete_many(list(keys), version=version)
        except ConnectionInterrupted:
            for version, keys in lost.items():
                self._lost_writes[version].update(keys)
            self._next_retry = time.monotonic() + RETRY_INTERVAL_SECONDS

    def _write(self, keys, version, operation, failed=None):
        self._retry_lost_writes()
        try:
            result = operation()
        except ConnectionInterrupted as error:
            self._remember_lost(keys, version)
            if not self._ignore_exceptions:
                raise error.__cause__ from None
            if self._log_ignored_exceptions:
                self.logger.exception("Exception ignored")
            return failed
        if version in self._lost_writes:  # Redis now holds this write: the key is no longer stale
            self._lost_writes[version].difference_update(keys)
            if not self._lost_writes[version]:
                del self._lost_writes[version]
        return result

    def set(self, key, *args, version=None, **kwargs):
        return self._write([key], version, lambda: self.client.set(key, *args, version=version, **kwargs))

    def set_many(self, data, *args, version=None, **kwargs):
        return self._write(
            list(data), version, lambda: self.client.set_many(data, *args, version=version, **kwargs), failed=[]
        )

    def delete(self, key, *args, version=None, **kwargs):
        return self._write(
            [key], version, lambda: bool(self.client.delete(key, *args, version=version, **kwargs)), failed=False
        )

    def delete_many(self, keys, *args, version=None, **kwargs):
        keys = list(keys)
        return self._write(keys, version, lambda: self.client.delete_many(keys, *args, version=version, **kwargs))

    def get(self, key, default=None, version=None, client=None):
        self._retry_lost_writes()
        if self._lost_writes and key in self._lost_writes.get(version, ()):
            return default  # Redis may still hold what the lost write meant to replace
        return super().get(key, default=default, version=version, client=client)

    def get_many(self, keys, version=None, client=None):
        self._retry_lost_writes()
        if self._lost_writes:
            keys = [key for key in keys if key not in self._lost_writes.get(version, ())]
        return super().get_many(keys, version=version, client=client)

    def add(self, *args, **kwargs):
        self._retry_lost_writes()
        return super().add(*args, **kwargs)

    def incr(self, *args, **kwargs):
        self._retry_lost_writes()
        return super().incr(*args, **kwargs)
