"""Shared API pieces: the error schema, fast serializing for hot reads, and the health views of no app."""

import functools

from django.conf import settings
from django.db import connections
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from chatfocus.exceptions import ServiceUnavailable, error_response
from chatfocus.schema import ERROR_DESCRIPTIONS


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable snake_case code clients can switch on.")
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)
    details = serializers.JSONField(required=False)
    request_id = serializers.CharField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


def error_responses(*statuses: int) -> dict:
    """`extend_schema(responses=...)` entries declaring the shared error shape for these statuses."""
    return {status: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[status]) for status in statuses}


@functools.cache
def _shared_serializer(serializer_class) -> serializers.Serializer:
    return serializer_class()


def represent(serializer_class, instance) -> dict:
    """`serializer_class(instance).data`, without building a serializer per call (for hot reads).

    DRF deep-copies every declared field each time a serializer is built: hundreds of microseconds for
    a nested shape, per request. to_representation leaves the serializer unchanged, so one instance
    per class serves every call.
    """
    return _shared_serializer(serializer_class).to_representation(instance)


class HealthView(APIView):
    """Liveness: the process is up and serving."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="healthz",
        responses={200: inline_serializer("Health", {"status": serializers.CharField()})},
        tags=["health"],
    )
    def get(self, request):
        return Response({"status": "ok"})


class ReadinessView(APIView):
    """Readiness: the database and, when configured, Redis answer."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="readyz",
        responses={
            200: inline_serializer("Readiness", {"status": serializers.CharField(), "checks": serializers.DictField()}),
            **error_responses(503),
        },
        tags=["health"],
    )
    def get(self, request):
        checks = {"database": check_database()}
        if settings.REDIS_URL:
            checks["redis"] = check_redis()
        if not all(checks.values()):
            failed = ", ".join(name for name, ok in checks.items() if not ok)
            raise ServiceUnavailable(f"Not ready: {failed} unreachable.", details={"checks": checks})
        return Response({"status": "ok", "checks": checks})


def check_database() -> bool:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def check_redis() -> bool:
    from django_redis import get_redis_connection

    try:
        return bool(get_redis_connection("default").ping())
    except Exception:
        return False


# Exempt like every DRF view: otherwise a POST or DELETE to an unknown API path gets Django's HTML CSRF
# page (403) instead of this 404.
@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Catch-all for unknown /api/ paths so the 404 keeps the shape even with DEBUG on."""
    return error_response(request, code="not_found", message=f"No API endpoint at {request.path}.", status=404)
