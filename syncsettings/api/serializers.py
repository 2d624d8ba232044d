"""Sync request and response shapes.

Push and PUT bodies are validated by syncsettings.validation in plain Python (a 100-op push: 0.55 ms
including value sizes, against 2.0 ms for PushSerializer alone, measured here); the
serializers for them only describe the shape in the OpenAPI schema.
"""

from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers

from chatfocus.serializers import StrictModelSerializer
from syncsettings.crypto import unseal
from syncsettings.models import Change, Device, Snapshot
from syncsettings.validation import DEVICE_ID, HLC, MAX_OPS, OP_ID, SERVER_DEVICE

JSON_VALUE_HELP = "Any JSON value."


class OpSerializer(serializers.Serializer):
    op_id = serializers.RegexField(
        rf"^{OP_ID.pattern}$", max_length=64, help_text="Unique per user; a retry sends the same op_id."
    )
    key = serializers.RegexField(r"^[A-Za-z0-9._:/-]{1,128}$")
    op = serializers.ChoiceField(choices=["set", "delete", "incr"])
    value = serializers.JSONField(required=False, help_text="The value of a set, the numeric delta of an incr.")
    hlc = serializers.RegexField(rf"^{HLC.pattern}$", help_text='"<unix ms>-<counter>" of the device\'s HLC.')


class PushSerializer(serializers.Serializer):
    device_id = serializers.RegexField(rf"^{DEVICE_ID.pattern}$", max_length=64, help_text="Not `server`.")
    ops = serializers.ListField(child=OpSerializer(), min_length=1, max_length=MAX_OPS, help_text="Applied in order.")


class OpResultSerializer(serializers.Serializer):
    op_id = serializers.CharField()
    status = serializers.ChoiceField(choices=["applied", "superseded", "duplicate"])
    version = serializers.IntegerField(allow_null=True)


class PushResponseSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    server_time = serializers.IntegerField(help_text="Server clock, unix ms.")
    results = OpResultSerializer(many=True)


class PulledChangeSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.JSONField(allow_null=True, help_text=JSON_VALUE_HELP)
    deleted = serializers.BooleanField()
    version = serializers.IntegerField()
    hlc = serializers.CharField()
    device_id = serializers.CharField()


class PullResponseSerializer(serializers.Serializer):
    changes = PulledChangeSerializer(many=True)
    version = serializers.IntegerField(help_text="Pass as `since` next time.")
    has_more = serializers.BooleanField()
    server_time = serializers.IntegerField()


class SettingsDocumentSerializer(serializers.Serializer):
    settings = serializers.DictField(child=serializers.JSONField(), help_text="key → JSON value")
    version = serializers.IntegerField()
    updated_at = serializers.DateTimeField(allow_null=True)


class SettingsReplaceSerializer(serializers.Serializer):
    settings = serializers.DictField(child=serializers.JSONField(), help_text="The whole new document.")


class DeviceSerializer(StrictModelSerializer):
    device_id = serializers.RegexField(rf"^{DEVICE_ID.pattern}$", max_length=64)

    class Meta:
        model = Device
        fields = ["device_id", "name", "browser", "platform", "created_at", "last_seen_at"]
        read_only_fields = ["created_at", "last_seen_at"]

    def validate_device_id(self, value):
        if value == SERVER_DEVICE:
            raise serializers.ValidationError("'server' is reserved.")
        return value


class SnapshotSerializer(StrictModelSerializer):
    class Meta:
        model = Snapshot
        fields = ["id", "version", "reason", "label", "key_count", "bytes_used", "created_at"]
        read_only_fields = ["id", "version", "reason", "key_count", "bytes_used", "created_at"]


class RestoreResultSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    restored_snapshot_id = serializers.IntegerField()
    undo_snapshot_id = serializers.IntegerField(help_text="Restore this snapshot to undo the restore.")
    applied = serializers.IntegerField(help_text="Keys written (set or deleted).")
    server_time = serializers.IntegerField()


class ChangeSerializer(serializers.ModelSerializer):
    value = serializers.SerializerMethodField()
    hlc = serializers.SerializerMethodField()

    class Meta:
        model = Change
        fields = ["op_id", "key", "op", "value", "status", "version", "hlc", "device_id", "created_at"]

    def get_value(self, change) -> dict | list | str | int | float | bool | None:
        return unseal(change.key, change.value)

    def get_hlc(self, change) -> str:
        return f"{change.hlc_ms}-{change.hlc_counter}"


class QuotaSerializer(serializers.Serializer):
    tier = serializers.CharField()
    bytes_used = serializers.IntegerField()
    bytes_limit = serializers.IntegerField()
    keys_used = serializers.IntegerField()
    keys_limit = serializers.IntegerField()
    value_bytes_limit = serializers.IntegerField()
    devices_used = serializers.IntegerField()
    devices_limit = serializers.IntegerField()
    snapshots_used = serializers.IntegerField(help_text="Manual snapshots.")
    snapshots_limit = serializers.IntegerField()
    history_days = serializers.IntegerField()
    over_quota = serializers.BooleanField(help_text="Sets are refused (deletes work) until usage is under the limits.")


PUSH_EXAMPLES = [
    OpenApiExample(
        "Two devices' worth of ops",
        request_only=True,
        value={
            "device_id": "chrome-laptop",
            "ops": [
                {
                    "op_id": "laptop-41",
                    "key": "focusedContacts/alice",
                    "op": "set",
                    "value": True,
                    "hlc": "1767225600000-0",
                },
                {
                    "op_id": "laptop-42",
                    "key": "usageStats/filtersUsed",
                    "op": "incr",
                    "value": 1,
                    "hlc": "1767225600000-1",
                },
                {"op_id": "l-43", "key": "focusedContacts/bob", "op": "delete", "hlc": "1767225600000-2"},
            ],
        },
    ),
    OpenApiExample(
        "Applied, superseded and duplicate",
        response_only=True,
        value={
            "version": 57,
            "server_time": 1767225600123,
            "results": [
                {"op_id": "l-41", "status": "applied", "version": 56},
                {"op_id": "l-42", "status": "applied", "version": 57},
                {"op_id": "l-43", "status": "superseded", "version": None},
            ],
        },
    ),
]
PULL_EXAMPLES = [
    OpenApiExample(
        "A set and a delete since version 55",
        response_only=True,
        value={
            "changes": [
                {
                    "key": "focusedContacts/alice",
                    "value": True,
                    "deleted": False,
                    "version": 56,
                    "hlc": "1767225600000-0",
                    "device_id": "chrome-laptop",
                },
                {
                    "key": "focusedContacts/bob",
                    "value": None,
                    "deleted": True,
                    "version": 57,
                    "hlc": "1767225600000-2",
                    "device_id": "chrome-laptop",
                },
            ],
            "version": 57,
            "has_more": False,
            "server_time": 1767225600123,
        },
    )
]
