"""The sync protocol (DESIGN.md section 5) in plain Python: no Django, no database, no I/O.

- Conflicts are per key, last writer wins by HLC: the stamp `(hlc ms, hlc counter, device_id)` of a
  `set`/`delete` must be higher than the key's stored stamp, else the op is `superseded` (logged, not
  applied). An `incr` adds its delta to the stored number, is never superseded, and raises the key's
  stamp to the higher of the two, so increments from several devices add up in any order.
- Each applied op takes the next version; superseded and duplicate ops take none (gapless versions).
- Quotas are checked on the result of the whole batch: a batch that would leave the space over a
  limit applies nothing, except that deletes are always allowed.

Values travel in their stored form: the caller passes `seal`/`unseal` (encryption of `secret.` keys).
"""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

APPLIED, SUPERSEDED, DUPLICATE = "applied", "superseded", "duplicate"

# A key's state as stored, in the entry table's column order (syncsettings.store derives its SQL from it).
SLOT_FIELDS = ("value", "deleted", "size", "version", "hlc_ms", "hlc_counter", "device_id")
# A change log row as the protocol decides it (the store adds owner, device and time).
CHANGE_FIELDS = ("op_id", "key", "op", "value", "status", "version", "hlc_ms", "hlc_counter")


def _identity(key: str, value):
    return value


@dataclass(frozen=True, slots=True)
class Op:
    """One validated op; `size` is what the key costs against the quota once set (key + compact JSON)."""

    op_id: str
    key: str
    op: str
    value: Any
    hlc_ms: int
    hlc_counter: int
    size: int


@dataclass(slots=True)
class Slot:
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


@dataclass(frozen=True, slots=True)
class ChangeRow:
    op_id: str
    key: str
    op: str
    value: Any
    status: str
    version: int | None
    hlc_ms: int
    hlc_counter: int


@dataclass
class Batch:
    """What applying a list of ops produced, before anything is written."""

    results: list[dict]
    changes: list[ChangeRow]
    version: int
    bytes_used: int
    key_count: int
    grew: bool  # a set or incr was applied: quotas apply (deletes alone are always allowed)

    def dirty(self, slots: dict[str, Slot]) -> dict[str, Slot]:
        return {key: slot for key, slot in slots.items() if slot.dirty}


class PushResult(dict):
    """The push's response body; `quota` is (bytes used, bytes limit) for the X-Quota headers."""

    quota: tuple[int, int]


@dataclass(frozen=True)
class PullPage:
    """A page of pulled changes; each change is already JSON text (see change_json).

    `not_modified`: the client's If-None-Match is current (a 304, nothing else to send).
    """

    changes: list[str]
    version: int
    has_more: bool
    server_time: int
    bytes_used: int
    not_modified: bool = False


