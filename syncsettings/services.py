"""Settings sync verbs: push, pull, the whole document, devices, snapshots, quota, history, pruning.

The protocol (DESIGN.md section 5), implemented here once:

- Every user has one SyncState row. A push locks it (`SELECT … FOR UPDATE` with a 5 s lock timeout),
  so a user's pushes run one at a time and each applied op takes the next version: versions are
  gapless. Superseded, duplicate and rejected ops take none.
- Conflicts are per key, last writer wins by HLC: the stamp `(hlc ms, hlc counter, device_id)` of a
  `set`/`delete` must be higher than the key's stored stamp, else the op is `superseded` (logged, not
  applied). An `incr` adds its delta to the stored number, is never superseded, and raises the key's
  stamp to the higher of the two, so increments from several devices add up in any order.
- The change log has UNIQUE(user, op_id): a retried op answers `duplicate` with its first result.
- Pull reads the entries (latest state per key) with version > since, in version order, from the
  (user, version) index. The current (version, pruned_version) is kept in the cache, written while
  the row lock is held, so the cache is never behind the database and an idle poll needs no SQL.
- Quotas are checked on the result of the whole push: a push that would leave the user over a
  limit applies nothing (422), except that deletes are always allowed.
"""

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import OperationalError, connection, transaction
from django.db.models import Max, QuerySet
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
from syncsettings.crypto import SECRET_PREFIX, is_secret, rotate_token, seal, unseal
from syncsettings.models import Change, Device, Entry, Snapshot, SyncState
from syncsettings.validation import SERVER_DEVICE, Op, is_number, value_size

VERSION_CACHE_KEY = "sync:version:{user_id}"
VERSION_CACHE_SECONDS = 600
DEVICES_CACHE_KEY = "sync:devices:{user_id}"
DEVICES_CACHE_SECONDS = 300
LOCK_TIMEOUT_MS = 5000
RETRY_AFTER_LOCKED = 2
LOCK_NOT_AVAILABLE = "55P03"

APPLIED, SUPERSEDED, DUPLICATE = "applied", "superseded", "duplicate"


class CursorExpired(DomainError):
    code, status, message = "cursor_expired", 410, "Changes this old were pruned: fetch the whole document again."


class CursorAhead(DomainError):
    code, status, message = "cursor_ahead", 409, "This version is ahead of the server's."


def server_time_ms() -> int:
    return time.time_ns() // 1_000_000


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


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


# --- Cache of (version, pruned_version) ------------------------------------------------------


def _version_key(user_id) -> str:
    return VERSION_CACHE_KEY.format(user_id=user_id)


def cached_version(*, user_id, prefetched: dict | None = None) -> tuple[int, int] | None:
    """(version, pruned_version) as last published, or None.

    `prefetched`: what a caller's own `cache.get_many` returned for version_cache_keys.
    """
    key = _version_key(user_id)
    return get_prefetched(key, prefetched)


def version_cache_keys(*, user_id) -> list[str]:
    """The cache keys pull_changes and get_settings read (see their `prefetched`)."""
    return [_version_key(user_id)]


def _publish_version(user_id, version: int, pruned_version: int) -> None:
    # Called with the row lock held, so concurrent pushes publish in version order.
    cache.set(_version_key(user_id), (version, pruned_version), timeout=VERSION_CACHE_SECONDS)


def _forget_version(user_id) -> None:
    cache.delete(_version_key(user_id))


# --- Locking the user's row -----------------------------------------------------------------


@dataclass
class _State:
    version: int
    bytes_used: int
    key_count: int
    pruned_version: int
    created: bool = False
    # What `read_after` returned (see _lock_state); None when it did not run under the lock.
    read_rows: list | None = None


STATE_COLUMNS = "version, bytes_used, key_count, pruned_version"


def _lock_state(user_id, *, read_after: tuple[str, list] | None = None) -> _State:
    """Lock (creating if needed) the user's SyncState row for this transaction; 503 after the lock timeout.

    One round trip: `SET LOCAL lock_timeout`, the `SELECT … FOR UPDATE` and on PostgreSQL the optional
    `read_after` query (sql, params) travel as one statement batch (psycopg's client-side binding cursor,
    Django's default, allows that). `read_after` runs once the lock is held, so it sees every change
    committed under it; its rows land in `state.read_rows` (None when the row had to be created first).
    """
    try:
        if _is_postgres():
            with connection.cursor() as cursor:
                sql = (
                    f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'; "
                    f"SELECT {STATE_COLUMNS} FROM syncsettings_syncstate WHERE user_id = %s FOR UPDATE"
                )
                params = [user_id]
                if read_after is not None:
                    sql, params = f"{sql}; {read_after[0]}", params + read_after[1]
                cursor.execute(sql, params)
                cursor.nextset()
                row = cursor.fetchone()
                if row is None:
                    # First push ever: create and lock in one statement (a racing creator makes it update).
                    cursor.execute(
                        "INSERT INTO syncsettings_syncstate "
                        "(user_id, version, bytes_used, key_count, pruned_version, updated_at) "
                        "VALUES (%s, 0, 0, 0, 0, now()) "
                        "ON CONFLICT (user_id) DO UPDATE SET user_id = EXCLUDED.user_id "
                        # xmax = 0 only on a row this statement inserted (not one a racing creator made).
                        f"RETURNING {STATE_COLUMNS}, xmax = 0",
                        [user_id],
                    )
                    return _State(*cursor.fetchone())
                state = _State(*row)
                if read_after is not None:
                    cursor.nextset()
                    state.read_rows = cursor.fetchall()
                return state
        row = SyncState.objects.select_for_update().filter(user_id=user_id).values_list(*STATE_COLUMNS.split(", "))
        row = row.first()
        if row is None:
            SyncState.objects.create(user_id=user_id)
            return _State(0, 0, 0, 0, created=True)
        return _State(*row)
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise ServiceUnavailable(
                "Another sync of this account is still running; retry shortly.", retry_after=RETRY_AFTER_LOCKED
            ) from error
        raise


