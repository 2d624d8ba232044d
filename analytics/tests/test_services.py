import pytest

from accounts.tests.factories import UserFactory
from analytics.models import DailyEventRollup, Event
from analytics.services import delete_user_events, export_user_events
from analytics.tests.factories import EventFactory


@pytest.mark.smoke
@pytest.mark.django_db
def test_export_lists_the_users_raw_events_only(user):
    mine = EventFactory(user_id=user.id, props={"surface": "popup"})
    EventFactory()
    exported = export_user_events(user=user)
    assert exported == [
        {
            "id": str(mine.event_id),
            "name": "extension_opened",
            "ts": mine.ts.isoformat(),
            "props": {"surface": "popup"},
            "value": None,
            "tier": "free",
            "client": {"version": "1.0.0", "browser": "chrome", "os": "mac"},
            "received_at": mine.received_at.isoformat(),
        }
    ]


@pytest.mark.smoke
@pytest.mark.django_db
def test_delete_removes_the_users_raw_events_and_keeps_rollups(user):
    EventFactory.create_batch(3, user_id=user.id)
    other = EventFactory(user_id=UserFactory().id)
    DailyEventRollup.objects.create(
        day=other.ts.date(), name="extension_opened", tier="free", client_version="1.0.0", count=4, unique_users=2
    )
    assert delete_user_events(user=user) == 3
    assert list(Event.objects.all()) == [other]
    assert DailyEventRollup.objects.count() == 1
    assert export_user_events(user=user) == []
