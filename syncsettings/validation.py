"""Input checks for sync requests, in plain Python: a 100-op push is validated in well under a millisecond.

Every check runs before anything is locked or written, so an invalid request changes nothing.
"""

import re

from chatfocus.exceptions import DomainError, ValidationFailed
from chatfocus.text import UNSTORABLE_MESSAGE, has_unstorable_text
from syncsettings.protocol import Op, is_number, value_size

MAX_OPS = 100
MAX_PULL_LIMIT = 1000
MAX_VALUE_DEPTH = 32
MAX_CLOCK_AHEAD_MS = 5 * 60 * 1000
# The device id the server uses for ops it writes itself (PUT settings, restore).
SERVER_DEVICE = "server"
KEY = re.compile(r"[A-Za-z0-9._:/-]{1,128}")
OP_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
DEVICE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# ASCII digits only: `\d` would take any Unicode digit (Arabic-Indic ٣, fullwidth ３), and int() reads them.
HLC = re.compile(r"([0-9]{1,15})-([0-9]{1,9})")
ETAG = re.compile(r'\s*(?:W/)?"v([0-9]{1,18})"\s*')
OPS = ("set", "delete", "incr")


class ClockDrift(DomainError):
    code, status, message = "clock_drift", 400, "An op's clock is more than 5 minutes ahead of the server."


def _depth(value, limit: int) -> int:
    """Nesting depth of a JSON value, stopping early once past `limit`."""
    if limit < 0:
        return 1
    if isinstance(value, dict):
        return 1 + max((_depth(item, limit - 1) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item, limit - 1) for item in value), default=0)
    return 0


def check_value(value, *, field: str, errors: dict) -> None:
    if _depth(value, MAX_VALUE_DEPTH) > MAX_VALUE_DEPTH:
        errors[field] = [f"Values may nest at most {MAX_VALUE_DEPTH} levels deep."]
    elif has_unstorable_text(value):
        errors[field] = [UNSTORABLE_MESSAGE]


def check_key(key, *, field: str, errors: dict) -> bool:
    if not isinstance(key, str) or not KEY.fullmatch(key):
        errors[field] = ["Keys are 1-128 characters of A-Z a-z 0-9 . _ : / -."]
        return False
    return True


def parse_device_id(raw, *, field: str = "device_id") -> str:
    if not isinstance(raw, str) or not DEVICE_ID.fullmatch(raw) or raw == SERVER_DEVICE:
        message = "A device id is 1-64 characters of A-Z a-z 0-9 . _ : - (not 'server')."
        raise ValidationFailed(fields={field: [message]})
    return raw


def parse_push(data, *, now_ms: int) -> tuple[str, list[Op]]:
    """Validate a push body into (device_id, ops); ValidationFailed lists every bad field, ClockDrift wins."""
    if not isinstance(data, dict):
        raise ValidationFailed(fields={"non_field_errors": ["Send a JSON object {device_id, ops}."]})
    device_id = parse_device_id(data.get("device_id"))
    raw_ops = data.get("ops")
    if not isinstance(raw_ops, list) or not raw_ops:
        raise ValidationFailed(fields={"ops": ["A non-empty list of ops is required."]})
    if len(raw_ops) > MAX_OPS:
        raise ValidationFailed(fields={"ops": [f"At most {MAX_OPS} ops per push."]})
    errors: dict[str, list[str]] = {}
    ops: list[Op] = []
    seen_ids: set[str] = set()
    drifted = False
    for index, raw in enumerate(raw_ops):
        prefix = f"ops.{index}"
        if not isinstance(raw, dict):
            errors[prefix] = ["Each op is an object {op_id, key, op, value?, hlc}."]
            continue
        unknown = set(raw) - {"op_id", "key", "op", "value", "hlc"}
        if unknown:
            errors[prefix] = [f"Unknown fields: {', '.join(sorted(map(str, unknown)))}."]
        op_id, key, kind, hlc = raw.get("op_id"), raw.get("key"), raw.get("op"), raw.get("hlc")
        if not isinstance(op_id, str) or not OP_ID.fullmatch(op_id):
            errors[f"{prefix}.op_id"] = ["An op_id is 1-64 characters of A-Z a-z 0-9 . _ : -."]
        elif op_id in seen_ids:
            errors[f"{prefix}.op_id"] = ["This op_id appears twice in the push."]
        else:
            seen_ids.add(op_id)
        key_ok = check_key(key, field=f"{prefix}.key", errors=errors)
        if kind not in OPS:
            errors[f"{prefix}.op"] = ["One of: set, delete, incr."]
        match = HLC.fullmatch(hlc) if isinstance(hlc, str) else None
        if match is None:
            errors[f"{prefix}.hlc"] = ['An HLC is "<unix ms>-<counter>".']
        elif int(match.group(1)) > now_ms + MAX_CLOCK_AHEAD_MS:
            drifted = True
        value = raw.get("value")
        if kind == "set":
            if "value" not in raw:
                errors[f"{prefix}.value"] = ["A set needs a value."]
            else:
                check_value(value, field=f"{prefix}.value", errors=errors)
        elif kind == "incr" and not is_number(value):
            errors[f"{prefix}.value"] = ["An incr needs a finite number in value (the delta)."]
        elif kind == "delete":
            value = None
        if not errors and key_ok and match is not None:
            size = value_size(key, value) if kind == "set" else 0
            ops.append(Op(op_id, key, kind, value, int(match.group(1)), int(match.group(2)), size))
    if drifted:
        raise ClockDrift(details={"server_time": now_ms, "max_ahead_ms": MAX_CLOCK_AHEAD_MS})
    if errors:
        raise ValidationFailed(fields=errors)
    return device_id, ops


def parse_version(raw, *, field: str, default: int | None = None) -> int | None:
    """A non-negative integer from a query parameter."""
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ValidationFailed(fields={field: ["A non-negative integer is required."]})
    return int(raw)


def parse_etag_version(header: str | None) -> int | None:
    """The version in an `ETag`-style header value `"v<version>"`, or None."""
    if not header:
        return None
    match = ETAG.fullmatch(header)
    return int(match.group(1)) if match else None


def parse_settings_document(data) -> dict:
    """The body of PUT settings: {settings: {key: value}} with valid keys and values."""
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
        raise ValidationFailed(fields={"settings": ["An object of key → JSON value is required."]})
    errors: dict[str, list[str]] = {}
    for key, value in data["settings"].items():
        if check_key(key, field=f"settings.{key}"[:140], errors=errors):
            check_value(value, field=f"settings.{key}", errors=errors)
    if errors:
        raise ValidationFailed(fields=errors)
    return data["settings"]
