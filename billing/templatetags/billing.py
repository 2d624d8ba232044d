"""Template filters for billing pages."""

from decimal import Decimal

from django import template

from billing.tiers import FEATURE_TITLES

register = template.Library()

SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}
# Stripe amounts are in these currencies' whole units, in every other currency in hundredths.
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof"}


@register.filter
def money(cents, currency: str = "usd") -> str:
    """Stripe's amount (smallest unit) as `$12.00`, or `12.00 CHF` for a currency without a symbol here."""
    if cents is None:
        return ""
    currency = (currency or "").lower()
    places = 0 if currency in ZERO_DECIMAL else 2
    amount = Decimal(cents) / 10**places
    sign = "−" if amount < 0 else ""
    number = f"{abs(amount):,.{places}f}"
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {currency.upper()}"


@register.filter
def feature_title(feature: str) -> str:
    return FEATURE_TITLES.get(feature, feature)
