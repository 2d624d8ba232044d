"""Registers the events today's extension counts, so a freshly migrated database accepts them."""

from django.db import migrations

INITIAL_DEFINITIONS = [
    ("extension_opened", "event", "The popup or side panel was opened.", ["surface"]),
    ("filter_used", "event", "A chat filter was applied.", ["filter", "enabled"]),
    ("export_requested", "event", "The user exported chats or settings.", ["format", "scope"]),
    ("contact_focused", "event", "A contact was added to the focus list.", ["source"]),
    ("extension_installed", "event", "The extension was installed or updated.", ["reason", "previous_version"]),
    ("settings_synced", "event", "Settings were synced with the server.", ["trigger", "ops"]),
    ("upgrade_clicked", "event", "An upgrade button was clicked.", ["tier", "placement"]),
    ("popup_open_ms", "metric", "Time from click to a rendered popup (ms).", ["surface"]),
    ("sync_roundtrip_ms", "metric", "One sync push or pull round trip (ms).", ["direction"]),
    ("chat_filter_ms", "metric", "Time to filter the chat list (ms).", ["chats"]),
]


def seed(apps, schema_editor):
    EventDefinition = apps.get_model("analytics", "EventDefinition")
    for name, kind, description, allowed_props in INITIAL_DEFINITIONS:
        EventDefinition.objects.get_or_create(
            name=name, defaults={"kind": kind, "description": description, "allowed_props": allowed_props}
        )


def unseed(apps, schema_editor):
    EventDefinition = apps.get_model("analytics", "EventDefinition")
    EventDefinition.objects.filter(name__in=[name for name, *_ in INITIAL_DEFINITIONS]).delete()


class Migration(migrations.Migration):
    dependencies = [("analytics", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
