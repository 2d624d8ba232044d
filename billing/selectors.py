"""Billing reads: the tier rule, entitlements (cached per user) and the plan catalogue from dj-stripe's mirror."""

from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone
from djstripe.models import Subscription

from billing.models import BillingAccount
from billing.tiers import FEATURE_TITLES, FREE, PREMIUM, PRO, TIERS, Limits, tier_rank
from chatfocus.cache import get_prefetched
from chatfocus.exceptions import FeatureNotAvailable

PAID_TIERS = (PRO, PREMIUM)
INTERVALS = ("month", "year")
FULL_ACCESS_STATUSES = {"active", "trialing"}
# Statuses of a subscription that still exists in Stripe: a second checkout would double-bill.
UNFINISHED_CHECKOUT_STATUSES = ["incomplete", "incomplete_expired"]
LIVE_STATUSES = {"active", "trialing", "past_due", "unpaid", "incomplete", "paused"}
ACCOUNT_CACHE_KEY = "billing:account:{user_id}"
ACCOUNT_CACHE_SECONDS = 24 * 3600
ACCOUNT_FIELDS = (
    "stripe_customer_id",
    "stripe_subscription_id",
    "tier",
    "status",
    "interval",
    "current_period_end",
    "cancel_at_period_end",
    "trial_end",
    "grace_until",
    "paid_tier",
    "paid_tier_until",
    "comp_tier",
    "comp_until",
)


@dataclass(frozen=True)
class Entitlements:
    tier: str
    status: str
    limits: Limits
    features: tuple[str, ...]
    interval: str | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    trial_end: datetime | None = None
    grace_until: datetime | None = None
    # Where the tier comes from: "free", "stripe" or "comp" (a staff grant).
    source: str = "free"
    # The tier the subscription falls to at period end after a downgrade.
    pending_tier: str | None = None
    comp_until: datetime | None = None


def resolve_tier(*, state: dict, now: datetime) -> tuple[str, str]:
    """(effective tier, source) of a billing state at `now`: the one rule for status, grace, downgrade and comp.

    active/trialing → the subscription's tier; past_due → that tier until grace_until, then free;
    anything else → free. A downgrade keeps the tier paid for until paid_tier_until. A comp grant
    raises the tier until comp_until; it never lowers what the user pays for.
    """
    status = state.get("status") or ""
    paid = FREE
    if status in FULL_ACCESS_STATUSES:
        paid = state.get("tier") or FREE
    elif status == "past_due" and state.get("grace_until") and now < state["grace_until"]:
        paid = state.get("tier") or FREE
    if paid != FREE and state.get("paid_tier") and state.get("paid_tier_until") and now < state["paid_tier_until"]:
        paid = max(paid, state["paid_tier"], key=tier_rank)
    comp = state.get("comp_tier") or FREE
    if comp != FREE and state.get("comp_until") and now >= state["comp_until"]:
        comp = FREE
    if tier_rank(comp) > tier_rank(paid):
        return comp, "comp"
    return paid, ("stripe" if paid != FREE else FREE)


def account_state(account: BillingAccount | None) -> dict:
    """The fields entitlements need, as a plain dict (what the cache holds); {} when there is no account."""
    if account is None:
        return {}
    return {name: getattr(account, name) for name in ACCOUNT_FIELDS}


def _cached_state(user_id, prefetched: dict | None = None) -> dict:
    key = ACCOUNT_CACHE_KEY.format(user_id=user_id)
    state = get_prefetched(key, prefetched)
    if state is None:
        state = account_state(BillingAccount.objects.filter(user_id=user_id).first())
        cache.set(key, state, ACCOUNT_CACHE_SECONDS)
    return state


def forget_cached_state(user_id) -> None:
    """Drop the cached state now and again after the transaction commits (readers may refill it meanwhile)."""
    key = ACCOUNT_CACHE_KEY.format(user_id=user_id)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))


def entitlements_from_state(state: dict, *, now: datetime | None = None) -> Entitlements:
    now = now or timezone.now()
    tier_name, source = resolve_tier(state=state, now=now)
    tier = TIERS[tier_name]
    status = state.get("status") or "free"
    pending = None
    if state.get("paid_tier") and state.get("paid_tier_until") and now < state["paid_tier_until"]:
        if state.get("tier") != tier_name and status in LIVE_STATUSES:
            pending = state.get("tier")
    return Entitlements(
        tier=tier.name,
        status=status,
        limits=tier.limits,
        features=tier.features,
        interval=state.get("interval") or None,
        current_period_end=state.get("current_period_end"),
        cancel_at_period_end=bool(state.get("cancel_at_period_end")),
        trial_end=state.get("trial_end"),
        grace_until=state.get("grace_until") if status == "past_due" else None,
        source=source,
        pending_tier=pending,
        comp_until=state.get("comp_until") if source == "comp" else None,
    )


def get_entitlements(*, user, prefetched: dict | None = None) -> Entitlements:
    """What the user may do now: at most one query (none when cached), no Stripe call. Uses only `user.id`.

    `prefetched`: what a caller's own `cache.get_many` returned for entitlements_cache_keys among its
    keys, so a hot path reads its cache and the entitlements in one round trip.
    """
    return entitlements_from_state(_cached_state(user.id, prefetched))


def require_feature(*, user, feature: str, prefetched: dict | None = None) -> Entitlements:
    """The user's entitlements; 403 `feature_not_available` when their tier lacks `feature`."""
    entitlements = get_entitlements(user=user, prefetched=prefetched)
    if feature not in entitlements.features:
        title = TIERS[entitlements.tier].title
        raise FeatureNotAvailable(
            f"Your {title} plan does not include {FEATURE_TITLES[feature].lower()}: upgrade to use it.",
            details={"feature": feature, "tier": entitlements.tier},
        )
    return entitlements


