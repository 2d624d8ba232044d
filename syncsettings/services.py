"""Settings sync verbs: push, pull, the whole document, devices, snapshots, quota, history, pruning.

The rules live in syncsettings.protocol (plain Python), every query in syncsettings.store; a verb
here reads straight: `with transaction.atomic(): lock → read → apply → check quota → write → publish`.

- Every space (today: a user's own) has one state row. A write takes its row lock (with a
  5 s lock timeout, then 503), so a space's pushes run one at a time and versions stay gapless.
- The current (version, pruned_version, bytes_used) is kept in the cache, written while the row lock is held, so
  the cache is never behind the database and an idle poll needs no SQL.
"""

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from billing import services as billing_services
from billing.tiers import HISTORY, SECRET_KEYS, SNAPSHOTS
from chatfocus.cache import get_many_prefetched, get_prefetched
from chatfocus.exceptions import (
    DomainError,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    QuotaExceeded,
    ServiceUnavailable,
    ValidationFailed,
)
from chatfocus.metrics import SYNC_OPS, SYNC_PUSHES
from syncsettings import protocol, realtime, store
from syncsettings.crypto import SECRET_PREFIX, is_secret, rotate_token, seal, unseal
from syncsettings.models import Device, Snapshot
from syncsettings.protocol import APPLIED, DUPLICATE, SUPERSEDED, Op, PullPage, PushResult
from syncsettings.validation import SERVER_DEVICE

VERSION_CACHE_KEY = "sync:version2:{user_id}"
VERSION_CACHE_SECONDS = 600
DEVICES_CACHE_KEY = "sync:devices:{user_id}"
DEVICES_CACHE_SECONDS = 300
RETRY_AFTER_LOCKED = 2


class CursorExpired(DomainError):
    code, status, message = "cursor_expired", 410, "Changes this old were pruned: fetch the whole document again."


class CursorAhead(DomainError):
    code, status, message = "cursor_ahead", 409, "This version is ahead of the server's."


def server_time_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class UserRef:
    """A user known only by id, for jobs that hold sync rows but no user object (as the JWT user is)."""

    id: Any

    @property
    def pk(self):
        return self.id


def get_limits(*, user, prefetched: dict | None = None):
    """The user's tier limits, from billing (never from billing's tables); see get_entitlements' `prefetched`."""
    return billing_services.get_entitlements(user=user, prefetched=prefetched).limits


def _space_id(user):
    """The storage space a user's sync writes to: today always their own (its id is the user's)."""
    return user.id


# --- Cache of (version, pruned_version) ------------------------------------------------------


def _version_key(user_id) -> str:
    return VERSION_CACHE_KEY.format(user_id=user_id)


def cached_version(*, user_id, prefetched: dict | None = None) -> tuple[int, int, int] | None:
    """(version, pruned_version, bytes_used) as last published, or None (`prefetched`: see version_cache_keys)."""
    return get_prefetched(_version_key(user_id), prefetched)


def current_version(*, user_id) -> int:
    """The version now (0 before the first write): the cache, else one read (a real-time socket's join)."""
    cached = cached_version(user_id=user_id)
    return cached[0] if cached is not None else (store.state_row(_space_id(UserRef(user_id))) or (0,))[0]


def version_cache_keys(*, user_id) -> list[str]:
    """The cache keys pull_changes and get_settings read (see their `prefetched`)."""
    return [_version_key(user_id)]


def _publish_version(user_id, version: int, pruned_version: int, bytes_used: int) -> None:
    # Called with the row lock held, so concurrent pushes publish in version order.
    cache.set(_version_key(user_id), (version, pruned_version, bytes_used), timeout=VERSION_CACHE_SECONDS)


# --- The locked write every verb shares ---------------------------------------------------------


def _lock(space_id, *, read_after=None) -> store.State:
    try:
        return store.lock_state(space_id, read_after=read_after)
    except store.Locked as error:
        raise ServiceUnavailable(
            "Another sync of this account is still running; retry shortly.", retry_after=RETRY_AFTER_LOCKED
        ) from error


def _raise_quota(violation: protocol.QuotaViolation | None) -> None:
    if violation is not None:
        raise QuotaExceeded(violation.message, details=violation.details)


