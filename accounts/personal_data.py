"""What each app keeps about a user: registered once, collected for the export and for erasure.

Billing, sync and analytics register here from their AppConfig.ready, so accounts never imports
their services and the account export and deletion cover every app without knowing it. Each
registration names the models holding the user's rows; a test checks that every model with a user
foreign key (or `user_id` column) is covered, so a new table cannot be forgotten by either.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Accounts' own tables: exported by export_user_data, erased with the user row (cascades) by delete_account.
ACCOUNT_MODELS = (
    "accounts.User",
    "accounts.Preferences",
    "accounts.Session",
    "account.EmailAddress",
    "socialaccount.SocialAccount",
    "token_blacklist.OutstandingToken",
    "mfa.Authenticator",
    # Staff's own admin history: it goes with a deleted staff account; entries about a deleted user lose its email.
    "admin.LogEntry",
)

# Before anything local is erased: an external system (Stripe) that fails leaves the account whole.
FIRST = 0
DEFAULT_ORDER = 100


@dataclass(frozen=True)
class PersonalData:
    key: str
    title: str
    models: tuple[str, ...]
    export: Callable[..., Any]
    erase: Callable[..., None]
    describe: Callable[..., list[str]]
    order: int = DEFAULT_ORDER


_registry: dict[str, PersonalData] = {}


def register(
    key: str,
    *,
    title: str,
    models: tuple[str, ...],
    export: Callable[..., Any],
    erase: Callable[..., None],
    describe: Callable[..., list[str]],
    order: int = DEFAULT_ORDER,
) -> None:
    """Add an app's section: `export(user=)` → its JSON, `erase(user=)`, `describe(user=)` → lines for staff.

    `key` is the section's name in the export, `title` its heading for staff. Registering a key again
    replaces it (ready() may run twice).
    """
    _registry[key] = PersonalData(key, title, tuple(models), export, erase, describe, order)


def registered() -> list[PersonalData]:
    """Every app's section, in erasure order."""
    return sorted(_registry.values(), key=lambda section: (section.order, section.key))


def covered_models() -> set[str]:
    """Labels of every model whose user rows are exported and erased."""
    return set(ACCOUNT_MODELS).union(*(section.models for section in _registry.values()))
