"""Analytics verbs: ingest a batch, export/delete a user's events, roll up a day, prune."""

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Count
from django.utils import timezone

from accounts.services import get_analytics_opt_in
from analytics.models import DailyActiveUsers, DailyEventRollup, DailyMetricRollup, Event, EventDefinition
from analytics.validation import Definition, Rejected, ValidEvent, validate_event
from billing.services import get_entitlements
from chatfocus.metrics import ANALYTICS_EVENTS

REGISTRY_CACHE_KEY = "analytics:registry:v1"
REGISTRY_CACHE_SECONDS = 300
PRUNE_CHUNK = 10_000
PERCENTILES = (0.5, 0.95, 0.99)


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    dropped: int = 0
    rejected: list[dict] = field(default_factory=list)


def get_event_registry() -> dict[str, Definition]:
    """Active event and metric names with what they allow (cached; the admin clears it on change)."""
    registry = cache.get(REGISTRY_CACHE_KEY)
    if registry is None:
        registry = {
            definition.name: Definition(definition.kind, frozenset(definition.allowed_props))
            for definition in EventDefinition.objects.filter(active=True)
        }
        cache.set(REGISTRY_CACHE_KEY, registry, timeout=REGISTRY_CACHE_SECONDS)
    return registry


def forget_event_registry() -> None:
    """Make the next ingest read the registry from the database."""
    cache.delete(REGISTRY_CACHE_KEY)


def ingest_events(*, user, events: list) -> IngestResult:
    """Validate each event on its own and store the valid ones once; nothing at all without opt-in."""
    if not get_analytics_opt_in(user_id=user.id):
        ANALYTICS_EVENTS.labels(outcome="dropped").inc(len(events))
        return IngestResult(dropped=len(events))
    registry = get_event_registry()
    now = timezone.now()
    result = IngestResult()
    valid: list[ValidEvent] = []
    seen = set()
    for index, raw in enumerate(events):
        try:
            event = validate_event(raw, registry=registry, now=now)
        except Rejected as rejection:
            result.rejected.append({"index": index, "code": rejection.code})
            continue
        if event.event_id in seen:
            result.duplicates += 1
            continue
        seen.add(event.event_id)
        valid.append(event)
    if valid:
        tier = get_entitlements(user=user).tier
        result.accepted = _store_events(user_id=user.id, events=valid, tier=tier, received_at=now)
        result.duplicates += len(valid) - result.accepted
    for outcome, count in (
        ("accepted", result.accepted),
        ("duplicate", result.duplicates),
        ("rejected", len(result.rejected)),
    ):
        if count:
            ANALYTICS_EVENTS.labels(outcome=outcome).inc(count)
    return result


EVENT_COLUMNS = (
    "event_id, user_id, name, ts, received_at, props, value, tier, client_version, client_browser, client_os"
)
COPY_EVENTS_SQL = f"COPY {Event._meta.db_table} ({EVENT_COLUMNS}) FROM STDIN"
INSERT_EVENTS_SQL = f"""
INSERT INTO {Event._meta.db_table} ({EVENT_COLUMNS})
SELECT e.event_id, %s, e.name, e.ts, %s, e.props::jsonb, e.value, %s, e.client_version, e.client_browser, e.client_os
FROM unnest(%s::uuid[], %s::text[], %s::timestamptz[], %s::text[], %s::float8[], %s::text[], %s::text[], %s::text[])
    AS e(event_id, name, ts, props, value, client_version, client_browser, client_os)
ON CONFLICT (user_id, event_id) DO NOTHING
"""


def _store_events(*, user_id, events: list[ValidEvent], tier: str, received_at: datetime) -> int:
    """Insert the batch; returns how many were new (the rest were stored before)."""
    if connection.vendor == "postgresql":
        try:
            return _copy_events(user_id=user_id, events=events, tier=tier, received_at=received_at)
        except IntegrityError:
            # Some ids are stored already (the client resent a batch): INSERT … ON CONFLICT skips
            # exactly those, and stays right when the same batch arrives twice at the same moment.
            return _insert_new_events(user_id=user_id, events=events, tier=tier, received_at=received_at)
    # SQLite (`make run`): one process, so looking up the known ids first is race-free enough.
    known = set(
        Event.objects.filter(user_id=user_id, event_id__in=[event.event_id for event in events]).values_list(
            "event_id", flat=True
        )
    )
    new_rows = [
        Event(
            event_id=event.event_id,
            user_id=user_id,
            name=event.name,
            ts=event.ts,
            received_at=received_at,
            props=event.props,
            value=event.value,
            tier=tier,
            client_version=event.client_version,
            client_browser=event.client_browser,
            client_os=event.client_os,
        )
        for event in events
        if event.event_id not in known
    ]
    Event.objects.bulk_create(new_rows, ignore_conflicts=True)
    return len(new_rows)


def _copy_events(*, user_id, events: list[ValidEvent], tier: str, received_at: datetime) -> int:
    """COPY the batch (~1.5x the rate of the INSERT below); IntegrityError, nothing stored, if an id is known."""
    with transaction.atomic(), connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(COPY_EVENTS_SQL) as copy:
            for event in events:
                copy.write_row(
                    (
                        event.event_id,
                        user_id,
                        event.name,
                        event.ts,
                        received_at,
                        json.dumps(event.props),
                        event.value,
                        tier,
                        event.client_version,
                        event.client_browser,
                        event.client_os,
                    )
                )
    return len(events)


