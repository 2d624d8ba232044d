"""The sync rules in syncsettings.protocol, without a database (no django_db mark: any query would fail)."""

import ast
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from syncsettings import protocol
from syncsettings.protocol import APPLIED, SUPERSEDED, Op, Slot, apply_ops, check_quota, value_size

LIMITS = SimpleNamespace(value_bytes=100, sync_bytes=300, keys=3)


def op(key, value=None, *, kind="set", ms=1000, counter=0, op_id=None):
    size = value_size(key, value) if kind == "set" else 0
    return Op(op_id or f"{key}-{ms}-{counter}-{kind}", key, kind, value, ms, counter, size)


def slot(value, *, ms=1000, counter=0, device="laptop", version=1, key="k"):
    return Slot(value, value is None, 0 if value is None else value_size(key, value), version, ms, counter, device)


def start(version=0, bytes_used=0, key_count=0):
    return SimpleNamespace(version=version, bytes_used=bytes_used, key_count=key_count)


def apply(ops, *, slots=None, seen=None, device="laptop", at=None, **kwargs):
    slots = {} if slots is None else slots
    return apply_ops(at or start(), ops=ops, device_id=device, seen=seen or {}, slots=slots, **kwargs), slots


def test_the_module_imports_nothing_of_django():
    tree = ast.parse(Path(protocol.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] in {"django", "rest_framework", "syncsettings"}}


def test_sets_take_gapless_versions_and_count_bytes_and_keys():
    batch, slots = apply([op("a", 1), op("b", "xy")], at=start(version=7))
    assert [r["version"] for r in batch.results] == [8, 9] and batch.version == 9
    assert batch.bytes_used == value_size("a", 1) + value_size("b", "xy") and batch.key_count == 2
    assert slots["a"].dirty and slots["a"].stamp == (1000, 0, "laptop") and batch.grew


@pytest.mark.parametrize(
    ("stored", "incoming", "status"),
    [
        ((1000, 0, "laptop"), (999, 5, "laptop"), SUPERSEDED),  # older ms loses whatever its counter
        ((1000, 3, "laptop"), (1000, 2, "phone"), SUPERSEDED),  # same ms: lower counter loses
        ((1000, 3, "phone"), (1000, 3, "laptop"), SUPERSEDED),  # same ms and counter: device id breaks the tie
        ((1000, 3, "laptop"), (1000, 3, "laptop"), SUPERSEDED),  # an equal stamp is not higher
        ((1000, 3, "laptop"), (1000, 3, "phone"), APPLIED),
        ((1000, 3, "phone"), (1000, 4, "laptop"), APPLIED),
        ((1000, 9, "phone"), (1001, 0, "laptop"), APPLIED),
    ],
)
def test_set_and_delete_apply_only_over_a_higher_hlc_stamp(stored, incoming, status):
    ms, counter, device = stored
    for kind in ("set", "delete"):
        slots = {"k": slot("old", ms=ms, counter=counter, device=device)}
        batch, slots = apply(
            [op("k", "new", kind=kind, ms=incoming[0], counter=incoming[1])], slots=slots, device=incoming[2]
        )
        assert batch.results[0]["status"] == status
        if status == SUPERSEDED:
            assert batch.version == 0 and batch.results[0]["version"] is None and slots["k"].value == "old"
            assert batch.changes[0].status == SUPERSEDED  # kept in the history
        else:
            assert slots["k"].deleted == (kind == "delete") and batch.version == 1


def test_a_superseded_op_takes_no_version_and_the_next_applied_one_stays_gapless():
    slots = {"k": slot("stored", ms=5000)}
    batch, _ = apply([op("k", "old", ms=1000), op("j", 1, ms=1000)], slots=slots, at=start(version=3, key_count=1))
    assert [(r["status"], r["version"]) for r in batch.results] == [(SUPERSEDED, None), (APPLIED, 4)]


def test_a_seen_op_id_answers_its_first_result_and_changes_nothing():
    first = {"op_id": "x", "status": "duplicate", "version": 2}
    batch, slots = apply([op("k", 1, op_id="x")], seen={"x": first})
    assert batch.results == [first] and batch.changes == [] and slots == {} and batch.version == 0


def test_a_delete_frees_its_bytes_and_key_and_leaves_a_tombstone():
    stored = slot("abc")
    batch, slots = apply([op("k", kind="delete", ms=2000)], slots={"k": stored}, at=start(1, stored.size, 1))
    assert (batch.bytes_used, batch.key_count, batch.grew) == (0, 0, False)
    assert slots["k"].deleted and slots["k"].value is None and slots["k"].version == 2


def test_incr_starts_from_zero_adds_up_and_is_never_superseded():
    batch, slots = apply([op("n", 2, kind="incr", ms=10)], slots={})
    assert slots["n"].value == 2
    # A later stored stamp does not supersede an incr: the delta adds and the stamp stays the higher one.
    slots["n"] = slot(5, ms=9000, counter=4, device="phone")
    batch, slots = apply([op("n", 1.5, kind="incr", ms=10)], slots=slots, device="laptop")
    assert batch.results[0]["status"] == APPLIED and slots["n"].value == 6.5
    assert slots["n"].stamp == (9000, 4, "phone")
    # ...and raises it when the incr's stamp is the higher one.
    batch, slots = apply([op("n", -1, kind="incr", ms=9999)], slots=slots)
    assert slots["n"].value == 5.5 and slots["n"].stamp == (9999, 0, "laptop")


