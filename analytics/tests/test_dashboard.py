from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from djstripe.models import Customer, Subscription

from accounts.tests.factories import UserFactory
from analytics.models import DailyActiveUsers, DailyEventRollup, DailyMetricRollup

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def dashboard_url():
    return reverse("admin:analytics_dashboard_changelist")


@pytest.fixture
def staff_user():
    return UserFactory(is_staff=True)


@pytest.fixture
def rolled_up_data():
    today = timezone.now().date()
    yesterday = today - timedelta(days=1)
    DailyActiveUsers.objects.create(day=yesterday, dau=17, wau=41, mau=123)
    for tier, count in (("free", 250), ("pro", 75)):
        DailyEventRollup.objects.create(
            day=yesterday, name="filter_used", tier=tier, client_version="1.4.2", count=count, unique_users=9
        )
    DailyEventRollup.objects.create(
        day=yesterday, name="popup_open_ms", tier="free", client_version="1.4.2", count=999, unique_users=9
    )
    DailyMetricRollup.objects.create(day=yesterday, name="popup_open_ms", count=999, p50=120.5, p95=480.0, p99=910.0)
    UserFactory.create_batch(2)
    now = timezone.now()
    customer = Customer.objects.create(id="cus_test", stripe_data={})
    for number, status in enumerate(["active", "trialing", "incomplete"]):
        Subscription.objects.create(
            id=f"sub_test_{number}", customer=customer, created=now, stripe_data={"status": status}
        )
    return yesterday


def chart(response, chart_id):
    return next(chart for chart in response.context["charts"] if chart["id"] == chart_id)


@pytest.mark.django_db
def test_staff_sees_the_dashboard_with_chart_data(client, staff_user, rolled_up_data, dashboard_url):
    client.force_login(staff_user)
    response = client.get(dashboard_url)
    assert response.status_code == 200
    day = rolled_up_data.isoformat()
    today = timezone.now().date().isoformat()
    assert [day, 17, 41, 123] in chart(response, "active-users")["table"]["rows"]
    features = chart(response, "features")["table"]
    assert features == {"columns": ["event", "free", "pro"], "rows": [["filter_used", 250, 75]]}
    assert [day, 120.5, 480.0, 910.0] in chart(response, "metric-popup_open_ms")["table"]["rows"]
    # Two signups and two started subscriptions today (staff_user included; the unfinished checkout is not).
    assert [today, 3, 2] in chart(response, "signups")["table"]["rows"]
    body = response.content.decode()
    assert body.count('class="pygal-chart"') == 4
    assert all(
        "<script" not in chart["svg"] and 'xlink:href="http' not in chart["svg"] for chart in response.context["charts"]
    )
    assert len(chart(response, "active-users")["table"]["rows"]) == 30


@pytest.mark.django_db
@pytest.mark.parametrize(("days", "rows"), [("7", 7), ("90", 90), ("1000", 30), ("x", 30)])
def test_dashboard_range_is_one_of_the_offered_ones(client, staff_user, dashboard_url, days, rows):
    client.force_login(staff_user)
    response = client.get(dashboard_url, {"days": days})
    assert len(chart(response, "active-users")["table"]["rows"]) == rows


@pytest.mark.django_db
def test_non_staff_is_sent_to_the_admin_login(client, user, dashboard_url):
    client.force_login(user)
    response = client.get(dashboard_url)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.django_db
def test_anonymous_is_sent_to_the_admin_login(client, dashboard_url):
    response = client.get(dashboard_url)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.django_db
def test_dashboard_is_listed_on_the_admin_index_for_staff(client, staff_user, dashboard_url):
    client.force_login(staff_user)
    assert dashboard_url in client.get(reverse("admin:index")).content.decode()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_dashboard_renders_in_chromium_without_console_errors(
    browser_page, client, live_server, staff_user, rolled_up_data, dashboard_url
):
    client.force_login(staff_user)
    page = browser_page
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page.goto(dashboard_url)
    page.wait_for_load_state("load")
    assert page.title().startswith("Analytics dashboard")
    assert page.locator("section.cf-chart svg.pygal-chart").count() == 4
    box = page.locator("#active-users svg").bounding_box()
    assert box["width"] > 300 and box["height"] > 100
    external = page.evaluate(
        "() => performance.getEntriesByType('resource').map(e => e.name).filter(u => !u.startsWith(location.origin))"
    )
    assert external == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "analytics-dashboard.png", full_page=True)