# --- Applying ops ---------------------------------------------------------------------------


@dataclass
class _Slot:
    """A key's current state while a batch is applied; `value` is in stored (sealed) form."""

    value: Any
    deleted: bool
    size: int
    version: int
    hlc_ms: int
    hlc_counter: int
    device_id: str
    dirty: bool = False

    @property
    def stamp(self) -> tuple[int, int, str]:
        return (self.hlc_ms, self.hlc_counter, self.device_id)

    @property
    def live(self) -> bool:
        return not self.deleted


def _parse_json(raw):
    return json.loads(raw) if isinstance(raw, str) else raw


SEEN_AND_SLOTS = (
    "SELECT 'c', op_id, status, version, NULL::jsonb, NULL::boolean, NULL::integer, "
    "NULL::bigint, NULL::integer, NULL::varchar "
    "FROM syncsettings_change WHERE user_id = %s AND op_id = ANY(%s) "
    "UNION ALL "
    "SELECT 'e', key, NULL, version, value, deleted, size, hlc_ms, hlc_counter, device_id "
    "FROM syncsettings_entry WHERE user_id = %s AND key = ANY(%s)"
)


def _seen_and_slots_query(user_id, op_ids: list[str], keys: list[str]) -> tuple[str, list]:
    """PostgreSQL: first results of already-logged op_ids and the stored entries of the keys, in one query."""
    return SEEN_AND_SLOTS, [user_id, op_ids, user_id, keys]


def _seen_and_slots_from(rows) -> tuple[dict, dict[str, _Slot]]:
    seen: dict[str, dict] = {}
    slots: dict[str, _Slot] = {}
    for kind, name, _status, version, value, deleted, size, hlc_ms, hlc_counter, device_id in rows:
        if kind == "c":
            seen[name] = {"op_id": name, "status": DUPLICATE, "version": version}
        else:
            slots[name] = _Slot(_parse_json(value), deleted, size, version, hlc_ms, hlc_counter, device_id)
    return seen, slots


def _load_seen_and_slots(user_id, op_ids: list[str], keys: list[str]) -> tuple[dict, dict[str, _Slot]]:
    """First results of already-logged op_ids, and the stored entries of the keys, in one query on PostgreSQL."""
    if _is_postgres():
        with connection.cursor() as cursor:
            cursor.execute(*_seen_and_slots_query(user_id, op_ids, keys))
            return _seen_and_slots_from(cursor.fetchall())
    seen: dict[str, dict] = {}
    slots: dict[str, _Slot] = {}
    for op_id, version in Change.objects.filter(user_id=user_id, op_id__in=op_ids).values_list("op_id", "version"):
        seen[op_id] = {"op_id": op_id, "status": DUPLICATE, "version": version}
    for entry in Entry.objects.filter(user_id=user_id, key__in=keys):
        slots[entry.key] = _Slot(
            entry.value, entry.deleted, entry.size, entry.version, entry.hlc_ms, entry.hlc_counter, entry.device_id
        )
    return seen, slots


def _load_all_slots(user_id) -> dict[str, _Slot]:
    return {
        entry.key: _Slot(
            entry.value, entry.deleted, entry.size, entry.version, entry.hlc_ms, entry.hlc_counter, entry.device_id
        )
        for entry in Entry.objects.filter(user_id=user_id)
    }


@dataclass
class _Batch:
    """What applying a list of ops produced, before anything is written."""

    results: list[dict]
    changes: list[Change]
    version: int
    bytes_used: int
    key_count: int
    grew: bool  # a set or incr was applied: quotas apply (deletes alone are always allowed)


