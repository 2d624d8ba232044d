"""Revenue for staff: MRR and its movements per month, subscribers, trials and past-due, read from dj-stripe's
mirror of subscriptions and invoices and from the tier audit log.

How the figures are made:
- A subscription brings MRR from the end of its trial (or its start) until it ends; `unpaid` and `paused`
  ones stop bringing it at their current period's start. Its monthly amount is its price normalised to
  a month (a yearly price / 12).
- Its tier at a moment is the user's tier in the audit log then (staff comp grants left out), so an
  upgrade counts from the change and a downgrade from the end of the period paid for; a tier other
  than the one of the subscription's current price is valued at the catalogue price of that tier.
- A month's MRR is the MRR at its end (now, for the current month). Movements compare each user's MRR
  at the end of a month with the end of the month before: new (never paid before), reactivation (paid
  before), expansion, contraction, churn. MRR then = MRR before + new + reactivation + expansion −
  contraction − churn, exactly.
- One currency: the one most subscriptions bill in; others are counted apart and left out of the sums.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from analytics.charts import bar_chart, line_chart
from billing.models import TierChange
from billing.selectors import INTERVALS, PAID_TIERS, find_price_id
from billing.tiers import FREE, TIER_ORDER

MONTHS = 12
MOVEMENTS = ("new", "expansion", "reactivation", "contraction", "churn")
LOSSES = ("contraction", "churn")
MONTHS_PER_INTERVAL = {"day": Decimal(12) / 365, "week": Decimal(12) / 52, "month": Decimal(1), "year": Decimal(12)}
NOT_STARTED = {"incomplete", "incomplete_expired"}
NOT_PAYING = {"unpaid", "paused"}
CENTS = Decimal("0.01")


@dataclass(frozen=True)
class _Subscription:
    id: str
    user_id: str
    status: str
    tier: str
    interval: str
    months: Decimal
    monthly_cents: Decimal
    currency: str
    paying_from: datetime
    paying_until: datetime | None
    trial_start: datetime | None
    trial_end: datetime | None
    ended_at: datetime | None


@dataclass
class RevenueReport:
    currency: str
    now: datetime
    months: list[str]
    mrr: list[Decimal]
    movements: dict[str, list[Decimal]]
    subscribers: list[dict]
    trials: dict
    trials_by_month: list[dict]
    past_due: dict
    other_currencies: dict[str, int] = field(default_factory=dict)

    @property
    def mrr_now(self) -> Decimal:
        return self.mrr[-1]


def _ts(value) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if isinstance(value, int) else None


def _month_starts(now: datetime) -> list[datetime]:
    """The first instants of the report's months and of the month after (MONTHS + 1 values)."""
    year, month = now.year, now.month
    starts = []
    for offset in range(MONTHS - 1, -2, -1):
        index = year * 12 + month - 1 - offset
        starts.append(datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC))
    return starts


def _catalogue() -> dict[tuple[str, str], int]:
    """Cents of the price sold today per (tier, interval), to value a tier a subscription no longer has."""
    from djstripe.models import Price

    amounts = {}
    for tier in PAID_TIERS:
        for interval in INTERVALS:
            price_id = find_price_id(tier=tier, interval=interval)
            if price_id:
                amounts[(tier, interval)] = Price.objects.get(id=price_id).unit_amount or 0
    return amounts


def _tier_of_price(price: dict, mirrored_tiers: dict[str, str]) -> str:
    tier = (price.get("metadata") or {}).get("chatfocus_tier")
    return tier if tier in PAID_TIERS else mirrored_tiers.get(price.get("id"), FREE)


def _load_subscriptions() -> list[_Subscription]:
    from djstripe.models import Price, Subscription

    mirrored_tiers = {}
    for price in Price.objects.select_related("product"):
        tier = (price.metadata or {}).get("chatfocus_tier") or (price.product.metadata or {}).get("chatfocus_tier")
        if tier in PAID_TIERS:
            mirrored_tiers[price.id] = tier
    rows = Subscription.objects.filter(livemode=settings.STRIPE_LIVE_MODE).select_related("customer")
    loaded = []
    for row in rows:
        data = row.stripe_data
        items = (data.get("items") or {}).get("data") or []
        user_id = row.customer.subscriber_id or (data.get("metadata") or {}).get("djstripe_subscriber")
        if data.get("status") in NOT_STARTED or not items or not user_id:
            continue
        item, price = items[0], items[0].get("price") or {}
        recurring = price.get("recurring") or {}
        months = MONTHS_PER_INTERVAL.get(recurring.get("interval"), Decimal(1)) * (recurring.get("interval_count") or 1)
        started = _ts(data.get("start_date")) or row.created
        trial_end = _ts(data.get("trial_end"))
        ended = _ts(data.get("ended_at")) or (
            _ts(data.get("canceled_at")) if data.get("status") == "canceled" else None
        )
        paying_until = ended
        if data.get("status") in NOT_PAYING:
            paying_until = _ts(item.get("current_period_start")) or timezone.now()
        loaded.append(
            _Subscription(
                id=row.id,
                user_id=str(user_id),
                status=data.get("status") or "",
                tier=_tier_of_price(price, mirrored_tiers),
                interval=recurring.get("interval", "month"),
                months=months,
                monthly_cents=Decimal((price.get("unit_amount") or 0) * (item.get("quantity") or 1)) / months,
                currency=(price.get("currency") or data.get("currency") or "").lower(),
                paying_from=max(started, trial_end) if trial_end else started,
                paying_until=paying_until,
                trial_start=_ts(data.get("trial_start")),
                trial_end=trial_end,
                ended_at=ended,
            )
        )
    return loaded


