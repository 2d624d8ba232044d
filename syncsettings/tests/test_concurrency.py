"""Concurrent pushes and pulls on real PostgreSQL connections (issue tests 1, 2, 5, 7, 15, 16)."""

import threading
import time

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from syncsettings import store
from syncsettings.models import Change, Device, Entry, SyncState
from syncsettings.tests.conc import run_concurrently
from syncsettings.tests.conftest import SyncClient
from syncsettings.tests.factories import make_op, now_ms

pytestmark = pytest.mark.django_db(transaction=True)


def clone(sync: SyncClient) -> SyncClient:
    """Another client with the same credentials (a separate device / thread)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=sync.client._credentials["HTTP_AUTHORIZATION"])
    client.user = sync.user
    return SyncClient(client)


def assert_gapless(user):
    versions = sorted(Change.objects.filter(user=user, status="applied").values_list("version", flat=True))
    assert versions == list(range(1, len(versions) + 1))
    assert SyncState.objects.get(user=user).version == len(versions)


def test_two_devices_pushing_different_keys_at_once_both_apply_with_gapless_versions(sync):
    laptop, desktop = clone(sync), clone(sync)
    results = run_concurrently(
        lambda: laptop.push("laptop", [make_op(f"laptop/{i}", i) for i in range(20)]),
        lambda: desktop.push("desktop", [make_op(f"desktop/{i}", i) for i in range(20)]),
    )
    assert all(response.status_code == 200 for response in results)
    versions = [r["version"] for response in results for r in response.json()["results"]]
    assert sorted(versions) == list(range(1, 41))
    assert_gapless(sync.user)
    document = sync.document()
    assert document == {**{f"laptop/{i}": i for i in range(20)}, **{f"desktop/{i}": i for i in range(20)}}


def waiting_for_locks() -> int:
    # From this thread's own connection, in autocommit: a transaction sees one snapshot of pg_stat_activity.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


@pytest.mark.parametrize("first_arrival_wins", [True, False])
def test_same_key_pushed_concurrently_the_arrival_order_is_controlled_and_the_higher_hlc_wins(
    sync, monkeypatch, first_arrival_wins
):
    """Both pushes queue on the user's row lock in a known order; the lower HLC loses whichever comes first."""
    sync.push("setup", [make_op("other", 1)])
    monkeypatch.setattr(store, "LOCK_TIMEOUT_MS", 60_000)
    base = now_ms() - 1000
    first, second = clone(sync), clone(sync)
    first_hlc, second_hlc = (base + 10, base) if first_arrival_wins else (base, base + 10)
    locker = connections.create_connection("default")
    responses, errors = {}, []

    def push(name, client, device, value, at):
        try:
            responses[name] = client.push(device, [make_op("theme", value, at=at)])
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=push, args=("first", first, "laptop", "light", first_hlc)),
        threading.Thread(target=push, args=("second", second, "desktop", "dark", second_hlc)),
    ]
    try:
        locker.set_autocommit(False)
        with locker.cursor() as cursor:
            cursor.execute("SELECT 1 FROM syncsettings_syncstate WHERE user_id = %s FOR UPDATE", [sync.user.id])
        # PostgreSQL grants a row lock to its waiters in the order they queued.
        threads[0].start()
        wait_until(lambda: waiting_for_locks() == 1)
        threads[1].start()
        wait_until(lambda: waiting_for_locks() == 2)
    finally:
        locker.rollback()
        locker.close()
    for thread in threads:
        thread.join(60)
    assert not errors and not any(thread.is_alive() for thread in threads)
    first_result, second_result = (responses[name].json()["results"][0] for name in ("first", "second"))
    assert first_result == {"op_id": first_result["op_id"], "status": "applied", "version": 2}
    if first_arrival_wins:
        assert second_result["status"] == "superseded" and second_result["version"] is None
    else:
        assert second_result["status"] == "applied" and second_result["version"] == 3
    expected = "light" if first_arrival_wins else "dark"
    laptop_doc, _ = first.pull_all()
    desktop_doc, _ = second.pull_all()
    assert laptop_doc == desktop_doc == {"other": 1, "theme": expected}
    assert Change.objects.filter(user=sync.user, key="theme").count() == 2