def _apply_ops(*, user_id, state: _State, ops: list[Op], device_id: str, seen: dict, slots: dict, now) -> _Batch:
    """Decide every op against the slots (mutating them) and count versions, bytes and keys."""
    version, bytes_used, key_count = state.version, state.bytes_used, state.key_count
    results, changes, grew = [], [], False
    for index, op in enumerate(ops):
        if op.op_id in seen:
            results.append(seen[op.op_id])
            continue
        slot = slots.get(op.key)
        stamp = (op.hlc_ms, op.hlc_counter, device_id)
        if op.op == "incr":
            current = unseal(op.key, slot.value) if slot is not None and slot.live else 0
            if not is_number(current):
                raise ValidationFailed(fields={f"ops.{index}.value": ["incr needs a number stored at this key."]})
            plain = current + op.value
            if not is_number(plain):
                raise ValidationFailed(fields={f"ops.{index}.value": ["The sum is not a finite number."]})
            stamp = max(stamp, slot.stamp) if slot is not None else stamp
            size = value_size(op.key, plain)
        elif slot is not None and stamp <= slot.stamp:
            results.append({"op_id": op.op_id, "status": SUPERSEDED, "version": None})
            changes.append(_change(user_id, op, device_id, SUPERSEDED, None, now))
            continue
        else:
            plain, size = op.value, op.size
        version += 1
        deleted = op.op == "delete"
        if slot is not None and slot.live:
            bytes_used -= slot.size
            key_count -= 1
        if not deleted:
            bytes_used += size
            key_count += 1
            grew = True
        stored = None if deleted else seal(op.key, plain)
        slots[op.key] = _Slot(stored, deleted, 0 if deleted else size, version, *stamp, dirty=True)
        results.append({"op_id": op.op_id, "status": APPLIED, "version": version})
        changes.append(_change(user_id, op, device_id, APPLIED, version, now))
    return _Batch(results, changes, version, bytes_used, key_count, grew)


def _change(user_id, op: Op, device_id: str, status: str, version: int | None, now) -> Change:
    return Change(
        user_id=user_id,
        op_id=op.op_id,
        key=op.key,
        op=op.op,
        value=seal(op.key, op.value),
        status=status,
        version=version,
        hlc_ms=op.hlc_ms,
        hlc_counter=op.hlc_counter,
        device_id=device_id,
        created_at=now,
    )


def _check_quota(*, batch: _Batch, ops: list[Op], limits) -> None:
    """422 for a set larger than the item limit, or when a growing batch would end over a limit."""
    for op in ops:
        if op.op == "set" and op.size > limits.value_bytes:
            raise QuotaExceeded(
                f"The value of {op.key} is larger than your plan allows ({limits.value_bytes} bytes).",
                details={"limit": "value_bytes", "allowed": limits.value_bytes, "key": op.key, "size": op.size},
            )
    if not batch.grew:
        return
    if batch.bytes_used > limits.sync_bytes:
        raise QuotaExceeded(
            "Your plan's sync storage is full: delete some settings or upgrade.",
            details={"limit": "sync_bytes", "allowed": limits.sync_bytes, "would_use": batch.bytes_used},
        )
    if batch.key_count > limits.keys:
        raise QuotaExceeded(
            "Your plan's number of synced keys is reached: delete some or upgrade.",
            details={"limit": "keys", "allowed": limits.keys, "would_use": batch.key_count},
        )


WRITE_BATCH = """
WITH changes AS (
    INSERT INTO syncsettings_change
        (user_id, op_id, key, op, value, status, version, hlc_ms, hlc_counter, device_id, created_at)
    SELECT %(user_id)s, c.op_id, c.key, c.op, c.value, c.status, c.version, c.hlc_ms, c.hlc_counter,
        %(device_id)s, %(now)s
    FROM jsonb_to_recordset(%(changes)s::jsonb) AS c(
        op_id text, key text, op text, value jsonb, status text, version bigint, hlc_ms bigint, hlc_counter integer)
), entries AS (
    INSERT INTO syncsettings_entry
        (user_id, key, value, deleted, size, version, hlc_ms, hlc_counter, device_id, updated_at)
    SELECT %(user_id)s, e.key, e.value, e.deleted, e.size, e.version, e.hlc_ms, e.hlc_counter, e.device_id, %(now)s
    FROM jsonb_to_recordset(%(entries)s::jsonb) AS e(
        key text, value jsonb, deleted boolean, size integer, version bigint, hlc_ms bigint, hlc_counter integer,
        device_id text)
    ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value, deleted = excluded.deleted,
        size = excluded.size, version = excluded.version, hlc_ms = excluded.hlc_ms,
        hlc_counter = excluded.hlc_counter, device_id = excluded.device_id, updated_at = excluded.updated_at
)
UPDATE syncsettings_syncstate SET version = %(version)s, bytes_used = %(bytes_used)s, key_count = %(key_count)s,
    last_synced_at = %(now)s, updated_at = %(now)s
WHERE user_id = %(user_id)s AND %(has_entries)s
"""


