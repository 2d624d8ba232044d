"""Request serializers of every app: strict about which keys a body has and which JSON type each one is."""

from collections.abc import Mapping

from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers
from rest_framework.fields import empty

EXPECTED = {
    str: "Must be a string.",
    bool: "Must be true or false.",
    "number": "Must be a number.",
    list: "Must be a list.",
    dict: "Must be an object.",
}


def type_error(field: serializers.Field, value) -> str | None:
    """Why `value` has the wrong JSON type for `field`, or None.

    DRF coerces on input: `123` becomes "123" in a CharField, `"true"` or `1` True in a BooleanField, `"12"`
    12 in an IntegerField. A client that sends the wrong type has a bug it should hear about, not a stored
    value it did not mean.
    """
    if value is None:
        return None  # allow_null decides
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else EXPECTED[bool]
    if isinstance(field, (serializers.IntegerField, serializers.FloatField, serializers.DecimalField)):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else EXPECTED["number"]
    if isinstance(field, serializers.ChoiceField):
        if all(isinstance(choice, str) for choice in field.choices):
            return None if isinstance(value, str) else EXPECTED[str]
        return None
    if isinstance(
        field,
        (serializers.CharField, serializers.UUIDField, serializers.DateTimeField, serializers.DateField),
    ):
        return None if isinstance(value, str) else EXPECTED[str]
    if isinstance(field, serializers.ListField):
        if not isinstance(value, list):
            return EXPECTED[list]
        return next((error for item in value if (error := type_error(field.child, item))), None)
    if isinstance(field, serializers.DictField):
        if not isinstance(value, dict):
            return EXPECTED[dict]
        return next((error for item in value.values() if (error := type_error(field.child, item))), None)
    return None


class StrictFieldsMixin:
    """Unknown keys and values of the wrong JSON type are a 400 naming the field, never ignored or coerced."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            errors = {name: ["Unknown field."] for name in sorted(set(data) - writable, key=str)}
            for name in writable & set(data):
                value = data.get(name, empty)
                if value is not empty and (message := type_error(self.fields[name], value)):
                    errors[name] = [message]
            if errors:
                # The other fields' own errors too, so one answer lists everything to fix.
                valid = {name: value for name, value in data.items() if name not in errors}
                try:
                    super().to_internal_value(valid)
                except serializers.ValidationError as error:
                    if isinstance(error.detail, dict):
                        errors = {**error.detail, **errors}
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class StrictSerializer(StrictFieldsMixin, serializers.Serializer):
    """The base of every request body serializer."""


class StrictModelSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    """The base of every request body serializer built from a model."""


class StrictSerializerSchema(OpenApiSerializerExtension):
    """The schema says what the strict serializers enforce: no properties beyond the declared ones."""

    target_class = StrictFieldsMixin
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["additionalProperties"] = False
        return schema
