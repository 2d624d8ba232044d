from drf_spectacular.utils import OpenApiExample, extend_schema_field
from rest_framework import serializers

from analytics.validation import MAX_PROP_LENGTH, MAX_PROPS, REJECTION_CODES

MAX_EVENTS_PER_BATCH = 100


class ClientSchema(serializers.Serializer):
    version = serializers.CharField(max_length=32, help_text="Extension version, e.g. `1.4.2`.")
    browser = serializers.CharField(max_length=32, required=False)
    os = serializers.CharField(max_length=32, required=False)


class EventSchema(serializers.Serializer):
    """The documented shape of one event; analytics.validation checks it (per event, without DRF)."""

    id = serializers.UUIDField(help_text="Client-generated; resending the same id counts as a duplicate.")
    name = serializers.CharField(help_text="A registered, active event or metric name.")
    ts = serializers.DateTimeField(
        help_text="RFC 3339 UTC, e.g. `2026-01-31T12:00:00Z`; at most 5 minutes ahead, at most 7 days old."
    )
    props = serializers.DictField(
        required=False,
        help_text=f"At most {MAX_PROPS} allowed keys; scalar values, strings at most {MAX_PROP_LENGTH} characters.",
    )
    value = serializers.FloatField(required=False, help_text="Milliseconds; required for metrics.")
    client = ClientSchema()


@extend_schema_field(EventSchema)
class RawEventField(serializers.Field):
    """Passes each event through untouched: a bad event is rejected by index, not by failing the batch."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


class EventBatchSerializer(serializers.Serializer):
    events = serializers.ListField(child=RawEventField(), min_length=1, max_length=MAX_EVENTS_PER_BATCH)


class RejectionSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the event in the batch.")
    code = serializers.ChoiceField(choices=REJECTION_CODES)


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Stored now.")
    duplicates = serializers.IntegerField(help_text="Already stored (same id), not stored again.")
    dropped = serializers.IntegerField(help_text="Not stored because the user has not opted in to analytics.")
    rejected = RejectionSerializer(many=True)


EVENT_EXAMPLES = [
    OpenApiExample(
        "A usage event and a metric",
        request_only=True,
        value={
            "events": [
                {
                    "id": "0b9e1f3a-2c4d-4e5f-8a7b-6c5d4e3f2a1b",
                    "name": "filter_used",
                    "ts": "2026-01-31T12:00:00Z",
                    "props": {"surface": "popup"},
                    "client": {"version": "1.4.2", "browser": "chrome", "os": "mac"},
                },
                {
                    "id": "1c8d2e4f-3a5b-4c6d-9e8f-7a6b5c4d3e2f",
                    "name": "popup_open_ms",
                    "ts": "2026-01-31T12:00:01Z",
                    "props": {},
                    "value": 84.5,
                    "client": {"version": "1.4.2"},
                },
            ]
        },
    ),
    OpenApiExample(
        "One stored, one a resend",
        response_only=True,
        status_codes=["202"],
        value={"accepted": 1, "duplicates": 1, "dropped": 0, "rejected": []},
    ),
]
