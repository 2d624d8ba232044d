"""SQL query budgets of DESIGN.md section 5, measured outside any test transaction (as in production).

Idle pull: no SQL (version from the cache), at most one lookup when that cache is cold. Pull with
changes: at most 2, plus 1 on an auth cache miss. Push: at most 6 whatever its op count.
"""

import pytest
from django.core.cache import cache

from syncsettings import services
from syncsettings.tests.factories import make_op

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _entitlements(set_tier):
    # Billing caches entitlements itself (a query on its cache miss): these budgets are sync's own.
    set_tier("free")


@pytest.fixture
def warm(sync):
    """A user with 60 keys whose session state and sync version are in the cache."""
    for start in range(0, 60, 20):
        assert sync.push("laptop", [make_op(f"k{i}", {"n": i}) for i in range(start, start + 20)]).status_code == 200
    assert sync.pull(since=60).status_code == 200
    return sync


def test_idle_pull_runs_no_sql_when_the_version_is_cached(warm, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert warm.pull(since=60).json()["changes"] == []
    with django_assert_num_queries(0):
        assert warm.pull(etag='"v60"').status_code == 304
    with django_assert_num_queries(0):
        assert warm.settings(HTTP_IF_NONE_MATCH='"v60"').status_code == 304


def test_idle_pull_with_a_cold_version_cache_runs_one_query(warm, django_assert_num_queries):
    cache.delete(services.VERSION_CACHE_KEY.format(user_id=warm.user.id))
    with django_assert_num_queries(1):
        assert warm.pull(etag='"v60"').status_code == 304
    with django_assert_num_queries(0):
        assert warm.pull(since=60).json()["changes"] == []


def test_pull_with_50_changes_stays_within_two_queries_and_three_with_an_auth_miss(warm, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        body = warm.pull(since=10).json()
    assert len(body["changes"]) == 50
    cache.clear()  # session revocation state and version both cold
    with django_assert_max_num_queries(3):
        assert len(warm.pull(since=10, limit=50).json()["changes"]) == 50


@pytest.mark.parametrize("count", [1, 10, 100])
def test_push_stays_within_six_queries_whatever_its_op_count(warm, django_assert_max_num_queries, count):
    with django_assert_max_num_queries(6):
        response = warm.push("laptop", [make_op(f"k{i}", i, counter=1) for i in range(count)])
    assert response.status_code == 200 and len(response.json()["results"]) == count


def test_a_push_from_a_known_device_locks_and_reads_in_one_round_trip(warm, django_assert_num_queries):
    # 16 devices of one user queue on that lock: lock + read in one batch, then the write, then COMMIT.
    with django_assert_num_queries(4) as captured:
        assert warm.push("laptop", [make_op(f"k{i}", i, counter=2) for i in range(5)]).status_code == 200
    assert [query["sql"].split()[0] for query in captured.captured_queries] == ["BEGIN", "SET", "WITH", "COMMIT"]


def test_first_push_of_a_new_user_and_device_stays_within_six_queries(sync, django_assert_max_num_queries):
    sync.settings()  # warms the session state cache: auth is not part of the push budget
    with django_assert_max_num_queries(6):
        assert sync.push("phone", [make_op(f"k{i}", i) for i in range(100)]).status_code == 200
    cache.clear()
    sync.settings()
    with django_assert_max_num_queries(6):
        assert sync.push("tablet", [make_op(f"k{i}", i, counter=1) for i in range(100)]).status_code == 200


def test_whole_document_get_is_one_query(warm, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert len(warm.settings().json()["settings"]) == 60
