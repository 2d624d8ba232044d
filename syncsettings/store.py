"""Sync storage: every query of sync, keyed by an owner space.

A space owns a state row (version cursor, usage), entries, a change log, devices and snapshots. Today
every user has one space of their own, whose id is the user's id (the tables' `user_id` column); a
shared space (teams) becomes another owner of the same rows.

Each step that has a PostgreSQL form (raw SQL: one round trip per step, see the push budget in
DESIGN.md section 5) has its SQLite form (`make run`, ORM) right next to it. Table and column names
come from the models' `_meta`; the entry columns from protocol.SLOT_FIELDS, the log's from
protocol.CHANGE_FIELDS.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from django.db import OperationalError, connection, transaction
from django.db.models import Max

from syncsettings.models import Change, Device, Entry, Snapshot, SyncState
from syncsettings.protocol import CHANGE_FIELDS, DUPLICATE, SLOT_FIELDS, Batch, Slot

LOCK_TIMEOUT_MS = 5000
LOCK_NOT_AVAILABLE = "55P03"

STATE, ENTRY, CHANGE, DEVICE = (model._meta.db_table for model in (SyncState, Entry, Change, Device))
OWNER = SyncState._meta.get_field("user").column
STATE_FIELDS = ("version", "bytes_used", "key_count", "pruned_version")
# What a pull returns of an entry, in protocol.change_json's argument order.
PULL_FIELDS = ("key", "value", "deleted", "version", "hlc_ms", "hlc_counter", "device_id")


class Locked(Exception):
    """The space's row stayed locked by another transaction past LOCK_TIMEOUT_MS."""


@dataclass
class State:
    version: int
    bytes_used: int
    key_count: int
    pruned_version: int
    created: bool = False
    # What `read_after` returned (see lock_state); None when it did not run under the lock.
    read_rows: list | None = None


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@cache
def _pg_type(model, name: str) -> str:
    return model._meta.get_field(name).db_type(connection)


def _columns(names, prefix: str = "") -> str:
    return ", ".join(f"{prefix}{name}" for name in names)


def _typed(model, names) -> str:
    """A record definition for jsonb_to_recordset: `name type, …` from the model's fields."""
    return ", ".join(f"{name} {_pg_type(model, name)}" for name in names)


def _parse_json(raw):
    # Django has psycopg hand jsonb over as text.
    return json.loads(raw) if isinstance(raw, str) else raw


def _db(model, field: str, value):
    """A value adapted by the model field, for raw SQL that also runs on SQLite (UUIDs, timestamps)."""
    return model._meta.get_field(field).get_db_prep_value(value, connection)


# --- Locking the space's row ---------------------------------------------------------------------


def lock_state(space_id, *, read_after: tuple[str, list] | None = None) -> State:
    """Lock (creating if needed) the space's state row for this transaction; Locked after the lock timeout.

    One round trip on PostgreSQL: `SET LOCAL lock_timeout`, the `SELECT … FOR UPDATE` and the optional
    `read_after` query (sql, params) travel as one statement batch (psycopg's client-side binding
    cursor, Django's default, allows that). `read_after` runs once the lock is held, so it sees every
    change committed under it; its rows land in `state.read_rows` (None when the row was created).
    """
    try:
        if is_postgres():
            return _lock_state_postgres(space_id, read_after)
        row = SyncState.objects.select_for_update().filter(user_id=space_id).values_list(*STATE_FIELDS).first()
        if row is None:
            SyncState.objects.create(user_id=space_id)
            return State(0, 0, 0, 0, created=True)
        return State(*row)
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise Locked() from error
        raise