class OpRejected(Exception):
    """An op that cannot apply to what is stored (a 400 naming `field`): nothing of the batch applies."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


@dataclass(frozen=True)
class QuotaViolation:
    message: str
    details: dict


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def value_size(key: str, value) -> int:
    """Bytes a key costs: the key plus its value as compact JSON in UTF-8 (as chrome.storage.sync counts)."""
    return len(key) + len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def apply_ops(
    start,
    *,
    ops: list[Op],
    device_id: str,
    seen: dict,
    slots: dict[str, Slot],
    seal: Callable = _identity,
    unseal: Callable = _identity,
) -> Batch:
    """Decide every op against the slots (replacing the ones it changes) and count versions, bytes and keys.

    `start`: the space's version, bytes_used and key_count before the batch (attributes). `seen`: {op_id:
    first result} of ops already logged. Raises OpRejected for an incr on a non-number.
    """
    version, bytes_used, key_count = start.version, start.bytes_used, start.key_count
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
                raise OpRejected(f"ops.{index}.value", "incr needs a number stored at this key.")
            plain = current + op.value
            if not is_number(plain):
                raise OpRejected(f"ops.{index}.value", "The sum is not a finite number.")
            stamp = max(stamp, slot.stamp) if slot is not None else stamp
            size = value_size(op.key, plain)
        elif slot is not None and stamp <= slot.stamp:
            results.append({"op_id": op.op_id, "status": SUPERSEDED, "version": None})
            changes.append(_change(op, SUPERSEDED, None, seal))
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
        slots[op.key] = Slot(stored, deleted, 0 if deleted else size, version, *stamp, dirty=True)
        results.append({"op_id": op.op_id, "status": APPLIED, "version": version})
        changes.append(_change(op, APPLIED, version, seal))
    return Batch(results, changes, version, bytes_used, key_count, grew)


def _change(op: Op, status: str, version: int | None, seal: Callable) -> ChangeRow:
    return ChangeRow(op.op_id, op.key, op.op, seal(op.key, op.value), status, version, op.hlc_ms, op.hlc_counter)


def check_quota(*, batch: Batch, ops: list[Op], limits) -> QuotaViolation | None:
    """The first limit the batch crosses (`limits`: value_bytes, sync_bytes, keys), or None.

    A set larger than the item limit always crosses; the totals only matter when the batch grew.
    """
    for op in ops:
        if op.op == "set" and op.size > limits.value_bytes:
            return QuotaViolation(
                f"The value of {op.key} is larger than your plan allows ({limits.value_bytes} bytes).",
                {"limit": "value_bytes", "allowed": limits.value_bytes, "key": op.key, "size": op.size},
            )
    if not batch.grew:
        return None
    if batch.bytes_used > limits.sync_bytes:
        return QuotaViolation(
            "Your plan's sync storage is full: delete some settings or upgrade.",
            {"limit": "sync_bytes", "allowed": limits.sync_bytes, "would_use": batch.bytes_used},
        )
    if batch.key_count > limits.keys:
        return QuotaViolation(
            "Your plan's number of synced keys is reached: delete some or upgrade.",
            {"limit": "keys", "allowed": limits.keys, "would_use": batch.key_count},
        )
    return None


MANUAL_SNAPSHOT = "manual"


def snapshot_room(existing: list[tuple[Any, str]], *, reason: str, limit: int) -> tuple[list, QuotaViolation | None]:
    """The automatic snapshots to evict before taking one more, or the violation refusing a manual one.

    `existing`: (id, reason) oldest first. Manual snapshots count against the limit and are refused
    past it; automatic ones fill the remaining room, the oldest rotating out (the newest is kept).
    """
    manual = sum(1 for _, kind in existing if kind == MANUAL_SNAPSHOT)
    autos = [snapshot_id for snapshot_id, kind in existing if kind != MANUAL_SNAPSHOT]
    if reason == MANUAL_SNAPSHOT:
        if manual >= limit:
            message = f"Your plan keeps at most {limit} snapshots: delete one or upgrade."
            return [], QuotaViolation(message, {"limit": "snapshots", "allowed": limit})
        room_for_autos = limit - manual - 1
    else:
        room_for_autos = max(limit - manual, 1) - 1
    return autos[: max(len(autos) - room_for_autos, 0)], None


def server_ops(
    *, desired: dict, slots: dict[str, Slot], now_ms: int, prefix: str, unseal: Callable = _identity
) -> list[Op]:
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


def change_json(key: str, value_json: str | None, deleted: bool, version: int, hlc_ms, hlc_counter, device_id) -> str:
    """One pulled change as JSON text, splicing in the value's JSON text as stored.

    The hot path: no parse and re-dump per value. Keys and device ids come from validated character
    sets that need no escaping in JSON; a secret value's JSON arrives already unsealed.
    """
    if deleted or value_json is None:
        value_json = "null"
    return (
        f'{{"key":"{key}","value":{value_json},"deleted":{"true" if deleted else "false"},'
        f'"version":{version},"hlc":"{hlc_ms}-{hlc_counter}","device_id":"{device_id}"}}'
    )
