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


ISSUE_EVENTS = {
    "extension_opened",
    "filter_used",
    "export_requested",
    "contact_focused",
    "extension_installed",
    "settings_synced",
    "upgrade_clicked",
}
ISSUE_METRICS = {"popup_open_ms", "sync_roundtrip_ms", "chat_filter_ms"}


@pytest.mark.django_db(transaction=True)
def test_data_migration_registers_the_initial_events_and_metrics():
    from django.core.management import call_command

    from analytics.models import EventDefinition

    call_command("migrate", "analytics", "0001", verbosity=0)
    assert not EventDefinition.objects.exists()
    call_command("migrate", "analytics", verbosity=0)
    kinds = dict(EventDefinition.objects.filter(active=True).values_list("name", "kind"))
    assert kinds == {**dict.fromkeys(ISSUE_EVENTS, "event"), **dict.fromkeys(ISSUE_METRICS, "metric")}


@pytest.mark.django_db
def test_admin_changes_to_the_registry_apply_to_the_next_batch(client, auth_client, opted_in_user):
    from analytics.models import EventDefinition
    from analytics.tests.factories import make_event

    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    api = auth_client(opted_in_user)
    assert api.post(
        "/api/analytics/events", {"events": [make_event(name="theme_changed", props={})]}, format="json"
    ).json()["rejected"]
    response = client.post(
        "/admin/analytics/eventdefinition/add/",
        {"name": "theme_changed", "kind": "event", "description": "", "allowed_props": '["theme"]', "active": "on"},
    )
    assert response.status_code == 302
    batch = {"events": [make_event(name="theme_changed", props={"theme": "dark"})]}
    assert api.post("/api/analytics/events", batch, format="json").json()["accepted"] == 1
    definition = EventDefinition.objects.get(name="theme_changed")
    client.post(
        "/admin/analytics/eventdefinition/",
        {"action": "deactivate", "_selected_action": [definition.pk]},
    )
    batch = {"events": [make_event(name="theme_changed", props={"theme": "dark"})]}
    assert api.post("/api/analytics/events", batch, format="json").json()["rejected"] == [
        {"index": 0, "code": "unknown_name"}
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("allowed_props", ['"theme"', "[1, 2]", '{"theme": true}', '[""]'])
def test_admin_refuses_allowed_props_that_are_not_a_list_of_names(client, allowed_props):
    from analytics.models import EventDefinition

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.post(
        "/admin/analytics/eventdefinition/add/",
        {"name": "theme_changed", "kind": "event", "allowed_props": allowed_props, "active": "on"},
    )
    assert response.status_code == 200
    assert "allowed_props" in response.context["adminform"].form.errors
    assert not EventDefinition.objects.filter(name="theme_changed").exists()