def _lock_state_postgres(space_id, read_after) -> State:
    with connection.cursor() as cursor:
        sql = (
            f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'; "
            f"SELECT {_columns(STATE_FIELDS)} FROM {STATE} WHERE {OWNER} = %s FOR UPDATE"
        )
        params = [space_id]
        if read_after is not None:
            sql, params = f"{sql}; {read_after[0]}", params + read_after[1]
        cursor.execute(sql, params)
        cursor.nextset()
        row = cursor.fetchone()
        if row is None:
            # First write ever: create and lock in one statement (a racing creator makes it update).
            cursor.execute(
                f"INSERT INTO {STATE} ({OWNER}, {_columns(STATE_FIELDS)}, updated_at) "
                f"VALUES (%s, {_columns(['0'] * len(STATE_FIELDS))}, now()) "
                f"ON CONFLICT ({OWNER}) DO UPDATE SET {OWNER} = EXCLUDED.{OWNER} "
                # xmax = 0 only on a row this statement inserted (not one a racing creator made).
                f"RETURNING {_columns(STATE_FIELDS)}, xmax = 0",
                [space_id],
            )
            return State(*cursor.fetchone())
        state = State(*row)
        if read_after is not None:
            cursor.nextset()
            state.read_rows = cursor.fetchall()
        return state


def state_row(space_id) -> tuple[int, int, int, int] | None:
    """(version, bytes_used, key_count, pruned_version) without locking, or None before the first write."""
    return SyncState.objects.filter(user_id=space_id).values_list(*STATE_FIELDS).first()


# --- Reading what a batch needs -------------------------------------------------------------


def seen_and_slots_query(space_id, op_ids: list[str], keys: list[str]) -> tuple[str, list]:
    """PostgreSQL: the logged versions of op_ids and the stored entries of keys in one query (lock's read_after)."""
    nulls = ", ".join("version" if name == "version" else f"NULL::{_pg_type(Entry, name)}" for name in SLOT_FIELDS)
    sql = (
        f"SELECT 'c', op_id, {nulls} FROM {CHANGE} WHERE {OWNER} = %s AND op_id = ANY(%s) "
        f"UNION ALL SELECT 'e', key, {_columns(SLOT_FIELDS)} FROM {ENTRY} WHERE {OWNER} = %s AND key = ANY(%s)"
    )
    return sql, [space_id, op_ids, space_id, keys]


def seen_and_slots_from(rows) -> tuple[dict, dict[str, Slot]]:
    """({op_id: its first result}, {key: Slot}) from seen_and_slots_query's rows."""
    seen: dict[str, dict] = {}
    slots: dict[str, Slot] = {}
    version_at = SLOT_FIELDS.index("version")
    for kind, name, *fields in rows:
        if kind == "c":
            seen[name] = {"op_id": name, "status": DUPLICATE, "version": fields[version_at]}
        else:
            slots[name] = Slot(_parse_json(fields[0]), *fields[1:])
    return seen, slots


def load_seen_and_slots(space_id, op_ids: list[str], keys: list[str]) -> tuple[dict, dict[str, Slot]]:
    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute(*seen_and_slots_query(space_id, op_ids, keys))
            return seen_and_slots_from(cursor.fetchall())
    seen = {
        op_id: {"op_id": op_id, "status": DUPLICATE, "version": version}
        for op_id, version in Change.objects.filter(user_id=space_id, op_id__in=op_ids).values_list("op_id", "version")
    }
    rows = Entry.objects.filter(user_id=space_id, key__in=keys).values_list("key", *SLOT_FIELDS)
    return seen, {key: Slot(*fields) for key, *fields in rows}


def load_all_slots(space_id) -> dict[str, Slot]:
    rows = Entry.objects.filter(user_id=space_id).values_list("key", *SLOT_FIELDS)
    return {key: Slot(*fields) for key, *fields in rows}


# --- Writing a batch ------------------------------------------------------------------------