@dataclass
class _Write:
    """A write in progress under the space's lock (see _locked)."""

    user: Any
    state: store.State
    now: datetime
    published: bool = False


@contextmanager
def _locked(user, *, read_after=None):
    """`transaction.atomic()` holding the space's row lock; yields a _Write (store.lock_state's `read_after`)."""
    write = None
    try:
        with transaction.atomic():
            write = _Write(user, _lock(_space_id(user), read_after=read_after), timezone.now())
            yield write
    except BaseException:
        if write is not None and write.published:
            # Published but not committed: drop the cache so nobody waits for a version that never came.
            cache.delete(_version_key(user.id))
        raise


def _apply(write: _Write, *, ops: list[Op], device_id: str, seen: dict, slots: dict, limits) -> protocol.Batch:
    """Decide the ops (protocol.apply_ops) and refuse a batch that crosses a quota: nothing is written yet."""
    try:
        batch = protocol.apply_ops(
            write.state, ops=ops, device_id=device_id, seen=seen, slots=slots, seal=seal, unseal=unseal
        )
    except protocol.OpRejected as error:
        raise ValidationFailed(fields={error.field: [error.message]}) from error
    _raise_quota(protocol.check_quota(batch=batch, ops=ops, limits=limits))
    return batch


def _write(write: _Write, *, batch: protocol.Batch, slots: dict, device_id: str) -> None:
    """Store the batch and publish the new version: to the cache now (under the lock), to sockets on commit."""
    store.write_batch(_space_id(write.user), device_id=device_id, batch=batch, slots=slots, now=write.now)
    if batch.version != write.state.version or write.state.created:
        _publish_version(write.user.id, batch.version, write.state.pruned_version, batch.bytes_used)
        write.published = True
    if batch.version != write.state.version:
        poke = {"user_id": write.user.id, "version": batch.version, "device_id": device_id}
        transaction.on_commit(lambda: realtime.publish_changed(**poke))


def _write_server_ops(write: _Write, *, desired: dict, kind: str, limits) -> protocol.Batch:
    """Write the server ops that make the document `desired` (PUT settings, restore)."""
    slots = store.load_all_slots(_space_id(write.user))
    prefix = f"{kind}-{time.time_ns():x}"
    ops = protocol.server_ops(desired=desired, slots=slots, now_ms=server_time_ms(), prefix=prefix, unseal=unseal)
    batch = _apply(write, ops=ops, device_id=SERVER_DEVICE, seen={}, slots=slots, limits=limits)
    _write(write, batch=batch, slots=slots, device_id=SERVER_DEVICE)
    return batch


# --- Push -----------------------------------------------------------------------------------


def push_cache_keys(*, user_id) -> list[str]:
    """The cache keys push_changes reads before taking the lock (see its `prefetched`)."""
    return [_devices_key(user_id), *billing_services.entitlements_cache_keys(user_id=user_id)]


def push_changes(*, user, device_id: str, ops: list[Op], prefetched: dict | None = None) -> dict:
    """Apply a validated batch of ops from one device: {version, server_time, results} (results in op order).

    `prefetched`: what a caller's own `cache.get_many` returned for push_cache_keys."""
    # Looked up before the lock, with the tier limits in one round trip: a known device (the usual
    # case) adds nothing to the lock's hold.
    cached = get_many_prefetched(push_cache_keys(user_id=user.id), prefetched)
    if any(op.op != "delete" and is_secret(op.key) for op in ops):
        billing_services.require_feature(user=user, feature=SECRET_KEYS, prefetched=cached)
    device_known = device_id in (cached.get(_devices_key(user.id)) or frozenset())
    space_id = _space_id(user)
    op_ids, keys = [op.op_id for op in ops], list({op.key for op in ops})
    # On PostgreSQL the ops' history and entries are read in the lock's own round trip.
    read_after = store.seen_and_slots_query(space_id, op_ids, keys) if store.is_postgres() else None

    limits = get_limits(user=user, prefetched=cached)
    try:
        with _locked(user, read_after=read_after) as write:
            if not device_known:
                _register_device_for_push(user_id=user.id, device_id=device_id, limits=limits, now=write.now)
            if write.state.created:
                seen, slots = {}, {}
            elif write.state.read_rows is not None:
                seen, slots = store.seen_and_slots_from(write.state.read_rows)
            else:
                seen, slots = store.load_seen_and_slots(space_id, op_ids, keys)
            batch = _apply(write, ops=ops, device_id=device_id, seen=seen, slots=slots, limits=limits)
            _write(write, batch=batch, slots=slots, device_id=device_id)
    except DomainError as error:
        SYNC_PUSHES.labels(outcome=error.code).inc()
        raise
    SYNC_PUSHES.labels(outcome="ok").inc()
    for status in (APPLIED, SUPERSEDED, DUPLICATE):
        count = sum(1 for result in batch.results if result["status"] == status)
        if count:
            SYNC_OPS.labels(status=status).inc(count)
    result = PushResult(version=batch.version, server_time=server_time_ms(), results=batch.results)
    result.quota = (batch.bytes_used, limits.sync_bytes)
    return result


