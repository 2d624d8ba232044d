"""Reads for the staff dashboard: rollups over a range of days plus signups and paid conversions."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Sum

from accounts.services import count_signups_by_day
from analytics.models import DailyActiveUsers, DailyEventRollup, DailyMetricRollup, EventDefinition
from billing.services import count_paid_conversions_by_day

TOP_FEATURES = 10


@dataclass
class DashboardData:
    days: list[date]
    active_users: dict[str, list[int | None]]  # DAU / WAU / MAU per day (None: not rolled up yet)
    features_by_tier: dict[str, dict[str, int]]  # event name → tier → count over the range
    tiers: list[str]
    metric_percentiles: dict[str, dict[str, list[float | None]]]  # metric → p50/p95/p99 per day
    signups: list[int]
    paid_conversions: list[int]


def get_dashboard_data(*, days: int, last_day: date) -> DashboardData:
    """Everything the dashboard charts for the `days` UTC days ending on `last_day`."""
    first_day = last_day - timedelta(days=days - 1)
    day_list = [first_day + timedelta(days=offset) for offset in range(days)]
    index = {day: position for position, day in enumerate(day_list)}

    active_users = {"DAU": [None] * days, "WAU": [None] * days, "MAU": [None] * days}
    for row in DailyActiveUsers.objects.filter(day__range=(first_day, last_day)):
        for label, value in (("DAU", row.dau), ("WAU", row.wau), ("MAU", row.mau)):
            active_users[label][index[row.day]] = value

    metric_names = set(EventDefinition.objects.filter(kind=EventDefinition.METRIC).values_list("name", flat=True))
    feature_totals = (
        DailyEventRollup.objects.filter(day__range=(first_day, last_day))
        .exclude(name__in=metric_names)
        .values("name", "tier")
        .annotate(total=Sum("count"))
        .order_by()
    )
    features_by_tier: dict[str, dict[str, int]] = {}
    for row in feature_totals:
        features_by_tier.setdefault(row["name"], {})[row["tier"]] = row["total"]
    top = sorted(features_by_tier, key=lambda name: (-sum(features_by_tier[name].values()), name))[:TOP_FEATURES]
    features_by_tier = {name: features_by_tier[name] for name in top}
    tiers = sorted({tier for counts in features_by_tier.values() for tier in counts})

    metric_percentiles: dict[str, dict[str, list[float | None]]] = {}
    for row in DailyMetricRollup.objects.filter(day__range=(first_day, last_day)).order_by("name", "day"):
        series = metric_percentiles.setdefault(
            row.name, {"p50": [None] * days, "p95": [None] * days, "p99": [None] * days}
        )
        for label in ("p50", "p95", "p99"):
            series[label][index[row.day]] = getattr(row, label)

    start = datetime.combine(first_day, time.min, tzinfo=UTC)
    end = datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=UTC)
    return DashboardData(
        days=day_list,
        active_users=active_users,
        features_by_tier=features_by_tier,
        tiers=tiers,
        metric_percentiles=metric_percentiles,
        signups=_per_day(count_signups_by_day(start=start, end=end), day_list),
        paid_conversions=_per_day(count_paid_conversions_by_day(start=start, end=end), day_list),
    )


def _per_day(counts: dict[date, int], days: list[date]) -> list[int]:
    return [counts.get(day, 0) for day in days]