def _write_batch(*, user_id, device_id: str, batch: _Batch, slots: dict[str, _Slot], now) -> None:
    """Append the log, upsert the changed entries and move the state row.

    On PostgreSQL this is one statement (data-modifying CTEs), so a push costs the same round trips
    whatever its op count. Its cost grows with the ops, not with the document: the document is the
    live entries, read when asked for (a copy in the state row cost a rewrite of the whole document
    per push: 60 ms for 1.8 MB).
    """
    dirty = {key: slot for key, slot in slots.items() if slot.dirty}
    if not batch.changes:
        return
    if _is_postgres():
        changes = [
            {
                "op_id": change.op_id,
                "key": change.key,
                "op": change.op,
                "value": change.value,
                "status": change.status,
                "version": change.version,
                "hlc_ms": change.hlc_ms,
                "hlc_counter": change.hlc_counter,
            }
            for change in batch.changes
        ]
        entries = [
            {
                "key": key,
                "value": slot.value,
                "deleted": slot.deleted,
                "size": slot.size,
                "version": slot.version,
                "hlc_ms": slot.hlc_ms,
                "hlc_counter": slot.hlc_counter,
                "device_id": slot.device_id,
            }
            for key, slot in dirty.items()
        ]
        with connection.cursor() as cursor:
            cursor.execute(
                WRITE_BATCH,
                {
                    "user_id": user_id,
                    "device_id": device_id,
                    "now": now,
                    "changes": json.dumps(changes),
                    "entries": json.dumps(entries),
                    "version": batch.version,
                    "bytes_used": batch.bytes_used,
                    "key_count": batch.key_count,
                    "has_entries": bool(entries),
                },
            )
        return
    Change.objects.bulk_create(batch.changes)
    if not dirty:
        return
    Entry.objects.bulk_create(
        [
            Entry(
                user_id=user_id,
                key=key,
                value=slot.value,
                deleted=slot.deleted,
                size=slot.size,
                version=slot.version,
                hlc_ms=slot.hlc_ms,
                hlc_counter=slot.hlc_counter,
                device_id=slot.device_id,
                updated_at=now,
            )
            for key, slot in dirty.items()
        ],
        update_conflicts=True,
        unique_fields=["user", "key"],
        update_fields=["value", "deleted", "size", "version", "hlc_ms", "hlc_counter", "device_id", "updated_at"],
    )
    state = SyncState.objects.get(user_id=user_id)
    state.version, state.bytes_used, state.key_count = batch.version, batch.bytes_used, batch.key_count
    state.last_synced_at = now
    state.save()


def _run_locked(
    *, user, build_ops, device_id: str, read_after=None, prefetched: dict | None = None
) -> tuple[_State, _Batch, Any]:
    """Lock the user's row, build the ops (a callable given the state), apply, check quota, write, publish.

    `build_ops(state, now, limits) -> (ops, seen, slots, extra)` loads what it needs itself, or takes it
    from `state.read_rows` (`read_after` is passed to _lock_state).
    """
    limits = get_limits(user=user, prefetched=prefetched)
    published = False
    try:
        with transaction.atomic():
            state = _lock_state(user.id, read_after=read_after)
            now = timezone.now()
            ops, seen, slots, extra = build_ops(state, now, limits)
            batch = _apply_ops(
                user_id=user.id, state=state, ops=ops, device_id=device_id, seen=seen, slots=slots, now=now
            )
            _check_quota(batch=batch, ops=ops, limits=limits)
            _write_batch(user_id=user.id, device_id=device_id, batch=batch, slots=slots, now=now)
            if batch.version != state.version or state.created:
                _publish_version(user.id, batch.version, state.pruned_version)
                published = True
    except BaseException:
        if published:
            # Published but not committed: drop the cache so nobody waits for a version that never came.
            _forget_version(user.id)
        raise
    return state, batch, extra


# --- Push -----------------------------------------------------------------------------------


def push_cache_keys(*, user_id) -> list[str]:
    """The cache keys push_changes reads before taking the lock (see its `prefetched`)."""
    return [_devices_key(user_id), *billing_services.entitlements_cache_keys(user_id=user_id)]


def push_changes(*, user, device_id: str, ops: list[Op], prefetched: dict | None = None) -> dict:
    """Apply a validated batch of ops from one device: {version, server_time, results} (results in op order).

    `prefetched`: what a caller's own `cache.get_many` returned for push_cache_keys.
    """

    # Looked up before the lock, with the tier limits in one round trip: a known device (the usual
    # case) adds nothing to the lock's hold.
    cached = get_many_prefetched(push_cache_keys(user_id=user.id), prefetched)
    if any(op.op != "delete" and is_secret(op.key) for op in ops):
        billing_services.require_feature(user=user, feature=SECRET_KEYS, prefetched=cached)
    device_known = device_id in (cached.get(_devices_key(user.id)) or frozenset())

    op_ids, keys = [op.op_id for op in ops], list({op.key for op in ops})
    # On PostgreSQL the ops' history and entries are read in the lock's own round trip.
    read_after = _seen_and_slots_query(user.id, op_ids, keys) if _is_postgres() else None

    def build(state, now, limits):
        if not device_known:
            _register_device_for_push(user_id=user.id, device_id=device_id, limits=limits, now=now)
        if state.created:
            return ops, {}, {}, None
        if state.read_rows is not None:
            return ops, *_seen_and_slots_from(state.read_rows), None
        return ops, *_load_seen_and_slots(user.id, op_ids, keys), None

    try:
        _, batch, _ = _run_locked(
            user=user, build_ops=build, device_id=device_id, read_after=read_after, prefetched=cached
        )
    except DomainError as error:
        SYNC_PUSHES.labels(outcome=error.code).inc()
        raise
    SYNC_PUSHES.labels(outcome="ok").inc()
    for status in (APPLIED, SUPERSEDED, DUPLICATE):
        count = sum(1 for result in batch.results if result["status"] == status)
        if count:
            SYNC_OPS.labels(status=status).inc(count)
    return {"version": batch.version, "server_time": server_time_ms(), "results": batch.results}


# --- Pull -----------------------------------------------------------------------------------

NOT_MODIFIED = object()


@dataclass(frozen=True)
class PullPage:
    """A page of pulled changes; each change is already JSON text (see _change_json)."""

    changes: list[str]
    version: int
    has_more: bool
    server_time: int