def entitlements_cache_keys(*, user_id) -> list[str]:
    """The cache keys get_entitlements reads (see its `prefetched`)."""
    return [ACCOUNT_CACHE_KEY.format(user_id=user_id)]


def has_live_subscription(state: dict) -> bool:
    return bool(state.get("stripe_subscription_id")) and state.get("status") in LIVE_STATUSES


# --- Plans ---------------------------------------------------------------------------------------


def _tier_of(price) -> str | None:
    tier = (price.metadata or {}).get("chatfocus_tier") or (price.product.metadata or {}).get("chatfocus_tier")
    return tier if tier in PAID_TIERS else None


def _sellable_prices():
    """Active recurring prices of active products tagged with a paid tier, in this server's Stripe mode."""
    from djstripe.models import Price

    prices = (
        Price.objects.filter(active=True, product__active=True, livemode=settings.STRIPE_LIVE_MODE)
        .select_related("product")
        .order_by("-created")
    )
    return [price for price in prices if _tier_of(price) and (price.recurring or {}).get("interval") in INTERVALS]


def find_price_id(*, tier: str, interval: str) -> str | None:
    """The Stripe price sold for this tier and interval (its lookup key wins, else the newest)."""
    candidates = [p for p in _sellable_prices() if _tier_of(p) == tier and p.recurring["interval"] == interval]
    candidates.sort(key=lambda p: p.lookup_key != f"chatfocus_{tier}_{interval}")
    return candidates[0].id if candidates else None


def list_plans(*, billing_configured: bool) -> list[dict]:
    """Every tier with its limits and features; prices only when Stripe is configured."""
    prices_by_tier: dict[str, list[dict]] = {name: [] for name in TIERS}
    if billing_configured:
        seen = set()
        for price in _sellable_prices():
            tier, interval = _tier_of(price), price.recurring["interval"]
            if (tier, interval) in seen:
                continue
            seen.add((tier, interval))
            prices_by_tier[tier].append(
                {
                    "id": price.id,
                    "interval": interval,
                    "unit_amount": price.unit_amount,
                    "currency": price.currency,
                }
            )
    return [
        {
            "tier": tier.name,
            "title": tier.title,
            "limits": tier.limits,
            "features": list(tier.features),
            "prices": sorted(prices_by_tier[tier.name], key=lambda p: INTERVALS.index(p["interval"])),
        }
        for tier in TIERS.values()
    ]


def count_paid_conversions_by_day(*, start: datetime, end: datetime) -> dict[date, int]:
    """Stripe subscriptions started per UTC day in [start, end), unfinished checkouts excluded."""
    rows = (
        Subscription.objects.filter(created__gte=start, created__lt=end)
        .exclude(stripe_data__status__in=UNFINISHED_CHECKOUT_STATUSES)
        .annotate(day=TruncDate("created", tzinfo=UTC))
        .values("day")
        .annotate(count=Count("pk"))
        .order_by()
    )
    return {row["day"]: row["count"] for row in rows}


def filter_users_by_tier(users, *, tier: str):
    """`users` (a User queryset) narrowed to those whose recorded effective tier is `tier`.

    effective_tier is rewritten on every billing change and by the nightly expiry pass
    (record_expired_tiers), so a grace or comp period that ended today may show until then.
    """
    paid = BillingAccount.objects.exclude(effective_tier=FREE)
    if tier == FREE:
        return users.exclude(pk__in=paid.values("user_id"))
    return users.filter(pk__in=paid.filter(effective_tier=tier).values("user_id"))


# --- Invoices ------------------------------------------------------------------------------------


def list_invoices(*, user):
    """The user's finalized invoices from dj-stripe's mirror (no Stripe call), newest first.

    Every Stripe customer tied to the user counts: the current one and any earlier one (a customer
    deleted in Stripe is replaced on the next checkout, and its invoices stay the user's).
    """
    from djstripe.models import Invoice

    customer_ids = BillingAccount.objects.filter(user_id=user.id).exclude(stripe_customer_id="")
    return (
        Invoice.objects.filter(livemode=settings.STRIPE_LIVE_MODE)
        .filter(Q(customer__subscriber_id=user.id) | Q(customer_id__in=customer_ids.values("stripe_customer_id")))
        .exclude(stripe_data__status="draft")
        .order_by("-created", "-djstripe_id")
    )


def _timestamp(value) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if isinstance(value, int) else None


def invoice_summary(invoice) -> dict:
    """What a user sees of an invoice (DESIGN.md section 4), read from the mirrored Stripe object.

    The period is the service period of the invoice's lines: Stripe's own `period_start/end` on a
    subscription invoice name the period before (when usage was collected), not the one paid for.
    """
    data = invoice.stripe_data
    periods = [line.get("period") or {} for line in (data.get("lines") or {}).get("data") or []]
    starts = [period["start"] for period in periods if isinstance(period.get("start"), int)]
    ends = [period["end"] for period in periods if isinstance(period.get("end"), int)]
    return {
        "id": invoice.id,
        "number": data.get("number"),
        "status": data.get("status"),
        "amount_due": data.get("amount_due") or 0,
        "amount_paid": data.get("amount_paid") or 0,
        "currency": data.get("currency") or "",
        "created": invoice.created,
        "period_start": _timestamp(min(starts) if starts else data.get("period_start")),
        "period_end": _timestamp(max(ends) if ends else data.get("period_end")),
        "hosted_invoice_url": data.get("hosted_invoice_url"),
        "invoice_pdf": data.get("invoice_pdf"),
    }