class _Valuation:
    """Each subscription's and user's MRR at a moment, from its life span and the tier audit log."""

    def __init__(self, subscriptions: list[_Subscription], catalogue: dict[tuple[str, str], int]):
        self.subscriptions = subscriptions
        self.catalogue = catalogue
        self.by_user = defaultdict(list)
        for subscription in subscriptions:
            self.by_user[subscription.user_id].append(subscription)
        self.tier_log = defaultdict(list)
        changes = (
            TierChange.objects.filter(user_id__in=list(self.by_user))
            .exclude(source=TierChange.Source.ADMIN)
            .order_by("created_at", "id")
            .values_list("user_id", "to_tier", "created_at")
        )
        for user_id, tier, at in changes:
            self.tier_log[str(user_id)].append((at, tier))
        self.first_paid = {
            user_id: min(s.paying_from for s in subscriptions) for user_id, subscriptions in self.by_user.items()
        }

    def tier_at(self, subscription: _Subscription, at: datetime) -> str:
        tier = FREE
        for changed_at, to_tier in self.tier_log[subscription.user_id]:
            if changed_at >= at:
                break
            tier = to_tier
        return subscription.tier if tier == FREE else tier

    def subscription_mrr(self, subscription: _Subscription, at: datetime) -> Decimal:
        if not subscription.paying_from < at or (subscription.paying_until and subscription.paying_until < at):
            return Decimal(0)
        tier = self.tier_at(subscription, at)
        if tier == subscription.tier or (tier, subscription.interval) not in self.catalogue:
            return subscription.monthly_cents
        return Decimal(self.catalogue[(tier, subscription.interval)]) / subscription.months

    def user_mrr(self, user_id: str, at: datetime) -> Decimal:
        return sum((self.subscription_mrr(s, at) for s in self.by_user[user_id]), Decimal(0))


def _units(cents: Decimal) -> Decimal:
    return (cents / 100).quantize(CENTS)


def build_revenue_report(*, now: datetime | None = None) -> RevenueReport:
    """The staff revenue figures at `now` (default: the current time)."""
    now = now or timezone.now()
    subscriptions = _load_subscriptions()
    currencies = Counter(s.currency for s in subscriptions)
    currency = currencies.most_common(1)[0][0] if currencies else "usd"
    others = {code: count for code, count in currencies.items() if code != currency}
    subscriptions = [s for s in subscriptions if s.currency == currency]
    valuation = _Valuation(subscriptions, _catalogue())

    starts = _month_starts(now)
    ends = [*starts[1:MONTHS], now]
    labels = [f"{start:%Y-%m}" for start in starts[:MONTHS]]
    snapshots = [starts[0], *ends]
    per_user = {user_id: [valuation.user_mrr(user_id, at) for at in snapshots] for user_id in valuation.by_user}
    mrr = [_units(sum((values[i + 1] for values in per_user.values()), Decimal(0))) for i in range(MONTHS)]
    movements = {name: [Decimal(0)] * MONTHS for name in MOVEMENTS}
    for user_id, values in per_user.items():
        for i in range(MONTHS):
            before, after = values[i], values[i + 1]
            if before == after:
                continue
            if not before:
                kind = "reactivation" if valuation.first_paid[user_id] < snapshots[i] else "new"
            elif not after:
                kind = "churn"
            else:
                kind = "expansion" if after > before else "contraction"
            movements[kind][i] += abs(after - before)
    movements = {name: [_units(value) for value in values] for name, values in movements.items()}

    return RevenueReport(
        currency=currency,
        now=now,
        months=labels,
        mrr=mrr,
        movements=movements,
        subscribers=_subscribers(valuation, now),
        trials=_trials(subscriptions, now),
        trials_by_month=_trials_by_month(subscriptions, starts, now),
        past_due=_past_due(subscriptions),
        other_currencies=others,
    )