# --- Pull -----------------------------------------------------------------------------------

NOT_MODIFIED = object()


def pull_cache_keys(*, user_id) -> list[str]:
    """The cache keys pull_changes and the pull's quota headers read (see `prefetched`)."""
    return [_version_key(user_id), *billing_services.entitlements_cache_keys(user_id=user_id)]


def _pulled_change(key: str, value_json: str | None, *rest) -> str:
    if value_json is not None and is_secret(key):
        value_json = json.dumps(unseal(key, json.loads(value_json)))
    return protocol.change_json(key, value_json, *rest)


def pull_changes(*, user, since: int | None, limit: int, if_none_match: int | None = None, prefetched=None) -> PullPage:
    """The changes after `since` (a PullPage); an idle poll (at the cached version) is answered from the cache."""
    cached = cached_version(user_id=user.id, prefetched=prefetched)
    if cached is not None and cached[0] in (since, if_none_match):
        unchanged = if_none_match == cached[0]
        return PullPage([], cached[0], False, server_time_ms(), cached[2], not_modified=unchanged)
    cursor = since if since is not None else (if_none_match or 0)
    version, pruned_version, bytes_used, rows = store.read_changes(_space_id(user), cursor, limit)
    if cached is None:
        # `add`, not `set`: a push publishing a newer version meanwhile must win.
        cache.add(_version_key(user.id), (version, pruned_version, bytes_used), timeout=VERSION_CACHE_SECONDS)
    if cursor > version:
        raise CursorAhead(details={"version": version})
    if 0 < cursor < pruned_version:
        raise CursorExpired(details={"pruned_version": pruned_version, "version": version})
    if if_none_match is not None and if_none_match == version:
        return PullPage([], version, False, server_time_ms(), bytes_used, not_modified=True)
    has_more = len(rows) > limit
    rows = rows[:limit]
    # The last row can be newer than `version` (committed between the two reads on SQLite).
    last = rows[-1][3] if rows else 0
    return PullPage(
        changes=[_pulled_change(*row) for row in rows],
        version=last if has_more else max(version, last),
        has_more=has_more,
        server_time=server_time_ms(),
        bytes_used=bytes_used,
    )


# --- The whole document ---------------------------------------------------------------------


def _unseal_document(document: dict) -> dict:
    return {key: unseal(key, value) for key, value in document.items()}


def get_settings(*, user, if_none_match: int | None = None, prefetched: dict | None = None):
    """{settings, version, updated_at} of the whole document, or NOT_MODIFIED when `if_none_match` is current."""
    cached = cached_version(user_id=user.id, prefetched=prefetched)
    if if_none_match is not None and cached is not None and cached[0] == if_none_match:
        return NOT_MODIFIED
    document, version, updated_at = store.read_document(_space_id(user))
    if if_none_match is not None and if_none_match == version:
        return NOT_MODIFIED
    return {"settings": _unseal_document(document), "version": version, "updated_at": updated_at}


