"""A webhook storm: 50 Stripe events for several customers, each delivered twice, concurrently, in random order.

Real threads, each with its own client and PostgreSQL connection, post signed deliveries to the
webhook. Handlers read Stripe's current state from the fake, so whatever the order, every event
is processed exactly once and every account ends in the state Stripe has.
"""

import queue
import random
import threading
import time

import pytest
from django.core import mail
from django.db import connection
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from billing.models import BillingAccount, WebhookEvent
from billing.selectors import get_entitlements
from billing.services import start_checkout
from billing.tests.helpers import send

THREADS = 8


class Customer:
    """One user going through Stripe; `events` collects the webhook events Stripe would send for it."""

    def __init__(self, fake, tier, interval="month", *, trial_days=0):
        self.fake, self.user = fake, UserFactory()
        url = start_checkout(user=self.user, tier=tier, interval=interval)
        self.session = fake.complete_checkout(url.rsplit("/", 1)[1], trial_days=trial_days)
        self.subscription_id = self.session["subscription"]
        self.customer_id = self.session["customer"]
        self.events = [
            fake.event("customer.created", fake._public(fake.objects[self.customer_id])),
            fake.event("checkout.session.completed", self.session),
        ]
        self.subscription_event("customer.subscription.created")

    @property
    def subscription(self) -> dict:
        return self.fake.objects[self.subscription_id]

    def subscription_event(self, type):
        self.events.append(event := self.fake.event(type, self.subscription))
        return event

    def invoice_event(self, type, *, paid):
        invoice = self.fake.create_invoice(self.subscription_id, paid=paid)
        self.events.append(event := self.fake.event(type, invoice))
        return event


def build_histories(fake, prices) -> dict[str, Customer]:
    """Eight customers with the usual lives of a subscription; the fake ends in each one's final state."""
    customers = {}

    paying = customers["paying"] = Customer(fake, "pro")
    paying.invoice_event("invoice.paid", paid=True)

    upgraded = customers["upgraded"] = Customer(fake, "pro")
    upgraded.invoice_event("invoice.paid", paid=True)
    item_id = upgraded.subscription["items"]["data"][0]["id"]
    fake._modify_subscription(
        {"items": [{"id": item_id, "price": prices[("premium", "month")]}]}, upgraded.subscription_id
    )
    upgraded.subscription_event("customer.subscription.updated")
    upgraded.invoice_event("invoice.paid", paid=True)

    dunning = customers["dunning"] = Customer(fake, "premium", "year")
    fake.set_status(dunning.subscription_id, "past_due")
    dunning.invoice_event("invoice.payment_failed", paid=False)
    dunning.subscription_event("customer.subscription.updated")
    dunning.invoice_event("invoice.payment_action_required", paid=False)

    leaving = customers["leaving"] = Customer(fake, "pro")
    leaving.invoice_event("invoice.paid", paid=True)
    fake._modify_subscription({"cancel_at_period_end": "true"}, leaving.subscription_id)
    leaving.subscription_event("customer.subscription.updated")

    gone = customers["gone"] = Customer(fake, "pro")
    gone.invoice_event("invoice.paid", paid=True)
    fake._modify_subscription({"cancel_at_period_end": "true"}, gone.subscription_id)
    gone.subscription_event("customer.subscription.updated")
    fake._cancel_subscription({}, gone.subscription_id)
    gone.subscription_event("customer.subscription.deleted")

    trial = customers["trial"] = Customer(fake, "pro", trial_days=14)
    trial.subscription_event("customer.subscription.trial_will_end")

    # Deleting a customer in Stripe cancels its subscriptions first.
    deleted = customers["deleted"] = Customer(fake, "premium")
    deleted.invoice_event("invoice.paid", paid=True)
    fake._cancel_subscription({}, deleted.subscription_id)
    deleted.subscription_event("customer.subscription.deleted")
    snapshot = fake._public(fake.objects[deleted.customer_id])
    fake._delete_customer({}, deleted.customer_id)
    deleted.events.append(fake.event("customer.deleted", snapshot))

    recovered = customers["recovered"] = Customer(fake, "pro", "year")
    fake.set_status(recovered.subscription_id, "past_due")
    recovered.invoice_event("invoice.payment_failed", paid=False)
    recovered.subscription_event("customer.subscription.updated")
    fake.set_status(recovered.subscription_id, "active")
    recovered.invoice_event("invoice.paid", paid=True)
    recovered.subscription_event("customer.subscription.updated")

    # Events we leave to dj-stripe's mirror (no rule of ours): a profile change, finalized invoices.
    for customer in (paying, upgraded, trial):
        customer.events.append(fake.event("customer.updated", fake._public(fake.objects[customer.customer_id])))
    for customer in (paying, leaving, recovered):
        customer.invoice_event("invoice.finalized", paid=False)
    return customers