def _change_json(key: str, value_json: str | None, deleted: bool, version: int, hlc_ms, hlc_counter, device_id) -> str:
    """One pulled change as JSON text, splicing in the value's JSON as PostgreSQL returned it.

    The hot path: no parse and re-dump per value. Keys and device ids come from validated character
    sets that need no escaping in JSON; secret values are decrypted and dumped.
    """
    if deleted or value_json is None:
        value_json = "null"
    elif is_secret(key):
        value_json = json.dumps(unseal(key, json.loads(value_json)))
    return (
        f'{{"key":"{key}","value":{value_json},"deleted":{"true" if deleted else "false"},'
        f'"version":{version},"hlc":"{hlc_ms}-{hlc_counter}","device_id":"{device_id}"}}'
    )


def _read_changes(user_id, since: int, limit: int) -> tuple[int, int, list[tuple]]:
    """(version, pruned_version, up to limit+1 entry rows after since), read in one snapshot on PostgreSQL.

    Rows are (key, value as JSON text, deleted, version, hlc_ms, hlc_counter, device_id).
    """
    if _is_postgres():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT s.version, s.pruned_version, e.key, e.value, e.deleted, e.version, e.hlc_ms, "
                "e.hlc_counter, e.device_id FROM syncsettings_syncstate s LEFT JOIN LATERAL ("
                "SELECT key, value, deleted, version, hlc_ms, hlc_counter, device_id FROM syncsettings_entry "
                "WHERE user_id = s.user_id AND version > %s ORDER BY version LIMIT %s) e ON TRUE "
                "WHERE s.user_id = %s ORDER BY e.version",
                [since, limit + 1, user_id],
            )
            rows = cursor.fetchall()
        if not rows:
            return 0, 0, []
        return rows[0][0], rows[0][1], [row[2:] for row in rows if row[2] is not None]
    state = SyncState.objects.filter(user_id=user_id).values_list("version", "pruned_version").first() or (0, 0)
    entries = Entry.objects.filter(user_id=user_id, version__gt=since).order_by("version")[: limit + 1]
    rows = [(e.key, json.dumps(e.value), e.deleted, e.version, e.hlc_ms, e.hlc_counter, e.device_id) for e in entries]
    return state[0], state[1], rows


def pull_changes(
    *, user, since: int | None, limit: int, if_none_match: int | None = None, prefetched: dict | None = None
):
    """The latest state of each key changed after `since` (a PullPage), or NOT_MODIFIED.

    An idle poll (`since` or `if_none_match` equal to the cached version) is answered from the cache
    (or from `prefetched`, see cached_version).
    """
    cached = cached_version(user_id=user.id, prefetched=prefetched)
    if cached is not None:
        if if_none_match is not None and if_none_match == cached[0]:
            return NOT_MODIFIED
        if since == cached[0]:
            return PullPage(changes=[], version=since, has_more=False, server_time=server_time_ms())
    cursor = since if since is not None else (if_none_match or 0)
    version, pruned_version, rows = _read_changes(user.id, cursor, limit)
    if cached is None:
        # `add`, not `set`: a push publishing a newer version meanwhile must win.
        cache.add(_version_key(user.id), (version, pruned_version), timeout=VERSION_CACHE_SECONDS)
    if cursor > version:
        raise CursorAhead(details={"version": version})
    if 0 < cursor < pruned_version:
        raise CursorExpired(details={"pruned_version": pruned_version, "version": version})
    if if_none_match is not None and if_none_match == version:
        return NOT_MODIFIED
    has_more = len(rows) > limit
    rows = rows[:limit]
    # The last row can be newer than `version` (committed between the two reads on SQLite).
    last = rows[-1][3] if rows else 0
    return PullPage(
        changes=[_change_json(*row) for row in rows],
        version=last if has_more else max(version, last),
        has_more=has_more,
        server_time=server_time_ms(),
    )


# --- The whole document ---------------------------------------------------------------------


def _unseal_document(document: dict) -> dict:
    return {key: unseal(key, value) for key, value in document.items()}


def _live_document(user_id) -> dict:
    """{key: stored (sealed) value} of the user's live keys."""
    return dict(Entry.objects.filter(user_id=user_id, deleted=False).values_list("key", "value"))


DOCUMENT = (
    "SELECT s.version, s.updated_at, e.key, e.value FROM syncsettings_syncstate s "
    "LEFT JOIN syncsettings_entry e ON e.user_id = s.user_id AND NOT e.deleted WHERE s.user_id = %s"
)


def _read_document(user_id) -> tuple[dict, int, datetime | None]:
    """(stored document, version, updated_at), read in one snapshot (one query on PostgreSQL)."""
    if _is_postgres():
        with connection.cursor() as cursor:
            cursor.execute(DOCUMENT, [user_id])
            rows = cursor.fetchall()
        if not rows:
            return {}, 0, None
        return {key: _parse_json(value) for _, _, key, value in rows if key is not None}, rows[0][0], rows[0][1]
    with transaction.atomic():
        state = SyncState.objects.filter(user_id=user_id).values_list("version", "updated_at").first()
        return (_live_document(user_id), *state) if state else ({}, 0, None)


