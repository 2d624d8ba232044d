import uuid
from datetime import UTC, datetime

import factory

from analytics.models import Event, EventDefinition


class EventDefinitionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EventDefinition
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"test_event_{n}")
    kind = EventDefinition.EVENT
    allowed_props = factory.LazyFunction(list)


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    event_id = factory.LazyFunction(uuid.uuid4)
    user_id = factory.LazyFunction(uuid.uuid4)
    name = "extension_opened"
    ts = factory.LazyFunction(lambda: datetime.now(UTC))
    received_at = factory.LazyAttribute(lambda event: event.ts)
    props = factory.LazyFunction(dict)
    value = None
    tier = "free"
    client_version = "1.0.0"
    client_browser = "chrome"
    client_os = "mac"


def make_event(**overrides) -> dict:
    """One valid event as the extension sends it (JSON-ready)."""
    event = {
        "id": str(uuid.uuid4()),
        "name": "extension_opened",
        "ts": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "props": {"surface": "popup"},
        "client": {"version": "1.4.2", "browser": "chrome", "os": "mac"},
    }
    event.update(overrides)
    return event
