"""Billing verbs other apps call. Entitlements answer "what may this user do"."""

from dataclasses import dataclass

from billing.tiers import FREE, TIERS, Limits


@dataclass(frozen=True)
class Entitlements:
    tier: str
    status: str
    limits: Limits
    features: tuple[str, ...]


def get_entitlements(*, user) -> Entitlements:
    """The user's effective tier and limits (free until billing decides otherwise)."""
    tier = TIERS[FREE]
    return Entitlements(tier=tier.name, status="free", limits=tier.limits, features=tier.features)


def cancel_for_deleted_user(*, user) -> None:
    """Cancel whatever the user pays for before the account is deleted (no subscriptions yet)."""