def _insert_new_events(*, user_id, events: list[ValidEvent], tier: str, received_at: datetime) -> int:
    """One INSERT … SELECT FROM unnest(arrays) … ON CONFLICT DO NOTHING; returns the rows inserted."""
    params = [
        user_id,
        received_at,
        tier,
        [event.event_id for event in events],
        [event.name for event in events],
        [event.ts for event in events],
        [json.dumps(event.props) for event in events],
        [event.value for event in events],
        [event.client_version for event in events],
        [event.client_browser for event in events],
        [event.client_os for event in events],
    ]
    with connection.cursor() as cursor:
        cursor.execute(INSERT_EVENTS_SQL, params)
        return cursor.rowcount


def export_user_events(*, user) -> list:
    """Every raw event stored for the user, oldest first, for the account export."""
    return [
        {
            "id": str(event.event_id),
            "name": event.name,
            "ts": event.ts.isoformat(),
            "props": event.props,
            "value": event.value,
            "tier": event.tier,
            "client": {"version": event.client_version, "browser": event.client_browser, "os": event.client_os},
            "received_at": event.received_at.isoformat(),
        }
        for event in Event.objects.filter(user_id=user.id).order_by("ts", "id")
    ]


def delete_user_events(*, user) -> int:
    """Delete the user's raw events (rollups are anonymous aggregates and stay); returns the count."""
    deleted, _ = Event.objects.filter(user_id=user.id).delete()
    return deleted


@dataclass
class RollupSummary:
    day: date
    event_rows: int
    metric_rows: int
    dau: int
    wau: int
    mau: int


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def rollup_day(*, day: date) -> RollupSummary:
    """Recompute every rollup of one UTC day from raw events; re-running replaces, never adds."""
    start, end = _day_bounds(day)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Two concurrent runs for the same day would both delete, then collide on insert.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [0x616E, day.toordinal()])
        day_events = Event.objects.filter(ts__gte=start, ts__lt=end)
        event_rows = [
            DailyEventRollup(day=day, **row)
            for row in day_events.values("name", "tier", "client_version")
            .annotate(count=Count("id"), unique_users=Count("user_id", distinct=True))
            .order_by()
        ]
        DailyEventRollup.objects.filter(day=day).delete()
        DailyEventRollup.objects.bulk_create(event_rows)

        def distinct_users(days: int) -> int:
            window = Event.objects.filter(ts__gte=end - timedelta(days=days), ts__lt=end)
            return window.aggregate(users=Count("user_id", distinct=True))["users"]

        dau, wau, mau = distinct_users(1), distinct_users(7), distinct_users(30)
        DailyActiveUsers.objects.update_or_create(day=day, defaults={"dau": dau, "wau": wau, "mau": mau})

        metric_names = list(EventDefinition.objects.filter(kind=EventDefinition.METRIC).values_list("name", flat=True))
        metric_rows = [
            DailyMetricRollup(day=day, name=name, count=count, p50=p50, p95=p95, p99=p99)
            for name, count, (p50, p95, p99) in _metric_percentiles(start=start, end=end, names=metric_names)
        ]
        DailyMetricRollup.objects.filter(day=day).delete()
        DailyMetricRollup.objects.bulk_create(metric_rows)
    return RollupSummary(day, len(event_rows), len(metric_rows), dau, wau, mau)


def _metric_percentiles(*, start: datetime, end: datetime, names: list[str]) -> list[tuple[str, int, list[float]]]:
    """(name, count, [p50, p95, p99]) per metric with values in [start, end), interpolated like percentile_cont."""
    if not names:
        return []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT name, count(*), percentile_cont(%s::float8[]) WITHIN GROUP (ORDER BY value)
                FROM {Event._meta.db_table}
                WHERE ts >= %s AND ts < %s AND name = ANY(%s) AND value IS NOT NULL
                GROUP BY name ORDER BY name
                """,
                [list(PERCENTILES), start, end, names],
            )
            return [(name, count, list(values)) for name, count, values in cursor.fetchall()]
    values_by_name: dict[str, list[float]] = {}
    rows = (
        Event.objects.filter(ts__gte=start, ts__lt=end, name__in=names, value__isnull=False)
        .order_by("name", "value")
        .values_list("name", "value")
    )
    for name, value in rows:
        values_by_name.setdefault(name, []).append(value)
    return [
        (name, len(values), [_percentile_cont(values, fraction) for fraction in PERCENTILES])
        for name, values in sorted(values_by_name.items())
    ]


def _percentile_cont(sorted_values: list[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the two nearest ranks."""
    position = fraction * (len(sorted_values) - 1)
    lower = int(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * (position - lower)


def rollup_recent_days(*, days: int, last_day: date | None = None) -> list[RollupSummary]:
    """Roll up `days` UTC days ending on `last_day` (default today), oldest first."""
    last_day = last_day or timezone.now().date()
    return [rollup_day(day=last_day - timedelta(days=offset)) for offset in range(days - 1, -1, -1)]


def prune_expired_events(*, now: datetime | None = None) -> int:
    """Delete raw events older than ANALYTICS_RETENTION_DAYS in chunks; rollups stay. Returns the count."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.ANALYTICS_RETENTION_DAYS)
    expired = Event.objects.filter(ts__lt=cutoff)
    total = 0
    while True:
        ids = list(expired.values_list("id", flat=True)[:PRUNE_CHUNK])
        if not ids:
            return total
        deleted, _ = Event.objects.filter(id__in=ids).delete()
        total += deleted
