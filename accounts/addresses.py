"""The one canonical form of an email address (DESIGN §3).

Storage, uniqueness, lookups and rate-limit keys all use it, and lookups are exact matches on it:
the database's case folding differs from Python's (PostgreSQL's `upper('vıctim')` is `VICTIM`), so
an `iexact` lookup would let one account answer to spellings that count as different addresses.
"""

import unicodedata

# Invisible or control characters: an address carrying one looks exactly like another one.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


class InvalidAddress(ValueError):
    """An address that is never stored; the message is for the person who typed it."""


def canonical_email(value: str | None) -> str:
    """Unicode NFKC, trimmed, lowercased."""
    return unicodedata.normalize("NFKC", value or "").strip().lower()


def clean_email(value: str | None) -> str:
    """The canonical form of a typed address; InvalidAddress if it hides characters."""
    email = canonical_email(value)
    if any(unicodedata.category(char) in INVISIBLE_CATEGORIES or char.isspace() for char in email):
        raise InvalidAddress("This address contains invisible characters or spaces. Please type it again.")
    return email


def clean_new_email(value: str | None) -> str:
    """clean_email for an address an account is to use: the part before the @ must also be ASCII.

    Non-ASCII look-alikes of a taken address (`vıctim@` with a dotless ı next to `victim@`) would
    otherwise become a second account that shows the same address.
    """
    email = clean_email(value)
    if not email.rpartition("@")[0].isascii():
        raise InvalidAddress("Use an address with only plain Latin letters, digits and punctuation before the @.")
    return email