def replace_settings(*, user, settings: dict, if_match: int | None) -> dict:
    """Replace the whole document (If-Match required): an auto snapshot first, then the diff as server ops."""
    if if_match is None:
        raise PreconditionRequired('Send If-Match: "v<version>" with the version you last read.')
    if any(is_secret(key) for key in settings):
        billing_services.require_feature(user=user, feature=SECRET_KEYS)
    limits = get_limits(user=user)
    with _locked(user) as write:
        if write.state.version != if_match:
            raise PreconditionFailed(
                "The settings changed since you read them: GET them again.", details={"version": write.state.version}
            )
        _take_snapshot(
            user_id=user.id, reason=Snapshot.AUTO, label="Before replacing the settings", limits=limits, now=write.now
        )
        _write_server_ops(write, desired=settings, kind="put", limits=limits)
    return get_settings(user=user)


# --- Devices --------------------------------------------------------------------------------


def _devices_key(user_id) -> str:
    return DEVICES_CACHE_KEY.format(user_id=user_id)


def _upsert_device(*, user_id, device_id: str, limits, now, profile: dict | None) -> bool:
    """Register or touch a device unless that would pass the device limit (422); True if new."""
    created = store.upsert_device(user_id, device_id=device_id, max_devices=limits.devices, now=now, profile=profile)
    if created is None:
        raise QuotaExceeded(
            f"Your plan syncs at most {limits.devices} devices: remove one or upgrade.",
            details={"limit": "devices", "allowed": limits.devices},
        )
    return created


def _register_device_for_push(*, user_id, device_id: str, limits, now) -> None:
    """Count a pushing device once (cached for a few minutes, which also bounds last_seen writes)."""
    known = cache.get(_devices_key(user_id)) or frozenset()
    if device_id in known:
        return
    _upsert_device(user_id=user_id, device_id=device_id, limits=limits, now=now, profile=None)
    # Under the row lock: concurrent pushes of this user cannot lose each other's additions.
    cache.set(_devices_key(user_id), known | {device_id}, timeout=DEVICES_CACHE_SECONDS)


def list_devices(*, user) -> QuerySet:
    return store.devices(_space_id(user))


def register_device(*, user, device_id: str, name: str, browser: str, platform: str) -> tuple[Device, bool]:
    """Register a device (or update its name, browser and platform); 422 past the tier's device limit."""
    limits = get_limits(user=user)
    profile = {"name": name, "browser": browser, "platform": platform}
    with transaction.atomic():
        _lock(_space_id(user))
        created = _upsert_device(
            user_id=user.id, device_id=device_id, limits=limits, now=timezone.now(), profile=profile
        )
    return list_devices(user=user).get(device_id=device_id), created


def delete_device(*, user, device_id: str) -> None:
    """Forget a device (its synced data stays); 404 for unknown and other users' devices."""
    if not store.delete_device(_space_id(user), device_id):
        raise NotFound("No such device.")
    cache.delete(_devices_key(user.id))


# --- Snapshots ------------------------------------------------------------------------------


def list_snapshots(*, user) -> QuerySet:
    billing_services.require_feature(user=user, feature=SNAPSHOTS)
    return store.snapshots(_space_id(user)).defer("document").order_by("-created_at", "-id")


def _take_snapshot(*, user_id, reason: str, label: str, limits, now) -> Snapshot:
    """Copy the document (sealed values as stored) within the tier's snapshot count (see protocol.snapshot_room)."""
    evict, violation = protocol.snapshot_room(store.snapshot_kinds(user_id), reason=reason, limit=limits.snapshots)
    _raise_quota(violation)
    if evict:
        store.delete_snapshots(evict)
    return store.create_snapshot(user_id, reason=reason, label=label, now=now)


def create_snapshot(*, user, label: str = "") -> Snapshot:
    """A manual snapshot of the current document."""
    billing_services.require_feature(user=user, feature=SNAPSHOTS)
    limits = get_limits(user=user)
    with transaction.atomic():
        _lock(_space_id(user))
        return _take_snapshot(
            user_id=_space_id(user), reason=Snapshot.MANUAL, label=label, limits=limits, now=timezone.now()
        )