def test_incr_over_a_tombstone_starts_from_zero():
    batch, slots = apply([op("n", 3, kind="incr", ms=1)], slots={"n": slot(None, ms=5000)})
    assert slots["n"].value == 3 and batch.key_count == 1


@pytest.mark.parametrize(("stored", "delta"), [("text", 1), ({"a": 1}, 1), (True, 1), (1.7e308, 1.7e308)])
def test_incr_on_a_non_number_or_to_a_non_finite_sum_is_rejected(stored, delta):
    with pytest.raises(protocol.OpRejected) as raised:
        apply([op("a", 1), op("n", delta, kind="incr")], slots={"n": slot(stored)})
    assert raised.value.field == "ops.1.value"


def test_seal_and_unseal_wrap_the_stored_form():
    def seal(key, value):
        return f"sealed:{json.dumps(value)}"

    def unseal(key, value):
        return json.loads(value.removeprefix("sealed:"))

    batch, slots = apply([op("n", 2, kind="incr")], slots={"n": slot("sealed:40")}, seal=seal, unseal=unseal)
    assert slots["n"].value == "sealed:42" and batch.changes[0].value == "sealed:2"


def test_quota_a_single_value_over_the_item_limit_is_refused_even_when_the_totals_fit():
    ops = [op("big", "x" * 200)]
    batch, _ = apply(ops)
    violation = check_quota(batch=batch, ops=ops, limits=SimpleNamespace(value_bytes=100, sync_bytes=10**6, keys=99))
    assert violation.details["limit"] == "value_bytes" and violation.details["size"] == ops[0].size


@pytest.mark.parametrize(("used", "keys", "limit"), [(290, 1, "sync_bytes"), (0, 3, "keys")])
def test_quota_a_growing_batch_that_ends_over_a_limit_is_refused(used, keys, limit):
    ops = [op("k", "0123456789")]
    batch, _ = apply(ops, at=start(5, used, keys))
    assert check_quota(batch=batch, ops=ops, limits=LIMITS).details["limit"] == limit


def test_quota_exactly_at_the_limit_is_allowed():
    ops = [op("k", "x" * 50)]
    batch, _ = apply(ops, at=start(0, 300 - ops[0].size, 2))
    assert batch.bytes_used == 300 and batch.key_count == 3
    assert check_quota(batch=batch, ops=ops, limits=LIMITS) is None


def test_quota_deletes_are_always_allowed_even_over_quota():
    ops = [op("k", kind="delete", ms=2000)]
    batch, _ = apply(ops, slots={"k": slot("v")}, at=start(9, 10_000, 50))
    assert check_quota(batch=batch, ops=ops, limits=LIMITS) is None


def test_server_ops_diff_the_document_and_win_over_clocks_running_ahead():
    slots = {"same": slot(1, ms=10), "changed": slot(1, ms=99_000, counter=7), "gone": slot(2), "dead": slot(None)}
    ops = protocol.server_ops(desired={"same": 1, "changed": 2, "new": 3}, slots=slots, now_ms=50_000, prefix="put")
    by_key = {o.key: o for o in ops}
    assert set(by_key) == {"changed", "new", "gone"}
    assert (by_key["changed"].hlc_ms, by_key["changed"].hlc_counter) == (99_000, 8)
    assert (by_key["new"].hlc_ms, by_key["new"].hlc_counter, by_key["gone"].op) == (50_000, 0, "delete")
    batch, _ = apply(ops, slots=slots, device="server")
    assert {r["status"] for r in batch.results} == {APPLIED}


def test_change_json_splices_the_value_text_and_nulls_tombstones():
    text = protocol.change_json("a/b", '{"x": [1]}', False, 4, 1000, 2, "laptop")
    assert json.loads(text) == {
        "key": "a/b",
        "value": {"x": [1]},
        "deleted": False,
        "version": 4,
        "hlc": "1000-2",
        "device_id": "laptop",
    }
    assert json.loads(protocol.change_json("a", '"stale"', True, 5, 1, 0, "d"))["value"] is None


def test_snapshot_room_refuses_a_manual_one_past_the_limit_and_rotates_automatic_ones():
    existing = [(1, "auto"), (2, "manual"), (3, "pre_restore"), (4, "auto")]
    assert protocol.snapshot_room(existing, reason="auto", limit=3) == ([1, 3], None)
    assert protocol.snapshot_room(existing, reason="manual", limit=3) == ([1, 3], None)
    evict, violation = protocol.snapshot_room([(1, "manual")], reason="manual", limit=1)
    assert evict == [] and violation.details == {"limit": "snapshots", "allowed": 1}
    # Manual snapshots filling the limit still leave room for the one new automatic snapshot.
    assert protocol.snapshot_room([(1, "manual"), (2, "auto")], reason="auto", limit=1) == ([2], None)


def test_only_the_store_holds_sql_and_the_verbs_stay_short():
    package = Path(protocol.__file__).parent
    # A Redis pipeline's execute() (syncsettings.realtime publishing pokes) is not SQL.
    sql = re.compile(
        r"connection\.cursor|(?<!pipeline)\.execute\(|\bSELECT\b|\bINSERT INTO\b|\bUPDATE\b \w+ SET|\.raw\("
    )
    holders = {
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if "tests" not in path.parts and "migrations" not in path.parts and sql.search(path.read_text())
    }
    assert holders == {"store.py"}
    assert len((package / "services.py").read_text().splitlines()) < 500
