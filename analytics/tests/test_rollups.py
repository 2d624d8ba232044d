import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from analytics import services
from analytics.models import DailyActiveUsers, DailyEventRollup, DailyMetricRollup, Event
from analytics.services import prune_expired_events, rollup_day
from analytics.tasks import prune_expired_events_task, rollup_recent_days_task
from analytics.tests.factories import EventFactory

DAY = date(2026, 3, 10)
MIDDAY = datetime(2026, 3, 10, 12, tzinfo=UTC)


@pytest.fixture
def fixed_data_set():
    """Three active users on DAY, others around it to pin the DAU/WAU/MAU windows."""
    u1, u2, u3, u4, u5, u6, u7, u8, u9 = (uuid.uuid4() for _ in range(9))
    for _ in range(3):
        EventFactory(user_id=u1, ts=MIDDAY)
    EventFactory(user_id=u2, ts=datetime(2026, 3, 10, 0, 0, tzinfo=UTC))
    EventFactory.create_batch(2, user_id=u3, ts=MIDDAY, tier="pro", client_version="1.1.0")
    EventFactory(user_id=u1, ts=MIDDAY, name="filter_used")
    for user_id, value in ((u1, 400), (u2, 100), (u1, 1000), (u2, 300), (u1, 200)):
        EventFactory(user_id=user_id, ts=MIDDAY, name="popup_open_ms", value=value)
    EventFactory(user_id=u4, ts=datetime(2026, 3, 9, 23, 59, 59, tzinfo=UTC))  # WAU, MAU
    EventFactory(user_id=u5, ts=datetime(2026, 3, 4, 0, 0, tzinfo=UTC))  # first day of the week: WAU, MAU
    EventFactory(user_id=u6, ts=datetime(2026, 3, 3, 12, 0, tzinfo=UTC))  # MAU only
    EventFactory(user_id=u7, ts=datetime(2026, 2, 9, 0, 0, tzinfo=UTC))  # first day of the 30: MAU
    EventFactory(user_id=u8, ts=datetime(2026, 2, 8, 23, 0, tzinfo=UTC))  # outside every window
    EventFactory(user_id=u9, ts=datetime(2026, 3, 11, 0, 0, tzinfo=UTC))  # the next day


def event_rows():
    return {
        (row.name, row.tier, row.client_version): (row.count, row.unique_users)
        for row in DailyEventRollup.objects.filter(day=DAY)
    }


@pytest.mark.smoke
@pytest.mark.django_db
def test_rollup_gives_exact_counts_uniques_and_percentiles(fixed_data_set):
    summary = rollup_day(day=DAY)
    assert event_rows() == {
        ("extension_opened", "free", "1.0.0"): (4, 2),
        ("extension_opened", "pro", "1.1.0"): (2, 1),
        ("filter_used", "free", "1.0.0"): (1, 1),
        ("popup_open_ms", "free", "1.0.0"): (5, 2),
    }
    active = DailyActiveUsers.objects.get(day=DAY)
    assert (active.dau, active.wau, active.mau) == (3, 5, 7)
    metric = DailyMetricRollup.objects.get(day=DAY)
    # percentile_cont over 100, 200, 300, 400, 1000: p95 = 400 + 0.8 × 600, p99 = 400 + 0.96 × 600.
    assert (metric.name, metric.count) == ("popup_open_ms", 5)
    assert (metric.p50, metric.p95, metric.p99) == pytest.approx((300, 880, 976))
    assert (summary.event_rows, summary.metric_rows, summary.dau) == (4, 1, 3)


@pytest.mark.django_db
def test_rerunning_a_rollup_does_not_double_count(fixed_data_set):
    def snapshot():
        active = list(DailyActiveUsers.objects.values("day", "dau", "wau", "mau"))
        metrics = list(DailyMetricRollup.objects.values("day", "name", "count", "p50", "p95", "p99"))
        return event_rows(), active, metrics

    rollup_day(day=DAY)
    first = snapshot()
    rollup_day(day=DAY)
    assert snapshot() == first
    assert DailyEventRollup.objects.count() == 4


@pytest.mark.django_db
def test_rerun_picks_up_late_events(fixed_data_set):
    rollup_day(day=DAY)
    EventFactory(ts=MIDDAY, name="filter_used")
    rollup_day(day=DAY)
    assert event_rows()[("filter_used", "free", "1.0.0")] == (2, 2)
    assert DailyActiveUsers.objects.get(day=DAY).dau == 4