@cache
def _write_batch_sql() -> str:
    entry_updates = ", ".join(f"{name} = excluded.{name}" for name in (*SLOT_FIELDS, "updated_at"))
    return f"""
WITH changes AS (
    INSERT INTO {CHANGE} ({OWNER}, {_columns(CHANGE_FIELDS)}, device_id, created_at)
    SELECT %(owner)s, {_columns(CHANGE_FIELDS, "c.")}, %(device_id)s, %(now)s
    FROM jsonb_to_recordset(%(changes)s::jsonb) AS c({_typed(Change, CHANGE_FIELDS)})
), entries AS (
    INSERT INTO {ENTRY} ({OWNER}, key, {_columns(SLOT_FIELDS)}, updated_at)
    SELECT %(owner)s, e.key, {_columns(SLOT_FIELDS, "e.")}, %(now)s
    FROM jsonb_to_recordset(%(entries)s::jsonb) AS e(key text, {_typed(Entry, SLOT_FIELDS)})
    ON CONFLICT ({OWNER}, key) DO UPDATE SET {entry_updates}
)
UPDATE {STATE} SET version = %(version)s, bytes_used = %(bytes_used)s, key_count = %(key_count)s,
    last_synced_at = %(now)s, updated_at = %(now)s
WHERE {OWNER} = %(owner)s AND %(has_entries)s
"""


def write_batch(space_id, *, device_id: str, batch: Batch, slots: dict[str, Slot], now) -> None:
    """Append the log, upsert the changed entries and move the state row.

    On PostgreSQL this is one statement (data-modifying CTEs), so a push costs the same round trips
    whatever its op count. Its cost grows with the ops, not with the document: the document is the
    live entries, read when asked for (a copy in the state row cost a rewrite of the whole document
    per push: 60 ms for 1.8 MB).
    """
    if not batch.changes:
        return
    dirty = batch.dirty(slots)
    if is_postgres():
        changes = [{name: getattr(change, name) for name in CHANGE_FIELDS} for change in batch.changes]
        entries = [{"key": key, **{name: getattr(slot, name) for name in SLOT_FIELDS}} for key, slot in dirty.items()]
        with connection.cursor() as cursor:
            cursor.execute(
                _write_batch_sql(),
                {
                    "owner": space_id,
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
    Change.objects.bulk_create(
        [
            Change(user_id=space_id, device_id=device_id, created_at=now, **{n: getattr(c, n) for n in CHANGE_FIELDS})
            for c in batch.changes
        ]
    )
    if not dirty:
        return
    Entry.objects.bulk_create(
        [
            Entry(user_id=space_id, key=key, updated_at=now, **{name: getattr(slot, name) for name in SLOT_FIELDS})
            for key, slot in dirty.items()
        ],
        update_conflicts=True,
        unique_fields=["user", "key"],
        update_fields=[*SLOT_FIELDS, "updated_at"],
    )
    SyncState.objects.filter(user_id=space_id).update(
        version=batch.version,
        bytes_used=batch.bytes_used,
        key_count=batch.key_count,
        last_synced_at=now,
        updated_at=now,
    )


# --- Pull and the whole document ------------------------------------------------------------------


def read_changes(space_id, since: int, limit: int) -> tuple[int, int, int, list[tuple]]:
    """(version, pruned_version, bytes_used, up to limit+1 entry rows after since), one snapshot on PostgreSQL.

    Rows are PULL_FIELDS, the value as JSON text.
    """
    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT s.version, s.pruned_version, s.bytes_used, {_columns(PULL_FIELDS, 'e.')} FROM {STATE} s "
                f"LEFT JOIN LATERAL (SELECT {_columns(PULL_FIELDS)} FROM {ENTRY} "
                f"WHERE {OWNER} = s.{OWNER} AND version > %s ORDER BY version LIMIT %s) e ON TRUE "
                f"WHERE s.{OWNER} = %s ORDER BY e.version",
                [since, limit + 1, space_id],
            )
            rows = cursor.fetchall()
        if not rows:
            return 0, 0, 0, []
        return rows[0][0], rows[0][1], rows[0][2], [row[3:] for row in rows if row[3] is not None]
    state = SyncState.objects.filter(user_id=space_id).values_list("version", "pruned_version", "bytes_used")
    entries = Entry.objects.filter(user_id=space_id, version__gt=since).order_by("version")[: limit + 1]
    rows = [(key, json.dumps(value), *rest) for key, value, *rest in entries.values_list(*PULL_FIELDS)]
    return (*(state.first() or (0, 0, 0)), rows)


def live_document(space_id) -> dict:
    """{key: stored (sealed) value} of the space's live keys."""
    return dict(Entry.objects.filter(user_id=space_id, deleted=False).values_list("key", "value"))


def read_document(space_id) -> tuple[dict, int, datetime | None]:
    """(stored document, version, updated_at), read in one snapshot (one query on PostgreSQL)."""
    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT s.version, s.updated_at, e.key, e.value FROM {STATE} s LEFT JOIN {ENTRY} e "
                f"ON e.{OWNER} = s.{OWNER} AND NOT e.deleted WHERE s.{OWNER} = %s",
                [space_id],
            )
            rows = cursor.fetchall()
        if not rows:
            return {}, 0, None
        return {key: _parse_json(value) for _, _, key, value in rows if key is not None}, rows[0][0], rows[0][1]
    with transaction.atomic():
        state = SyncState.objects.filter(user_id=space_id).values_list("version", "updated_at").first()
        return (live_document(space_id), *state) if state else ({}, 0, None)


