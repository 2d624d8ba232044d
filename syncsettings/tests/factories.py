import itertools
import time
import uuid

import factory
from django.utils import timezone

from accounts.tests.factories import UserFactory
from syncsettings.models import Device, Entry, Snapshot, SyncState

_counter = itertools.count()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def hlc(ms: int | None = None, counter: int = 0) -> str:
    return f"{now_ms() if ms is None else ms}-{counter}"


def make_op(
    key: str, value=None, *, op: str = "set", at: int | None = None, counter: int = 0, op_id: str | None = None
):
    """One push op; `at` is the HLC's unix ms (default: now)."""
    body = {"op_id": op_id or f"op-{uuid.uuid4().hex}", "key": key, "op": op, "hlc": hlc(at, counter)}
    if op != "delete":
        body["value"] = value
    return body


class DeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Device

    user = factory.SubFactory(UserFactory)
    device_id = factory.Sequence(lambda n: f"device-{n}")
    name = factory.Sequence(lambda n: f"Laptop {n}")
    browser = "chrome"
    platform = "mac"
    created_at = factory.LazyFunction(timezone.now)
    last_seen_at = factory.LazyFunction(timezone.now)


class SnapshotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Snapshot

    user = factory.SubFactory(UserFactory)
    document = factory.LazyFunction(dict)
    version = 0
    reason = Snapshot.MANUAL
    label = factory.Sequence(lambda n: f"snapshot {n}")
    created_at = factory.LazyFunction(timezone.now)


def stored_state(user):
    """(version, live document as stored, bytes used, key count), or None before the user's first write."""
    state = SyncState.objects.filter(user=user).first()
    if state is None:
        return None
    document = dict(Entry.objects.filter(user=user, deleted=False).values_list("key", "value"))
    return (state.version, document, state.bytes_used, state.key_count)
