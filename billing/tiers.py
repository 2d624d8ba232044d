"""The tier table: limits and features per plan (DESIGN.md section 4). Plain data, no queries."""

from dataclasses import dataclass, field

KB = 1024
MB = 1024 * KB

FREE, PRO, PREMIUM = "free", "pro", "premium"
TIER_ORDER = (FREE, PRO, PREMIUM)

# A tier lists a feature only when the server provides or enforces it (DESIGN.md section 4): history and
# snapshots are refused to a tier without them, secret keys on write, priority support is shown to staff
# in the admin, and sync is what every tier is for. Encryption is never a paid extra.
SYNC, HISTORY, SNAPSHOTS, SECRET_KEYS = "sync", "history", "snapshots", "secret_keys"
PRIORITY_SUPPORT = "priority_support"
FEATURE_TITLES = {
    SYNC: "Settings sync across devices",
    HISTORY: "Change history",
    SNAPSHOTS: "Snapshots you can restore",
    SECRET_KEYS: "Encrypted secret settings",
    PRIORITY_SUPPORT: "Priority support",
}
EVERY_TIER = (SYNC, HISTORY, SNAPSHOTS, SECRET_KEYS)


@dataclass(frozen=True)
class Limits:
    sync_bytes: int
    value_bytes: int
    keys: int
    devices: int
    history_days: int
    snapshots: int


@dataclass(frozen=True)
class Tier:
    name: str
    title: str
    limits: Limits
    features: tuple[str, ...] = field(default_factory=tuple)


TIERS = {
    FREE: Tier(
        FREE,
        "Free",
        Limits(sync_bytes=256 * KB, value_bytes=16 * KB, keys=1_000, devices=3, history_days=7, snapshots=3),
        EVERY_TIER,
    ),
    PRO: Tier(
        PRO,
        "Pro",
        Limits(sync_bytes=5 * MB, value_bytes=64 * KB, keys=10_000, devices=10, history_days=90, snapshots=30),
        EVERY_TIER,
    ),
    PREMIUM: Tier(
        PREMIUM,
        "Premium",
        Limits(sync_bytes=25 * MB, value_bytes=192 * KB, keys=50_000, devices=50, history_days=365, snapshots=100),
        (*EVERY_TIER, PRIORITY_SUPPORT),
    ),
}


def tier_rank(name: str) -> int:
    return TIER_ORDER.index(name)


# What `billing_bootstrap_stripe` creates in a fresh Stripe account (amounts in cents); prices then
# live in Stripe and are mirrored by dj-stripe.
BOOTSTRAP_CURRENCY = "usd"
BOOTSTRAP_PRICES = {
    (PRO, "month"): 500,
    (PRO, "year"): 5000,
    (PREMIUM, "month"): 1200,
    (PREMIUM, "year"): 12000,
}
