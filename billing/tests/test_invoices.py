"""GET /api/subscriptions/invoices: the user's invoices from dj-stripe's mirror, newest first, cursor pages."""

import time
from datetime import UTC, datetime

import pytest
import time_machine
from djstripe.models import Invoice

from billing.selectors import invoice_summary
from billing.tests.helpers import send, subscribe

pytestmark = pytest.mark.django_db

DAY = 86_400


def invoice_paid_days_ago(api_client, fake, subscription_id, days: int) -> dict:
    """An invoice Stripe finalized and paid `days` ago, delivered to our webhook then (so mirrored)."""
    with time_machine.travel(time.time() - days * DAY, tick=False):
        invoice = fake.create_invoice(subscription_id, paid=True)
        assert send(api_client, fake.event("invoice.paid", invoice)).status_code == 200
    return invoice


def test_invoices_are_the_users_own_newest_first_in_cursor_pages(api_client, auth_client, stripe_fake, stripe_prices):
    client, other = auth_client(), auth_client()
    subscription_id = subscribe(stripe_fake, client.user)
    other_subscription_id = subscribe(stripe_fake, other.user, "premium")
    oldest, middle, newest = (
        invoice_paid_days_ago(api_client, stripe_fake, subscription_id, days) for days in (60, 30, 1)
    )
    others = invoice_paid_days_ago(api_client, stripe_fake, other_subscription_id, 2)
    calls_before = len(stripe_fake.requests)

    first = client.get("/api/subscriptions/invoices", {"limit": 2})
    assert first.status_code == 200
    body = first.json()
    assert [invoice["id"] for invoice in body["results"]] == [newest["id"], middle["id"]]
    assert body["next"] and body["previous"] is None
    second = client.get(body["next"]).json()
    assert [invoice["id"] for invoice in second["results"]] == [oldest["id"]]
    assert second["next"] is None

    shown = body["results"][0]
    assert shown == {
        "id": newest["id"],
        "number": newest["number"],
        "status": "paid",
        "amount_due": 500,
        "amount_paid": 500,
        "currency": "usd",
        "created": shown["created"],
        "period_start": shown["period_start"],
        "period_end": shown["period_end"],
        "hosted_invoice_url": newest["hosted_invoice_url"],
        "invoice_pdf": newest["invoice_pdf"],
    }
    assert datetime.fromisoformat(shown["created"]) == datetime.fromtimestamp(newest["created"], tz=UTC)
    assert [invoice["id"] for invoice in other.get("/api/subscriptions/invoices").json()["results"]] == [others["id"]]
    assert len(stripe_fake.requests) == calls_before, "the list is read from the mirror, never from Stripe"


def test_a_user_without_billing_has_no_invoices_and_needs_to_log_in(api_client, auth_client, settings):
    settings.STRIPE_SECRET_KEY = ""
    assert auth_client().get("/api/subscriptions/invoices").json() == {"next": None, "previous": None, "results": []}
    assert api_client.get("/api/subscriptions/invoices").status_code == 401


def test_an_invoice_cursor_the_server_did_not_hand_out_is_a_400(auth_client):
    offset_not_a_number = "bz14"  # base64 of "o=x"
    response = auth_client().get("/api/subscriptions/invoices", {"cursor": offset_not_a_number})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["cursor"]


def test_an_invoice_shows_the_service_period_of_its_lines():
    # Stripe's period_start/period_end of a renewal invoice name the period before it, not the one billed.
    invoice = Invoice(
        id="in_lines",
        created=datetime(2026, 3, 1, tzinfo=UTC),
        stripe_data={
            "status": "paid",
            "period_start": 1_767_225_600,
            "period_end": 1_767_225_600,
            "lines": {"data": [{"period": {"start": 1_772_323_200, "end": 1_775_001_600}}]},
        },
    )
    summary = invoice_summary(invoice)
    assert (summary["period_start"], summary["period_end"]) == (
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
    )


def test_invoice_pages_hold_at_most_200(auth_client):
    from djstripe.models import Customer

    client = auth_client()
    customer = Customer.objects.create(id="cus_many", livemode=False, subscriber=client.user, stripe_data={})
    Invoice.objects.bulk_create(
        Invoice(
            id=f"in_many{n:04d}",
            customer=customer,
            livemode=False,
            created=datetime.fromtimestamp(1_780_000_000 + n * DAY, tz=UTC),
            stripe_data={"status": "paid", "amount_due": 500, "amount_paid": 500, "currency": "usd"},
        )
        for n in range(201)
    )
    assert len(client.get("/api/subscriptions/invoices").json()["results"]) == 50
    page = client.get("/api/subscriptions/invoices", {"limit": 500}).json()
    assert len(page["results"]) == 200 and page["next"]
    assert page["results"][0]["id"] == "in_many0200"