@pytest.mark.django_db
def test_rollup_of_an_empty_day_writes_zeroes():
    rollup_day(day=DAY)
    assert DailyEventRollup.objects.count() == 0
    assert DailyMetricRollup.objects.count() == 0
    assert DailyActiveUsers.objects.filter(day=DAY, dau=0, wau=0, mau=0).exists()


@pytest.mark.django_db
def test_single_metric_value_is_every_percentile():
    EventFactory(ts=MIDDAY, name="chat_filter_ms", value=42.5)
    rollup_day(day=DAY)
    metric = DailyMetricRollup.objects.get(day=DAY)
    assert (metric.p50, metric.p95, metric.p99) == (42.5, 42.5, 42.5)


@pytest.mark.django_db
def test_rollup_command_takes_a_date_and_a_range(fixed_data_set, capsys):
    call_command("analytics_rollup", "--date", "2026-03-10")
    assert "2026-03-10: 4 event rows, 1 metric rows, DAU 3, WAU 5, MAU 7" in capsys.readouterr().out
    call_command("analytics_rollup", "--date", "2026-03-11", "--days", "3")
    assert set(DailyActiveUsers.objects.values_list("day", flat=True)) == {
        date(2026, 3, 9),
        date(2026, 3, 10),
        date(2026, 3, 11),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("arguments", [["--date", "10/03/2026"], ["--date", "2026-02-30"], ["--days", "0"]])
def test_rollup_command_rejects_bad_arguments(arguments):
    with pytest.raises(CommandError):
        call_command("analytics_rollup", *arguments)


@pytest.mark.django_db
def test_rollup_task_refreshes_today_and_yesterday():
    EventFactory(ts=timezone.now())
    assert rollup_recent_days_task.delay(days=2).get() == 2
    today = timezone.now().date()
    assert set(DailyActiveUsers.objects.values_list("day", flat=True)) == {today, today - timedelta(days=1)}
    assert DailyActiveUsers.objects.get(day=today).dau == 1


def test_beat_schedules_registered_analytics_tasks(settings):
    from chatfocus.celery import app

    analytics_entries = {key: entry for key, entry in settings.CELERY_BEAT_SCHEDULE.items() if "analytics" in key}
    assert {entry["task"] for entry in analytics_entries.values()} == {
        "analytics.tasks.rollup_recent_days_task",
        "analytics.tasks.prune_expired_events_task",
    }
    assert all(entry["task"] in app.tasks for entry in analytics_entries.values())


@pytest.mark.smoke
@pytest.mark.django_db
def test_retention_deletes_only_expired_raw_events(settings):
    settings.ANALYTICS_RETENTION_DAYS = 90
    now = timezone.now()
    expired = [EventFactory(ts=now - timedelta(days=90, minutes=1)), EventFactory(ts=now - timedelta(days=200))]
    kept = [EventFactory(ts=now - timedelta(days=89, hours=23)), EventFactory(ts=now)]
    DailyEventRollup.objects.create(
        day=(now - timedelta(days=200)).date(),
        name="extension_opened",
        tier="free",
        client_version="1",
        count=1,
        unique_users=1,
    )
    assert prune_expired_events(now=now) == len(expired)
    assert set(Event.objects.values_list("id", flat=True)) == {event.id for event in kept}
    assert DailyEventRollup.objects.count() == 1


@pytest.mark.django_db
def test_retention_follows_the_setting_and_deletes_in_chunks(settings, monkeypatch):
    settings.ANALYTICS_RETENTION_DAYS = 10
    monkeypatch.setattr(services, "PRUNE_CHUNK", 2)
    now = timezone.now()
    EventFactory.create_batch(5, ts=now - timedelta(days=11))
    EventFactory(ts=now - timedelta(days=9))
    assert prune_expired_events_task.delay().get() == 5
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_prune_command_reports_the_count(settings, capsys):
    settings.ANALYTICS_RETENTION_DAYS = 30
    EventFactory(ts=timezone.now() - timedelta(days=31))
    call_command("analytics_prune")
    assert "Deleted 1 raw events older than 30 days." in capsys.readouterr().out
    assert Event.objects.count() == 0
