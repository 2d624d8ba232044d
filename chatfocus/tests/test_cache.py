"""The Redis cache fails open and, once Redis is back, serves nothing an outage made stale."""

import logging

import pytest
from django.conf import settings

from chatfocus.cache import InvalidationRetryingRedisCache
from chatfocus.tests.test_faults import TcpProxy


@pytest.fixture
def redis_behind_proxy():
    host, port = settings.REDIS_URL.split("//")[1].split("/")[0].split(":")
    database = settings.REDIS_URL.rsplit("/", 1)[1] or "0"
    proxy = TcpProxy(target=(host, int(port)))
    proxy.start()
    cache = InvalidationRetryingRedisCache(
        f"redis://127.0.0.1:{proxy.port}/{database}",
        {
            "KEY_PREFIX": "cf-cache-test",
            "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        },
    )
    cache.clear()
    yield cache, proxy
    proxy.cut()
    proxy.restore()
    cache.clear()
    proxy.cut()


def test_writes_lost_in_an_outage_are_not_served_stale_once_redis_is_back(redis_behind_proxy, caplog):
    cache, proxy = redis_behind_proxy
    cache.set_many({"version": 1, "state": "active", "untouched": "kept"})
    cache.set("revoked", "active")

    proxy.cut()
    with caplog.at_level(logging.WARNING):
        assert cache.set("version", 2) is None
        assert cache.delete("state") is False
        assert cache.set_many({"revoked": "revoked"}) == []
        assert cache.get("version") is None  # down: a miss, the caller reads the database
    proxy.restore()

    # Redis still holds the pre-outage values; none of the keys written during the outage is served.
    assert cache.get("version") is None
    assert cache.get_many(["state", "revoked", "untouched"]) == {"untouched": "kept"}
    cache.set("version", 3)
    assert cache.get("version") == 3


def test_lost_writes_are_deleted_from_redis_when_it_answers_again(redis_behind_proxy):
    cache, proxy = redis_behind_proxy
    cache.set("entitlements", "free")
    proxy.cut()
    cache.delete("entitlements")
    proxy.restore()
    cache._next_retry = 0  # the retry interval is about not hammering a dead Redis, not tested here
    assert cache.get("anything") is None
    assert not cache._lost_writes
    assert cache.client.get_client().exists(cache.make_and_validate_key("entitlements")) == 0


def test_without_ignore_exceptions_a_lost_write_still_raises(redis_behind_proxy):
    cache, proxy = redis_behind_proxy
    cache._ignore_exceptions = False
    proxy.cut()
    with pytest.raises(Exception):  # noqa: B017 - redis' ConnectionError family
        cache.set("key", 1)
    assert "key" in cache._lost_writes[None]
