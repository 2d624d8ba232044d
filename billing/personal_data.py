"""Billing's section of the account export and erasure (accounts.personal_data), erased first: it calls Stripe."""

from accounts import personal_data
from billing import services


def register() -> None:
    personal_data.register(
        "billing",
        title="Billing",
        models=services.PERSONAL_DATA_MODELS,
        export=services.export_billing_data,
        erase=services.erase_billing_data,
        describe=services.describe_billing_erasure,
        order=personal_data.FIRST,
    )