# --- Devices --------------------------------------------------------------------------------


def upsert_device(space_id, *, device_id: str, max_devices: int, now, profile: dict | None) -> bool | None:
    """Register or touch a device in one statement unless that would pass max_devices.

    True if new, False if it existed, None if refused. Runs as raw SQL on SQLite too (same syntax).
    """
    fields = profile or {"name": "", "browser": "", "platform": ""}
    update_profile = "".join(f", {name} = excluded.{name}" for name in fields) if profile is not None else ""
    owner, db_now = _db(Device, "user", space_id), _db(Device, "created_at", now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {DEVICE} ({OWNER}, device_id, {_columns(fields)}, created_at, last_seen_at) "
            f"SELECT %s, %s, %s, %s, %s, %s, %s "
            f"WHERE EXISTS (SELECT 1 FROM {DEVICE} WHERE {OWNER} = %s AND device_id = %s) "
            f"OR (SELECT COUNT(*) FROM {DEVICE} WHERE {OWNER} = %s) < %s "
            f"ON CONFLICT ({OWNER}, device_id) DO UPDATE SET last_seen_at = excluded.last_seen_at{update_profile} "
            "RETURNING created_at, last_seen_at",
            [owner, device_id, *fields.values(), db_now, db_now, owner, device_id, owner, max_devices],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    created_at, last_seen_at = row
    # An update moved last_seen_at past created_at; an insert wrote both from the same value.
    return created_at == last_seen_at


def devices(space_id):
    return Device.objects.filter(user_id=space_id).order_by("created_at")


def delete_device(space_id, device_id: str) -> bool:
    deleted, _ = Device.objects.filter(user_id=space_id, device_id=device_id).delete()
    return bool(deleted)


# --- Snapshots ------------------------------------------------------------------------------


def snapshots(space_id):
    return Snapshot.objects.filter(user_id=space_id)


def snapshot_kinds(space_id) -> list[tuple[int, str]]:
    """(id, reason) of the space's snapshots, oldest first."""
    return list(snapshots(space_id).order_by("created_at", "id").values_list("id", "reason"))


def delete_snapshots(snapshot_ids: list[int]) -> None:
    Snapshot.objects.filter(id__in=snapshot_ids).delete()


def create_snapshot(space_id, *, reason: str, label: str, now) -> Snapshot:
    """A copy of the live document (sealed values as stored) at the current version."""
    version, bytes_used, key_count, _ = state_row(space_id) or (0, 0, 0, 0)
    return Snapshot.objects.create(
        user_id=space_id,
        document=live_document(space_id),
        version=version,
        key_count=key_count,
        bytes_used=bytes_used,
        reason=reason,
        label=label,
        created_at=now,
    )


def usage_counts(space_id) -> dict:
    """What get_quota reports as used."""
    _, bytes_used, key_count, _ = state_row(space_id) or (0, 0, 0, 0)
    return {
        "bytes_used": bytes_used,
        "keys_used": key_count,
        "devices_used": Device.objects.filter(user_id=space_id).count(),
        "snapshots_used": snapshots(space_id).filter(reason=Snapshot.MANUAL).count(),
    }


def changes(space_id, key: str | None = None):
    log = Change.objects.filter(user_id=space_id)
    return log if key is None else log.filter(key=key)


# --- Maintenance ----------------------------------------------------------------------------


def space_ids():
    """Every space with sync data, streamed."""
    return SyncState.objects.values_list("user_id", flat=True).iterator()


def prune(space_id, *, horizon: datetime, pruned_version: int) -> tuple[int, int, int]:
    """Drop log rows and tombstones older than horizon (caller holds the lock).

    Returns (changes dropped, tombstones dropped, the pruned_version now).
    """
    dropped_changes, _ = changes(space_id).filter(created_at__lt=horizon).delete()
    tombstones = Entry.objects.filter(user_id=space_id, deleted=True, updated_at__lt=horizon)
    newest_pruned = tombstones.aggregate(newest=Max("version"))["newest"] or 0
    dropped_tombstones, _ = tombstones.delete()
    if newest_pruned > pruned_version:
        SyncState.objects.filter(user_id=space_id).update(pruned_version=newest_pruned)
        pruned_version = newest_pruned
    return dropped_changes, dropped_tombstones, pruned_version


def rewrite_sealed_values(space_id, *, prefix: str, rewrite) -> int:
    """Apply rewrite(token) to every stored value of keys starting with prefix (caller holds the lock)."""
    rewritten = 0
    for model in (Entry, Change):
        rows = model.objects.filter(user_id=space_id, key__startswith=prefix, value__isnull=False)
        for row in rows.only("id", "value"):
            if isinstance(row.value, str):
                model.objects.filter(id=row.id).update(value=rewrite(row.value))
                rewritten += 1
    for snapshot in snapshots(space_id).only("pk", "document"):
        keys = [key for key, value in snapshot.document.items() if key.startswith(prefix) and isinstance(value, str)]
        for key in keys:
            snapshot.document[key] = rewrite(snapshot.document[key])
        if keys:
            Snapshot.objects.filter(pk=snapshot.pk).update(document=snapshot.document)
            rewritten += len(keys)
    return rewritten


def _exported(row, fields: tuple, times: tuple) -> dict:
    return {**{name: getattr(row, name) for name in fields}, **{name: getattr(row, name).isoformat() for name in times}}


def export(space_id, *, unseal) -> dict:
    """Everything stored for the space (the account export), values unsealed by `unseal(key, value)`."""
    state = SyncState.objects.filter(user_id=space_id).first()
    return {
        "version": state.version if state else 0,
        "settings": {key: unseal(key, value) for key, value in live_document(space_id).items()},
        "bytes_used": state.bytes_used if state else 0,
        "last_synced_at": state.last_synced_at.isoformat() if state and state.last_synced_at else None,
        "devices": [
            _exported(device, ("device_id", "name", "browser", "platform"), ("created_at", "last_seen_at"))
            for device in devices(space_id)
        ],
        "snapshots": [
            {
                **_exported(snapshot, ("id", "reason", "label", "version"), ("created_at",)),
                "settings": {key: unseal(key, value) for key, value in snapshot.document.items()},
            }
            for snapshot in snapshots(space_id).order_by("created_at", "id")
        ],
        "changes": [
            {
                **_exported(change, ("op_id", "key", "op", "status", "version", "device_id"), ("created_at",)),
                "value": unseal(change.key, change.value),
                "hlc": f"{change.hlc_ms}-{change.hlc_counter}",
            }
            for change in changes(space_id).order_by("id")
        ],
    }


def delete_space(space_id) -> None:
    with transaction.atomic():
        for model in (Change, Entry, Device, Snapshot, SyncState):
            model.objects.filter(user_id=space_id).delete()
