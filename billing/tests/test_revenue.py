"""Admin → Billing → Revenue against a hand-computed fixture of subscriptions (dj-stripe mirror + tier audit log).

Catalogue: Pro $5/month or $50/year, Premium $12/month or $120/year. The report is taken on 2026-12-15.

| user | what happens                                                        | MRR at month ends ($)           |
|------|---------------------------------------------------------------------|---------------------------------|
| C    | Premium monthly from Jan 15, downgraded to Pro from Aug 15          | 12 Jan–Jul, 5 from Aug          |
| B    | Pro monthly from Feb 5, upgraded to Premium on Jun 20               | 5 Feb–May, 12 from Jun          |
| A    | Pro monthly from Mar 10 (a staff comp to Premium on Nov 1: no money)| 5 from Mar                      |
| D    | Pro monthly Apr 1, cancelled, ended Sep 1; back on Pro from Nov 10  | 5 Apr–Aug, 0 Sep–Oct, 5 Nov–Dec |
| E    | Premium yearly from May 20 ($120 / 12)                              | 10 from May                     |
| H    | Pro monthly from Oct 1, past due now with $5 open                   | 5 from Oct                      |
| F    | Pro trial Nov 20 → Dec 4, then paying                               | 5 in Dec                        |
| I    | Pro trial from Dec 10, still running                                | 0                               |
| J    | Pro trial Oct 1 → Oct 15, cancelled at its end                      | 0                               |
| K, L | only a comp grant; an incomplete_expired checkout                   | 0                               |
"""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.urls import reverse
from djstripe.models import Customer, Invoice, Subscription

from accounts.tests.factories import UserFactory
from billing.models import TierChange
from billing.revenue import build_revenue_report

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)
MONTHS = [f"2026-{month:02d}" for month in range(1, 13)]
AMOUNTS = {("pro", "month"): 500, ("pro", "year"): 5000, ("premium", "month"): 1200, ("premium", "year"): 12000}


def day(month: int, day: int) -> datetime:
    return datetime(2026, month, day, tzinfo=UTC)


def ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


class Mirror:
    """Rows as dj-stripe mirrors them, and the audit log as our services write it, at chosen times."""

    def __init__(self, prices):
        self.prices = prices
        self.count = 0

    def subscription(self, user, tier, interval, *, start, status="active", trial_end=None, ended=None):
        self.count += 1
        customer, _ = Customer.objects.get_or_create(
            id=f"cus_rev{user.email[0]}", defaults={"livemode": False, "subscriber": user, "stripe_data": {}}
        )
        subscription_id = f"sub_rev{self.count:03d}"
        Subscription.objects.create(
            id=subscription_id,
            customer=customer,
            livemode=False,
            created=start,
            stripe_data={
                "id": subscription_id,
                "object": "subscription",
                "status": status,
                "start_date": ts(start),
                "trial_start": ts(start) if trial_end else None,
                "trial_end": ts(trial_end),
                "ended_at": ts(ended),
                "canceled_at": ts(ended),
                "currency": "usd",
                "metadata": {},
                "items": {
                    "data": [
                        {
                            "id": f"si_rev{self.count:03d}",
                            "quantity": 1,
                            "current_period_start": ts(start),
                            "price": {
                                "id": self.prices[(tier, interval)],
                                "unit_amount": AMOUNTS[(tier, interval)],
                                "currency": "usd",
                                "recurring": {"interval": interval, "interval_count": 1},
                                "metadata": {"chatfocus_tier": tier},
                            },
                        }
                    ]
                },
            },
        )
        return subscription_id

    def tier(self, user, from_tier, to_tier, at, source=TierChange.Source.WEBHOOK):
        change = TierChange.objects.create(user=user, from_tier=from_tier, to_tier=to_tier, source=source)
        TierChange.objects.filter(pk=change.pk).update(created_at=at)