def get_settings(*, user, if_none_match: int | None = None, prefetched: dict | None = None):
    """{settings, version, updated_at} of the whole document, or NOT_MODIFIED when `if_none_match` is current."""
    cached = cached_version(user_id=user.id, prefetched=prefetched)
    if if_none_match is not None and cached is not None and cached[0] == if_none_match:
        return NOT_MODIFIED
    document, version, updated_at = _read_document(user.id)
    if if_none_match is not None and if_none_match == version:
        return NOT_MODIFIED
    return {"settings": _unseal_document(document), "version": version, "updated_at": updated_at}


def _server_ops(*, desired: dict, slots: dict[str, _Slot], now_ms: int, prefix: str) -> list[Op]:
    """Sets and deletes that turn the live slots into `desired`, with server HLCs that win.

    A server op's HLC is max(now, the key's stored HLC + 1 counter), so it beats device clocks
    running ahead without breaking the 5-minute drift rule for devices.
    """
    ops = []
    for key in sorted(set(desired) | {key for key, slot in slots.items() if slot.live}):
        slot = slots.get(key)
        live = slot is not None and slot.live
        if key in desired:
            if live and unseal(key, slot.value) == desired[key]:
                continue
            kind, value, size = "set", desired[key], value_size(key, desired[key])
        elif live:
            kind, value, size = "delete", None, 0
        else:
            continue
        if slot is None or now_ms > slot.hlc_ms:
            hlc_ms, hlc_counter = now_ms, 0
        else:
            hlc_ms, hlc_counter = slot.hlc_ms, slot.hlc_counter + 1
        ops.append(Op(f"{prefix}-{len(ops)}", key, kind, value, hlc_ms, hlc_counter, size))
    return ops


def _server_op_prefix(kind: str) -> str:
    return f"{kind}-{time.time_ns():x}"


def replace_settings(*, user, settings: dict, if_match: int | None) -> dict:
    """Replace the whole document (If-Match required): an auto snapshot first, then the diff as server ops."""
    if if_match is None:
        raise PreconditionRequired('Send If-Match: "v<version>" with the version you last read.')
    if any(is_secret(key) for key in settings):
        billing_services.require_feature(user=user, feature=SECRET_KEYS)

    def build(state, now, limits):
        if state.version != if_match:
            raise PreconditionFailed(
                "The settings changed since you read them: GET them again.", details={"version": state.version}
            )
        _take_snapshot(
            user_id=user.id, reason=Snapshot.AUTO, label="Before replacing the settings", limits=limits, now=now
        )
        slots = _load_all_slots(user.id)
        ops = _server_ops(desired=settings, slots=slots, now_ms=server_time_ms(), prefix=_server_op_prefix("put"))
        return ops, {}, slots, None

    _run_locked(user=user, build_ops=build, device_id=SERVER_DEVICE)
    return get_settings(user=user)


# --- Devices --------------------------------------------------------------------------------


def _devices_key(user_id) -> str:
    return DEVICES_CACHE_KEY.format(user_id=user_id)


DEVICE_UPSERT = (
    "INSERT INTO syncsettings_device (user_id, device_id, name, browser, platform, created_at, last_seen_at) "
    "SELECT %s, %s, %s, %s, %s, %s, %s "
    "WHERE EXISTS (SELECT 1 FROM syncsettings_device WHERE user_id = %s AND device_id = %s) "
    "OR (SELECT COUNT(*) FROM syncsettings_device WHERE user_id = %s) < %s "
    "ON CONFLICT (user_id, device_id) DO UPDATE SET last_seen_at = excluded.last_seen_at{profile} "
    "RETURNING created_at, last_seen_at"
)
PROFILE_UPDATE = ", name = excluded.name, browser = excluded.browser, platform = excluded.platform"