def restore_snapshot(*, user, snapshot_id: int) -> dict:
    """Write the snapshot's document as new server ops (every device converges); undo via the pre-restore snapshot."""
    billing_services.require_feature(user=user, feature=SNAPSHOTS)
    snapshot = store.snapshots(_space_id(user)).filter(id=snapshot_id).first()
    if snapshot is None:
        raise NotFound("No such snapshot.")
    desired = _unseal_document(snapshot.document)
    limits = get_limits(user=user)
    with _locked(user) as write:
        label = f"Before restoring snapshot {snapshot.id}"
        undo = _take_snapshot(
            user_id=_space_id(user), reason=Snapshot.PRE_RESTORE, label=label, limits=limits, now=write.now
        )
        batch = _write_server_ops(write, desired=desired, kind="restore", limits=limits)
    return {
        "version": batch.version,
        "restored_snapshot_id": snapshot.id,
        "undo_snapshot_id": undo.id,
        "applied": sum(1 for result in batch.results if result["status"] == APPLIED),
        "server_time": server_time_ms(),
    }


# --- Quota and history ----------------------------------------------------------------------


def get_quota(*, user) -> dict:
    """Usage against the tier's limits; `over_quota` means sets are refused until something is deleted."""
    entitlements = billing_services.get_entitlements(user=user)
    limits, used = entitlements.limits, store.usage_counts(_space_id(user))
    over = used["bytes_used"] > limits.sync_bytes or used["keys_used"] > limits.keys
    return {
        **used,
        "tier": entitlements.tier,
        "bytes_limit": limits.sync_bytes,
        "keys_limit": limits.keys,
        "value_bytes_limit": limits.value_bytes,
        "devices_limit": limits.devices,
        "snapshots_limit": limits.snapshots,
        "history_days": limits.history_days,
        "over_quota": over,
    }


def list_history(*, user, key: str | None = None) -> QuerySet:
    """The user's change log (applied and superseded ops), optionally for one key."""
    billing_services.require_feature(user=user, feature=HISTORY)
    return store.changes(_space_id(user), key)


# --- Pruning --------------------------------------------------------------------------------


def prune_user_history(*, user, now: datetime | None = None) -> dict:
    """Drop log rows and tombstones older than the tier's history window, advancing pruned_version."""
    now = now or timezone.now()
    horizon = now - timedelta(days=get_limits(user=user).history_days)
    with transaction.atomic():
        state = _lock(_space_id(user))
        changes, tombstones, pruned_version = store.prune(
            _space_id(user), horizon=horizon, pruned_version=state.pruned_version
        )
        if pruned_version != state.pruned_version:
            _publish_version(user.id, state.version, pruned_version, state.bytes_used)
    return {"changes": changes, "tombstones": tombstones}


def prune_sync_history(*, now: datetime | None = None) -> dict:
    """Prune every user's history (the periodic job): totals of deleted log rows and tombstones."""
    totals = {"users": 0, "changes": 0, "tombstones": 0}
    for user_id in store.space_ids():
        result = {"users": 1, **prune_user_history(user=UserRef(user_id), now=now)}
        totals = {name: count + result[name] for name, count in totals.items()}
    return totals


# --- Keys rotation --------------------------------------------------------------------------


def rotate_user_encryption(*, user) -> int:
    """Re-encrypt one user's stored secret values with the first key, under the user's sync lock."""
    with transaction.atomic():
        _lock(_space_id(user))
        return store.rewrite_sealed_values(_space_id(user), prefix=SECRET_PREFIX, rewrite=rotate_token)


def rotate_encryption_keys() -> int:
    """Re-encrypt every stored secret value with the first FIELD_ENCRYPTION_KEYS key; the count of values."""
    return sum(rotate_user_encryption(user=UserRef(user_id)) for user_id in store.space_ids())


# --- Export and deletion (called by accounts) -----------------------------------------------


def export_sync_data(*, user) -> dict:
    """Everything sync stores about the user, secret values decrypted."""
    return store.export(_space_id(user), unseal=unseal)


def delete_sync_data(*, user) -> None:
    """Erase the user's sync data (entries, log, devices, snapshots, state) and its cache entries."""
    store.delete_space(_space_id(user))
    cache.delete_many([_version_key(user.id), _devices_key(user.id)])