def _subscribers(valuation: _Valuation, now: datetime) -> list[dict]:
    counts, amounts = Counter(), defaultdict(Decimal)
    for subscription in valuation.subscriptions:
        value = valuation.subscription_mrr(subscription, now)
        if value:
            key = (valuation.tier_at(subscription, now), subscription.interval)
            counts[key] += 1
            amounts[key] += value
    order = {tier: index for index, tier in enumerate(TIER_ORDER)}
    return [
        {
            "tier": tier,
            "interval": interval,
            "subscribers": counts[(tier, interval)],
            "mrr": _units(amounts[(tier, interval)]),
        }
        for tier, interval in sorted(counts, key=lambda key: (order.get(key[0], 99), key[1]))
    ]


def _converted(subscription: _Subscription) -> bool:
    return subscription.ended_at is None or subscription.ended_at > subscription.trial_end


def _trials(subscriptions: list[_Subscription], now: datetime) -> dict:
    trials = [s for s in subscriptions if s.trial_end]
    ended = [s for s in trials if s.trial_end <= now]
    converted = sum(1 for s in ended if _converted(s))
    return {
        "running": sum(1 for s in trials if s.trial_end > now and not s.ended_at),
        "ended": len(ended),
        "converted": converted,
        "conversion_rate": round(100 * converted / len(ended), 1) if ended else None,
    }


def _trials_by_month(subscriptions: list[_Subscription], starts: list[datetime], now: datetime) -> list[dict]:
    rows = []
    for start, end in zip(starts[:MONTHS], starts[1:], strict=True):
        ended = [s for s in subscriptions if s.trial_end and start <= s.trial_end < min(end, now)]
        rows.append(
            {
                "month": f"{start:%Y-%m}",
                "started": sum(1 for s in subscriptions if s.trial_start and start <= s.trial_start < end),
                "ended": len(ended),
                "converted": sum(1 for s in ended if _converted(s)),
            }
        )
    return rows


def _past_due(subscriptions: list[_Subscription]) -> dict:
    """Past-due subscriptions and what their open invoices still ask for."""
    from djstripe.models import Invoice

    ids = [s.id for s in subscriptions if s.status == "past_due"]
    invoices = Invoice.objects.filter(
        livemode=settings.STRIPE_LIVE_MODE,
        stripe_data__status="open",
        stripe_data__parent__subscription_details__subscription__in=ids,
    ).values_list("stripe_data__amount_remaining", flat=True)
    return {"count": len(ids), "amount": _units(Decimal(sum(amount or 0 for amount in invoices)))}


def build_revenue_charts(report: RevenueReport) -> list[dict]:
    """The report as pygal charts, each with its numbers in a table (as the analytics dashboard shows them)."""
    currency = report.currency.upper()
    signed = {
        name: [-value if name in LOSSES else value for value in values] for name, values in report.movements.items()
    }
    net = [sum((signed[name][i] for name in MOVEMENTS), Decimal(0)) for i in range(MONTHS)]
    tiers = [f"{row['tier']} / {row['interval']}" for row in report.subscribers]
    return [
        {
            "id": "mrr",
            "title": f"MRR at the end of each month ({currency})",
            "svg": line_chart(
                title="MRR", labels=report.months, series={"MRR": [float(v) for v in report.mrr]}, y_title=currency
            ),
            "table": {
                "columns": ["month", "MRR"],
                "rows": [list(row) for row in zip(report.months, report.mrr, strict=True)],
            },
        },
        {
            "id": "movements",
            "title": f"MRR movements per month ({currency})",
            "svg": bar_chart(
                title="MRR movements",
                labels=report.months,
                series={name: [float(value) for value in values] for name, values in signed.items()},
                stacked=True,
            ),
            "table": {
                "columns": ["month", *MOVEMENTS, "net"],
                "rows": [
                    [month, *(signed[name][i] for name in MOVEMENTS), net[i]] for i, month in enumerate(report.months)
                ],
            },
        },
        {
            "id": "subscribers",
            "title": "Paying subscribers by tier and interval",
            "svg": bar_chart(
                title="Paying subscribers",
                labels=tiers,
                series={"subscribers": [r["subscribers"] for r in report.subscribers]},
            ),
            "table": {
                "columns": ["tier", "interval", "subscribers", f"MRR ({currency})"],
                "rows": [[r["tier"], r["interval"], r["subscribers"], r["mrr"]] for r in report.subscribers],
            },
        },
        {
            "id": "trials",
            "title": "Trials per month: started, ended and converted",
            "svg": bar_chart(
                title="Trials",
                labels=report.months,
                series={
                    name: [row[name] for row in report.trials_by_month] for name in ("started", "ended", "converted")
                },
            ),
            "table": {
                "columns": ["month", "started", "ended", "converted"],
                "rows": [
                    [row["month"], row["started"], row["ended"], row["converted"]] for row in report.trials_by_month
                ],
            },
        },
    ]
