"""Arrange helpers for billing tests: a user subscribed through the real checkout path, signed deliveries."""

from billing.services import start_checkout, sync_checkout_session
from billing.tests.stripe_fake import deliver
from conftest import STRIPE_TEST_WEBHOOK_SECRET


def subscribe(fake, user, tier="pro", interval="month", *, trial_days=0) -> str:
    """Checkout and pay in the fake, then sync as the success page does; the Stripe subscription id."""
    url = start_checkout(user=user, tier=tier, interval=interval)
    session = fake.complete_checkout(url.rsplit("/", 1)[1], trial_days=trial_days)
    sync_checkout_session(user=user, session_id=session["id"])
    return session["subscription"]


def send(api_client, event, **kwargs):
    return deliver(api_client, event, secret=STRIPE_TEST_WEBHOOK_SECRET, **kwargs)