def _upsert_device(*, user_id, device_id: str, limits, now, profile: dict | None) -> bool:
    """Register or touch a device in one statement unless that would pass the device limit; True if new."""
    fields = profile or {"name": "", "browser": "", "platform": ""}
    # Raw SQL runs on SQLite too (`make run`): let the fields adapt the UUID and the timestamp.
    db_user_id = Device._meta.get_field("user").get_db_prep_value(user_id, connection)
    db_now = Device._meta.get_field("created_at").get_db_prep_value(now, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            DEVICE_UPSERT.format(profile=PROFILE_UPDATE if profile is not None else ""),
            [
                db_user_id,
                device_id,
                fields["name"],
                fields["browser"],
                fields["platform"],
                db_now,
                db_now,
                db_user_id,
                device_id,
                db_user_id,
                limits.devices,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        raise QuotaExceeded(
            f"Your plan syncs at most {limits.devices} devices: remove one or upgrade.",
            details={"limit": "devices", "allowed": limits.devices},
        )
    created_at, last_seen_at = row
    # An update moved last_seen_at past created_at; an insert wrote both from the same value.
    return created_at == last_seen_at


def _known_devices(user_id) -> frozenset:
    return cache.get(_devices_key(user_id)) or frozenset()


def _register_device_for_push(*, user_id, device_id: str, limits, now) -> None:
    """Count a pushing device once (cached for a few minutes, which also bounds last_seen writes)."""
    known = _known_devices(user_id)
    if device_id in known:
        return
    _upsert_device(user_id=user_id, device_id=device_id, limits=limits, now=now, profile=None)
    # Under the row lock: concurrent pushes of this user cannot lose each other's additions.
    cache.set(_devices_key(user_id), known | {device_id}, timeout=DEVICES_CACHE_SECONDS)


def list_devices(*, user) -> QuerySet:
    return Device.objects.filter(user_id=user.id).order_by("created_at")


def register_device(*, user, device_id: str, name: str, browser: str, platform: str) -> tuple[Device, bool]:
    """Register a device (or update its name, browser and platform); 422 past the tier's device limit."""
    limits = get_limits(user=user)
    with transaction.atomic():
        _lock_state(user.id)
        created = _upsert_device(
            user_id=user.id,
            device_id=device_id,
            limits=limits,
            now=timezone.now(),
            profile={"name": name, "browser": browser, "platform": platform},
        )
    return Device.objects.get(user_id=user.id, device_id=device_id), created


def delete_device(*, user, device_id: str) -> None:
    """Forget a device (its synced data stays); 404 for unknown and other users' devices."""
    deleted, _ = Device.objects.filter(user_id=user.id, device_id=device_id).delete()
    if not deleted:
        raise NotFound("No such device.")
    cache.delete(_devices_key(user.id))


# --- Snapshots ------------------------------------------------------------------------------


def list_snapshots(*, user) -> QuerySet:
    billing_services.require_feature(user=user, feature=SNAPSHOTS)
    return Snapshot.objects.filter(user_id=user.id).defer("document").order_by("-created_at", "-id")


def _take_snapshot(*, user_id, reason: str, label: str, limits, now) -> Snapshot:
    """Copy the document (sealed values as stored) within the tier's snapshot count.

    Manual snapshots count against the limit and are refused past it; automatic ones fill the
    remaining room, the oldest rotating out (the newest automatic one is always kept).
    """
    existing = list(Snapshot.objects.filter(user_id=user_id).order_by("created_at", "id").values_list("id", "reason"))
    manual = sum(1 for _, kind in existing if kind == Snapshot.MANUAL)
    autos = [snapshot_id for snapshot_id, kind in existing if kind != Snapshot.MANUAL]
    if reason == Snapshot.MANUAL:
        if manual >= limits.snapshots:
            raise QuotaExceeded(
                f"Your plan keeps at most {limits.snapshots} snapshots: delete one or upgrade.",
                details={"limit": "snapshots", "allowed": limits.snapshots},
            )
        room_for_autos = limits.snapshots - manual - 1
    else:
        room_for_autos = max(limits.snapshots - manual, 1) - 1
    evict = autos[: max(len(autos) - room_for_autos, 0)]
    if evict:
        Snapshot.objects.filter(id__in=evict).delete()
    version, key_count, bytes_used = SyncState.objects.filter(user_id=user_id).values_list(
        "version", "key_count", "bytes_used"
    ).first() or (0, 0, 0)
    return Snapshot.objects.create(
        user_id=user_id,
        document=_live_document(user_id),
        version=version,
        key_count=key_count,
        bytes_used=bytes_used,
        reason=reason,
        label=label,
        created_at=now,
    )


def create_snapshot(*, user, label: str = "") -> Snapshot:
    """A manual snapshot of the current document."""
    billing_services.require_feature(user=user, feature=SNAPSHOTS)
    limits = get_limits(user=user)
    with transaction.atomic():
        _lock_state(user.id)
        return _take_snapshot(user_id=user.id, reason=Snapshot.MANUAL, label=label, limits=limits, now=timezone.now())


def restore_snapshot(*, user, snapshot_id: int) -> dict:
    """Write the snapshot's document as new server ops (every device converges); undo via the pre-restore snapshot."""
    billing_services.require_feature(user=user, feature=SNAPSHOTS)
    snapshot = Snapshot.objects.filter(user_id=user.id, id=snapshot_id).first()
    if snapshot is None:
        raise NotFound("No such snapshot.")
    desired = _unseal_document(snapshot.document)

    def build(state, now, limits):
        undo = _take_snapshot(
            user_id=user.id,
            reason=Snapshot.PRE_RESTORE,
            label=f"Before restoring snapshot {snapshot.id}",
            limits=limits,
            now=now,
        )
        slots = _load_all_slots(user.id)
        ops = _server_ops(desired=desired, slots=slots, now_ms=server_time_ms(), prefix=_server_op_prefix("restore"))
        return ops, {}, slots, undo

    _, batch, undo = _run_locked(user=user, build_ops=build, device_id=SERVER_DEVICE)
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
    limits = entitlements.limits
    usage = SyncState.objects.filter(user_id=user.id).values_list("bytes_used", "key_count").first()
    bytes_used, key_count = usage or (0, 0)
    devices = Device.objects.filter(user_id=user.id).count()
    snapshots = Snapshot.objects.filter(user_id=user.id, reason=Snapshot.MANUAL).count()
    return {
        "tier": entitlements.tier,
        "bytes_used": bytes_used,
        "bytes_limit": limits.sync_bytes,
        "keys_used": key_count,
        "keys_limit": limits.keys,
        "value_bytes_limit": limits.value_bytes,
        "devices_used": devices,
        "devices_limit": limits.devices,
        "snapshots_used": snapshots,
        "snapshots_limit": limits.snapshots,
        "history_days": limits.history_days,
        "over_quota": bytes_used > limits.sync_bytes or key_count > limits.keys,
    }


def list_history(*, user, key: str | None = None) -> QuerySet:
    """The user's change log (applied and superseded ops), optionally for one key; newest first."""
    billing_services.require_feature(user=user, feature=HISTORY)
    changes = Change.objects.filter(user_id=user.id)
    if key is not None:
        changes = changes.filter(key=key)
    return changes


# --- Pruning --------------------------------------------------------------------------------


def prune_user_history(*, user, now: datetime | None = None) -> dict:
    """Drop log rows and tombstones older than the tier's history window, advancing pruned_version."""
    now = now or timezone.now()
    horizon = now - timedelta(days=get_limits(user=user).history_days)
    with transaction.atomic():
        state = _lock_state(user.id)
        changes, _ = Change.objects.filter(user_id=user.id, created_at__lt=horizon).delete()
        tombstones = Entry.objects.filter(user_id=user.id, deleted=True, updated_at__lt=horizon)
        newest_pruned = tombstones.aggregate(newest=Max("version"))["newest"] or 0
        pruned, _ = tombstones.delete()
        if newest_pruned > state.pruned_version:
            SyncState.objects.filter(user_id=user.id).update(pruned_version=newest_pruned)
            _publish_version(user.id, state.version, newest_pruned)
    return {"changes": changes, "tombstones": pruned}


def prune_sync_history(*, now: datetime | None = None) -> dict:
    """Prune every user's history (the periodic job): totals of deleted log rows and tombstones."""
    totals = {"users": 0, "changes": 0, "tombstones": 0}
    for user_id in SyncState.objects.values_list("user_id", flat=True).iterator():
        result = prune_user_history(user=UserRef(user_id), now=now)
        totals["users"] += 1
        totals["changes"] += result["changes"]
        totals["tombstones"] += result["tombstones"]
    return totals


# --- Keys rotation --------------------------------------------------------------------------


def _rotate_document(document: dict) -> int:
    secret_keys = [key for key, value in document.items() if is_secret(key) and isinstance(value, str)]
    for key in secret_keys:
        document[key] = rotate_token(document[key])
    return len(secret_keys)


def rotate_user_encryption(*, user) -> int:
    """Re-encrypt one user's stored secret values with the first key, under the user's sync lock."""
    rotated = 0
    with transaction.atomic():
        _lock_state(user.id)
        for model in (Entry, Change):
            rows = model.objects.filter(user_id=user.id, key__startswith=SECRET_PREFIX, value__isnull=False)
            for row in rows.only("id", "value"):
                if isinstance(row.value, str):
                    model.objects.filter(id=row.id).update(value=rotate_token(row.value))
                    rotated += 1
        for snapshot in Snapshot.objects.filter(user_id=user.id).only("pk", "document"):
            count = _rotate_document(snapshot.document)
            if count:
                Snapshot.objects.filter(pk=snapshot.pk).update(document=snapshot.document)
                rotated += count
    return rotated


def rotate_encryption_keys() -> int:
    """Re-encrypt every stored secret value with the first FIELD_ENCRYPTION_KEYS key; the count of values."""
    user_ids = SyncState.objects.values_list("user_id", flat=True)
    return sum(rotate_user_encryption(user=UserRef(user_id)) for user_id in user_ids.iterator())


# --- Export and deletion (called by accounts) -----------------------------------------------


def export_sync_data(*, user) -> dict:
    """Everything sync stores about the user, secret values decrypted."""
    state = SyncState.objects.filter(user_id=user.id).first()
    return {
        "version": state.version if state else 0,
        "settings": _unseal_document(_live_document(user.id)),
        "bytes_used": state.bytes_used if state else 0,
        "last_synced_at": state.last_synced_at.isoformat() if state and state.last_synced_at else None,
        "devices": [
            {
                "device_id": device.device_id,
                "name": device.name,
                "browser": device.browser,
                "platform": device.platform,
                "created_at": device.created_at.isoformat(),
                "last_seen_at": device.last_seen_at.isoformat(),
            }
            for device in list_devices(user=user)
        ],
        "snapshots": [
            {
                "id": snapshot.id,
                "reason": snapshot.reason,
                "label": snapshot.label,
                "version": snapshot.version,
                "created_at": snapshot.created_at.isoformat(),
                "settings": _unseal_document(snapshot.document),
            }
            for snapshot in Snapshot.objects.filter(user_id=user.id).order_by("created_at", "id")
        ],
        "changes": [
            {
                "op_id": change.op_id,
                "key": change.key,
                "op": change.op,
                "value": unseal(change.key, change.value),
                "status": change.status,
                "version": change.version,
                "hlc": f"{change.hlc_ms}-{change.hlc_counter}",
                "device_id": change.device_id,
                "created_at": change.created_at.isoformat(),
            }
            for change in Change.objects.filter(user_id=user.id).order_by("id")
        ],
    }


def delete_sync_data(*, user) -> None:
    """Erase the user's sync data (entries, log, devices, snapshots, state) and its cache entries."""
    with transaction.atomic():
        for model in (Change, Entry, Device, Snapshot, SyncState):
            model.objects.filter(user_id=user.id).delete()
    cache.delete_many([_version_key(user.id), _devices_key(user.id)])