def deliver_all(deliveries: list[dict]) -> list[tuple[str, int, str]]:
    """Post every delivery from THREADS threads at once: [(event id, status, outcome)]."""
    pending: queue.SimpleQueue = queue.SimpleQueue()
    for event in deliveries:
        pending.put(event)
    barrier, results, errors = threading.Barrier(THREADS), [], []

    def worker():
        client = APIClient()
        try:
            barrier.wait(10)
            while True:
                try:
                    event = pending.get_nowait()
                except queue.Empty:
                    return
                response = send(client, event)
                results.append((event["id"], response.status_code, response.json().get("outcome")))
        except BaseException as error:  # reported to the test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a delivery hung"
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_fifty_events_each_delivered_twice_concurrently_in_random_order_are_processed_once(stripe_fake, stripe_prices):
    customers = build_histories(stripe_fake, stripe_prices)
    events = [event for customer in customers.values() for event in customer.events]
    assert len(events) == 50
    seed = time.time_ns()
    deliveries = events * 2
    random.Random(seed).shuffle(deliveries)
    mail.outbox.clear()

    results = deliver_all(deliveries)

    context = f"shuffle seed {seed}"
    assert all(status == 200 for _, status, _ in results), (context, results)
    outcomes = {}
    for event_id, _, outcome in results:
        outcomes.setdefault(event_id, []).append(outcome)
    for event in events:
        first, second = sorted(outcomes[event["id"]])
        assert (first, second) in {("duplicate", "processed"), ("duplicate", "ignored")}, (context, event["type"])
    stored = {row.id: row for row in WebhookEvent.objects.all()}
    assert len(stored) == 50
    assert {(row.status, row.attempts) for row in stored.values()} <= {("processed", 1), ("ignored", 1)}, context

    from djstripe.models import Event

    # dj-stripe mirrored each event once, except the deleted customer's checkout: its customer is gone.
    late_checkout = customers["deleted"].events[1]["id"]
    assert sorted(Event.objects.values_list("id", flat=True)) == sorted(
        e["id"] for e in events if e["id"] != late_checkout
    )

    def state(name):
        entitlements = get_entitlements(user=customers[name].user)
        return entitlements.tier, entitlements.status, entitlements.cancel_at_period_end

    assert state("paying") == ("pro", "active", False), context
    assert state("upgraded") == ("premium", "active", False), context
    assert state("dunning") == ("premium", "past_due", False), context
    assert get_entitlements(user=customers["dunning"].user).grace_until is not None
    assert state("leaving") == ("pro", "active", True), context
    assert state("gone") == ("free", "canceled", True), context
    assert state("trial") == ("pro", "trialing", False), context
    assert state("deleted")[0] == "free", context
    assert BillingAccount.objects.get(user=customers["deleted"].user).stripe_customer_id == "", context
    assert start_checkout(user=customers["deleted"].user, tier="pro", interval="month")  # a new customer
    assert state("recovered") == ("pro", "active", False), context
    assert get_entitlements(user=customers["recovered"].user).grace_until is None

    # One email per event that sends one: two failed payments, one action required, one trial ending.
    subjects = sorted(message.subject for message in mail.outbox)
    assert len([s for s in subjects if "didn't go through" in s]) == 2, (context, subjects)
    assert len([s for s in subjects if "confirm" in s]) == 1, (context, subjects)
    assert len([s for s in subjects if "trial ends soon" in s]) == 1, (context, subjects)


# --- What the storm found, in order -------------------------------------------------------------


def delete_customer_in_stripe(fake, customer: Customer) -> dict:
    """As Stripe does: the customer's subscriptions end, then the customer goes; the customer.deleted event."""
    fake._cancel_subscription({}, customer.subscription_id)
    snapshot = fake._public(fake.objects[customer.customer_id])
    fake._delete_customer({}, customer.customer_id)
    return fake.event("customer.deleted", snapshot)


@pytest.mark.django_db
def test_checkout_completed_arriving_after_its_customer_was_deleted_is_processed_not_failed(
    api_client, stripe_fake, stripe_prices
):
    customer = Customer(stripe_fake, "pro")
    late_checkout = customer.events[1]
    assert send(api_client, delete_customer_in_stripe(stripe_fake, customer)).status_code == 200
    # dj-stripe's mirror writes metadata back to the (deleted) customer: every redelivery used to 500.
    response = send(api_client, late_checkout)
    assert (response.status_code, response.json().get("outcome")) == (200, "processed")
    assert get_entitlements(user=customer.user).tier == "free"


@pytest.mark.django_db
def test_late_subscription_event_of_a_deleted_customer_does_not_link_it_again(api_client, stripe_fake, stripe_prices):
    customer = Customer(stripe_fake, "pro")
    send(api_client, customer.events[2])  # customer.subscription.created
    assert send(api_client, delete_customer_in_stripe(stripe_fake, customer)).status_code == 200
    send(api_client, stripe_fake.event("customer.subscription.deleted", customer.subscription))
    account = BillingAccount.objects.get(user=customer.user)
    assert (account.stripe_customer_id, get_entitlements(user=customer.user).tier) == ("", "free")
    # The next checkout makes a new customer instead of failing on the deleted one.
    assert start_checkout(user=customer.user, tier="pro", interval="month")
    assert BillingAccount.objects.get(user=customer.user).stripe_customer_id not in ("", customer.customer_id)