@pytest.fixture
def revenue_fixture(stripe_prices):
    mirror = Mirror(stripe_prices)
    users = {name: UserFactory(email=f"{name.lower()}@revenue.test") for name in "ABCDEFHIJKL"}
    a, b, c, d, e, f, h, i, j, k, lost = (users[name] for name in "ABCDEFHIJKL")

    mirror.subscription(c, "pro", "month", start=day(1, 15))
    mirror.tier(c, "free", "premium", day(1, 15))
    mirror.tier(c, "premium", "pro", day(8, 15), TierChange.Source.EXPIRY)

    mirror.subscription(b, "premium", "month", start=day(2, 5))
    mirror.tier(b, "free", "pro", day(2, 5))
    mirror.tier(b, "pro", "premium", day(6, 20), TierChange.Source.API)

    mirror.subscription(a, "pro", "month", start=day(3, 10))
    mirror.tier(a, "free", "pro", day(3, 10))
    mirror.tier(a, "pro", "premium", day(11, 1), TierChange.Source.ADMIN)

    mirror.subscription(d, "pro", "month", start=day(4, 1), status="canceled", ended=day(9, 1))
    mirror.tier(d, "free", "pro", day(4, 1))
    mirror.tier(d, "pro", "free", day(9, 1))
    mirror.subscription(d, "pro", "month", start=day(11, 10))
    mirror.tier(d, "free", "pro", day(11, 10))

    mirror.subscription(e, "premium", "year", start=day(5, 20))
    mirror.tier(e, "free", "premium", day(5, 20))

    past_due = mirror.subscription(h, "pro", "month", start=day(10, 1), status="past_due")
    mirror.tier(h, "free", "pro", day(10, 1))
    Invoice.objects.create(
        id="in_revopen",
        customer=Customer.objects.get(subscriber=h),
        livemode=False,
        created=day(12, 1),
        stripe_data={
            "status": "open",
            "amount_remaining": 500,
            "parent": {"subscription_details": {"subscription": past_due}},
        },
    )

    mirror.subscription(f, "pro", "month", start=day(11, 20), trial_end=day(12, 4))
    mirror.tier(f, "free", "pro", day(11, 20))
    mirror.subscription(i, "pro", "month", start=day(12, 10), status="trialing", trial_end=day(12, 24))
    mirror.tier(i, "free", "pro", day(12, 10))
    mirror.subscription(
        j, "pro", "month", start=day(10, 1), status="canceled", trial_end=day(10, 15), ended=day(10, 15)
    )
    mirror.tier(j, "free", "pro", day(10, 1))
    mirror.tier(j, "pro", "free", day(10, 15))

    mirror.tier(k, "free", "premium", day(6, 1), TierChange.Source.ADMIN)
    mirror.subscription(lost, "premium", "month", start=day(7, 1), status="incomplete_expired")
    return users


def dollars(*values) -> list[Decimal]:
    return [Decimal(value).quantize(Decimal("0.01")) for value in values]


def test_revenue_figures_match_the_hand_computed_fixture(revenue_fixture):
    report = build_revenue_report(now=NOW)
    assert report.currency == "usd"
    assert report.months == MONTHS
    assert report.mrr == dollars(12, 17, 22, 27, 37, 44, 44, 37, 32, 37, 42, 47)
    assert report.mrr_now == Decimal("47.00")
    assert report.movements == {
        "new": dollars(12, 5, 5, 5, 10, 0, 0, 0, 0, 5, 0, 5),
        "expansion": dollars(0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0),
        "reactivation": dollars(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0),
        "contraction": dollars(0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0),
        "churn": dollars(0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0),
    }
    assert report.subscribers == [
        {"tier": "pro", "interval": "month", "subscribers": 5, "mrr": Decimal("25.00")},
        {"tier": "premium", "interval": "month", "subscribers": 1, "mrr": Decimal("12.00")},
        {"tier": "premium", "interval": "year", "subscribers": 1, "mrr": Decimal("10.00")},
    ]
    assert report.trials == {"running": 1, "ended": 2, "converted": 1, "conversion_rate": 50.0}
    by_month = {row["month"]: (row["started"], row["ended"], row["converted"]) for row in report.trials_by_month}
    assert (by_month["2026-10"], by_month["2026-11"], by_month["2026-12"]) == ((1, 1, 0), (1, 0, 0), (1, 1, 1))
    assert report.past_due == {"count": 1, "amount": Decimal("5.00")}


def test_staff_with_the_permission_see_the_revenue_page_with_charts_and_tables(client, revenue_fixture):
    staff = UserFactory(email="finance@chatfocus.test", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_revenue"))
    client.force_login(staff)
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("admin:billing_revenue_changelist"))
        index = client.get(reverse("admin:index")).content.decode()
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="mrr-now">47.00 USD' in page
    assert 'id="past-due">1 · 5.00 USD' in page
    assert [chart["id"] for chart in response.context["charts"]] == ["mrr", "movements", "subscribers", "trials"]
    assert all("pygal-chart" in chart["svg"] and "<script" not in chart["svg"] for chart in response.context["charts"])
    assert "<td>2026-06</td><td>0.00</td><td>7.00</td>" in page
    assert reverse("admin:billing_revenue_changelist") in index


def test_revenue_is_refused_to_staff_without_the_permission_and_to_users(client):
    url = reverse("admin:billing_revenue_changelist")
    client.force_login(UserFactory(is_staff=True))
    assert client.get(url).status_code == 403
    client.force_login(UserFactory())
    response = client.get(url)
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_revenue_page_renders_its_charts_in_chromium(browser_page, client, live_server, revenue_fixture):
    staff = UserFactory(email="charts@chatfocus.test", is_staff=True, is_superuser=True)
    client.force_login(staff)
    page = browser_page
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    with time_machine.travel(NOW, tick=True):
        page.goto(reverse("admin:billing_revenue_changelist"))
        page.wait_for_load_state("load")
    assert page.title().startswith("Revenue")
    assert page.locator("section.cf-chart svg.pygal-chart").count() == 4
    box = page.locator("#mrr svg").bounding_box()
    assert box["width"] > 300 and box["height"] > 100
    assert page.locator("#mrr-now").inner_text() == "47.00 USD"
    page.locator("#movements summary").click()
    assert page.locator("#movements tbody tr").nth(7).inner_text().split() == [
        "2026-08",
        "0.00",
        "0.00",
        "0.00",
        "-7.00",
        "0.00",
        "-7.00",
    ]