def test_concurrent_retries_of_the_same_push_apply_once(sync):
    ops = [make_op(f"k{i}", i) for i in range(10)]
    clients = [clone(sync) for _ in range(4)]
    results = run_concurrently(*[lambda c=c: c.push("laptop", ops) for c in clients])
    assert all(response.status_code == 200 for response in results)
    bodies = [response.json() for response in results]
    applied = [b for b in bodies if b["results"][0]["status"] == "applied"]
    assert len(applied) == 1
    first = [r["version"] for r in applied[0]["results"]]
    for body in bodies:
        if body is not applied[0]:
            assert {r["status"] for r in body["results"]} == {"duplicate"}
            assert [r["version"] for r in body["results"]] == first
    assert SyncState.objects.get(user=sync.user).version == 10
    assert_gapless(sync.user)


def test_paging_while_another_thread_pushes_ends_at_exactly_the_server_state(sync):
    writer, reader = clone(sync), clone(sync)
    writer.push("writer", [make_op(f"k{i}", 0) for i in range(50)])
    done = threading.Event()

    def write():
        try:
            for round_ in range(1, 16):
                ops = [make_op(f"k{(round_ * 7 + j) % 60}", round_) for j in range(8)]
                ops.append(make_op(f"k{round_ % 50}", None, op="delete"))
                assert writer.push("writer", ops).status_code == 200
        finally:
            done.set()

    def read():
        document, version, pages = {}, 0, 0
        seen_versions = []
        while True:
            body = reader.pull(since=version, limit=7).json()
            pages += 1
            for change in body["changes"]:
                seen_versions.append(change["version"])
                if change["deleted"]:
                    document.pop(change["key"], None)
                else:
                    document[change["key"]] = change["value"]
            version = body["version"]
            if not body["has_more"] and done.is_set():
                # One last pull after the writer finished.
                body = reader.pull(since=version).json()
                for change in body["changes"]:
                    seen_versions.append(change["version"])
                    if change["deleted"]:
                        document.pop(change["key"], None)
                    else:
                        document[change["key"]] = change["value"]
                return document, body["version"], seen_versions, pages

    _, (document, version, seen_versions, pages) = run_concurrently(write, read)
    assert pages > 2
    assert seen_versions == sorted(seen_versions) and len(seen_versions) == len(set(seen_versions))
    assert version == SyncState.objects.get(user=sync.user).version
    assert document == sync.document()
    assert document == {e.key: e.value for e in Entry.objects.filter(user=sync.user, deleted=False)}


def test_lock_held_by_another_connection_answers_503_with_retry_after(sync, monkeypatch):
    sync.push("laptop", [make_op("a", 1)])
    locker = connections.create_connection("default")
    try:
        locker.set_autocommit(False)
        with locker.cursor() as cursor:
            cursor.execute("SELECT 1 FROM syncsettings_syncstate WHERE user_id = %s FOR UPDATE", [sync.user.id])
        # Shorten the wait: the same path as the production 5 s timeout.
        monkeypatch.setattr(store, "LOCK_TIMEOUT_MS", 200)
        response = sync.push("laptop", [make_op("b", 2)])
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
        assert response["Retry-After"] == "2"
    finally:
        locker.rollback()
        locker.close()
    assert sync.document() == {"a": 1}
    assert connection.is_usable()


def test_increments_from_four_devices_with_retries_add_up_exactly(sync, set_tier):
    set_tier("pro")  # four devices: more than the free tier's three
    devices = [f"device-{n}" for n in range(4)]
    clients = [clone(sync) for _ in devices]

    def increments(client, device):
        for batch in range(10):
            ops = [make_op("usageStats/filtersUsed", 1, op="incr", op_id=f"{device}-{batch}-{i}") for i in range(10)]
            assert client.push(device, ops).status_code == 200
            if batch % 3 == 0:
                # A retry after a lost response: the same op_ids again.
                retried = client.push(device, ops[:5]).json()
                assert {r["status"] for r in retried["results"]} == {"duplicate"}
        return True

    run_concurrently(*[lambda c=c, d=d: increments(c, d) for c, d in zip(clients, devices, strict=True)])
    assert sync.document() == {"usageStats/filtersUsed": 400}
    assert SyncState.objects.get(user=sync.user).version == 400
    assert_gapless(sync.user)


def test_new_devices_racing_for_the_last_device_slot_let_exactly_one_in(sync, set_tier):
    set_tier("free", devices=3)
    sync.push("laptop", [make_op("a", 1)])
    sync.push("desktop", [make_op("b", 1)])
    clients = [clone(sync) for _ in range(4)]
    results = run_concurrently(
        *[lambda c=c, n=n: c.push(f"new-{n}", [make_op(f"from-{n}", 1)]) for n, c in enumerate(clients)]
    )
    codes = sorted(response.status_code for response in results)
    assert codes == [200, 422, 422, 422]
    assert Device.objects.filter(user=sync.user).count() == 3
    assert_gapless(sync.user)
