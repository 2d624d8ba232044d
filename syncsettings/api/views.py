from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from chatfocus.api import error_responses
from chatfocus.exceptions import ValidationFailed
from chatfocus.pagination import CursorPagination, paginated_response, parse_limit
from syncsettings import services
from syncsettings.api.serializers import (
    PULL_EXAMPLES,
    PUSH_EXAMPLES,
    ChangeSerializer,
    DeviceSerializer,
    PullResponseSerializer,
    PushResponseSerializer,
    PushSerializer,
    QuotaSerializer,
    RestoreResultSerializer,
    SettingsDocumentSerializer,
    SettingsReplaceSerializer,
    SnapshotSerializer,
)
from syncsettings.validation import (
    DEVICE_ID,
    MAX_PULL_LIMIT,
    check_key,
    parse_device_id,
    parse_etag_version,
    parse_push,
    parse_settings_document,
    parse_version,
)

TAGS = ["sync"]
ETAG_HEADER = OpenApiParameter(
    "If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, description='`"v<version>"` → 304 when current.'
)
NOT_MODIFIED = OpenApiResponse(description="Not modified: the version in If-None-Match is current.")


class SyncView(APIView):
    """Sync endpoints: every response carries the server clock for the devices' HLCs, and `Backoff` while set."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["X-Server-Time"] = str(services.server_time_ms())
        if settings.SYNC_BACKOFF_SECONDS > 0:
            response["Backoff"] = str(settings.SYNC_BACKOFF_SECONDS)
        return response


def with_quota(response, used: int, limit: int):
    response["X-Quota-Used"], response["X-Quota-Limit"] = str(used), str(limit)
    return response


def etag(version: int) -> str:
    return f'"v{version}"'


def not_modified(version: int) -> Response:
    return Response(status=304, headers={"ETag": etag(version)})


class PushView(SyncView):
    def cache_keys_for(self, request, *, user_id) -> list[str]:
        return services.push_cache_keys(user_id=user_id)

    @extend_schema(
        operation_id="sync_push",
        summary="Send a device's ops",
        description=(
            "At most 100 ops and 256 KB. Every op is validated first; any invalid op → 400 and nothing is "
            "applied (`clock_drift` when an HLC is more than 5 minutes ahead). Then, in one transaction holding "
            "the account's sync lock, each op is `applied` (next version), `superseded` (an equal or higher HLC "
            "already wrote the key; logged) or `duplicate` (op_id seen before; its first version). `incr` adds its "
            "numeric delta and is never superseded. A push that would pass a quota applies nothing (422; "
            "deletes are always allowed). A new device_id registers the device (counts against the device limit)."
        ),
        request=PushSerializer,
        responses={200: PushResponseSerializer, **error_responses(403, 413, 422)},
        examples=PUSH_EXAMPLES,
        tags=TAGS,
    )
    def post(self, request):
        device_id, ops = parse_push(request.data, now_ms=services.server_time_ms())
        result = services.push_changes(
            user=request.user, device_id=device_id, ops=ops, prefetched=request.user.prefetched
        )
        return with_quota(Response(result), *result.quota)


class PullView(SyncView):
    def cache_keys_for(self, request, *, user_id) -> list[str]:
        return services.pull_cache_keys(user_id=user_id)

    @extend_schema(
        operation_id="sync_pull",
        summary="Changes since a version",
        description=(
            "The latest state of each key changed after `since` (tombstones as `deleted: true`), in version "
            "order; page with `since=<version>` while `has_more`. Idle polls are cheap: send `since` equal to "
            'the last version (empty answer) or `If-None-Match: "v<version>"` (304). `since` below the pruned '
            "horizon → 410 `cursor_expired` (GET /api/sync/settings, then pull from its version); ahead of the "
            "server → 409 `cursor_ahead`."
        ),
        parameters=[
            OpenApiParameter("since", int, description="Last version seen (default 0: everything)."),
            OpenApiParameter(
                "limit",
                int,
                description=f"Changes per page, at most {MAX_PULL_LIMIT} (the default; larger is clamped).",
            ),
            ETAG_HEADER,
        ],
        responses={200: PullResponseSerializer, 304: NOT_MODIFIED, **error_responses(400, 409, 410)},
        examples=PULL_EXAMPLES,
        tags=TAGS,
    )
    def get(self, request):
        since = parse_version(request.GET.get("since"), field="since")
        limit = parse_limit(request.GET.get("limit"), default=MAX_PULL_LIMIT, maximum=MAX_PULL_LIMIT)
        known = parse_etag_version(request.headers.get("If-None-Match"))
        prefetched = request.user.prefetched
        page = services.pull_changes(
            user=request.user, since=since, limit=limit, if_none_match=known, prefetched=prefetched
        )
        quota = (page.bytes_used, services.get_limits(user=request.user, prefetched=prefetched).sync_bytes)
        if page.not_modified:
            return with_quota(not_modified(known), *quota)
        # Rendered here from the changes' JSON text: DRF's renderer would re-encode every value.
        body = (
            f'{{"changes":[{",".join(page.changes)}],"version":{page.version},'
            f'"has_more":{"true" if page.has_more else "false"},"server_time":{page.server_time}}}'
        )
        response = HttpResponse(body, content_type="application/json")
        if not page.has_more:
            response["ETag"] = etag(page.version)
        return with_quota(response, *quota)


class SettingsView(SyncView):
    def cache_keys_for(self, request, *, user_id) -> list[str]:
        return services.version_cache_keys(user_id=user_id) if request.method == "GET" else []

    @extend_schema(
        operation_id="sync_settings_get",
        summary="The whole settings document",
        description='`ETag: "v<version>"`; `If-None-Match` with the current ETag → 304.',
        parameters=[ETAG_HEADER],
        responses={200: SettingsDocumentSerializer, 304: NOT_MODIFIED},
        tags=TAGS,
    )
    def get(self, request):
        known = parse_etag_version(request.headers.get("If-None-Match"))
        result = services.get_settings(user=request.user, if_none_match=known, prefetched=request.user.prefetched)
        if result is services.NOT_MODIFIED:
            return not_modified(known)
        return Response(result, headers={"ETag": etag(result["version"])})

    @extend_schema(
        operation_id="sync_settings_replace",
        summary="Replace the whole settings document",
        description=(
            'Requires `If-Match: "v<version>"` (missing → 428, stale → 412). An automatic snapshot is taken '
            "first; the difference is then written as server ops (sets and deletes) so other devices pull it. "
            "At most 1 MB; larger documents sync by push."
        ),
        parameters=[
            OpenApiParameter(
                "If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, required=True, description='`"v<version>"`'
            )
        ],
        request=SettingsReplaceSerializer,
        responses={200: SettingsDocumentSerializer, **error_responses(403, 412, 422, 428)},
        tags=TAGS,
    )
    def put(self, request):
        document = parse_settings_document(request.data)
        expected = parse_etag_version(request.headers.get("If-Match"))
        if request.headers.get("If-Match") and expected is None:
            raise ValidationFailed(fields={"If-Match": ['Send "v<version>" as the ETag gave it.']})
        result = services.replace_settings(user=request.user, settings=document, if_match=expected)
        return Response(result, headers={"ETag": etag(result["version"])})


class DevicePagination(CursorPagination):
    ordering = "created_at"


class DevicesView(SyncView):
    pagination_class = DevicePagination

    @extend_schema(
        operation_id="sync_devices_list",
        summary="Devices that sync this account",
        responses={200: DeviceSerializer(many=True)},
        tags=TAGS,
    )
    def get(self, request):
        return paginated_response(self, request, services.list_devices(user=request.user), DeviceSerializer)

    @extend_schema(
        operation_id="sync_devices_register",
        summary="Register a device or update its name, browser and platform",
        description="201 when new, 200 when it existed. Past the tier's device limit → 422.",
        request=DeviceSerializer,
        responses={201: DeviceSerializer, 200: DeviceSerializer, **error_responses(422)},
        tags=TAGS,
    )
    def post(self, request):
        serializer = DeviceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        device, created = services.register_device(
            user=request.user,
            device_id=data["device_id"],
            name=data.get("name", ""),
            browser=data.get("browser", ""),
            platform=data.get("platform", ""),
        )
        return Response(DeviceSerializer(device).data, status=201 if created else 200)


class DeviceDetailView(SyncView):
    @extend_schema(
        operation_id="sync_devices_delete",
        summary="Forget a device",
        description="Its synced data stays. It registers again if it pushes later.",
        parameters=[OpenApiParameter("device_id", str, OpenApiParameter.PATH, pattern=rf"^{DEVICE_ID.pattern}$")],
        request=None,
        responses={204: None, **error_responses(400)},
        tags=TAGS,
    )
    def delete(self, request, device_id):
        services.delete_device(user=request.user, device_id=parse_device_id(device_id))
        return Response(status=204)


class SnapshotsView(SyncView):
    pagination_class = CursorPagination

    @extend_schema(
        operation_id="sync_snapshots_list",
        summary="Snapshots of the settings document",
        responses={200: SnapshotSerializer(many=True), **error_responses(403)},
        tags=TAGS,
    )
    def get(self, request):
        return paginated_response(self, request, services.list_snapshots(user=request.user), SnapshotSerializer)

    @extend_schema(
        operation_id="sync_snapshots_create",
        summary="Take a manual snapshot",
        description="Past the tier's snapshot count → 422 (automatic snapshots make room by rotating out).",
        request=SnapshotSerializer,
        responses={201: SnapshotSerializer, **error_responses(403, 422)},
        tags=TAGS,
    )
    def post(self, request):
        serializer = SnapshotSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        snapshot = services.create_snapshot(user=request.user, label=serializer.validated_data.get("label", ""))
        return Response(SnapshotSerializer(snapshot).data, status=201)


class SnapshotRestoreView(SyncView):
    @extend_schema(
        operation_id="sync_snapshots_restore",
        summary="Restore a snapshot",
        description=(
            "Writes the snapshot's document as new server ops, so every device converges by pulling. A "
            "`pre_restore` snapshot is taken first: restore `undo_snapshot_id` to undo."
        ),
        request=None,
        responses={200: RestoreResultSerializer, **error_responses(403, 422)},
        tags=TAGS,
    )
    def post(self, request, snapshot_id):
        return Response(services.restore_snapshot(user=request.user, snapshot_id=snapshot_id))


class HistoryPagination(CursorPagination):
    ordering = "-id"


class HistoryView(SyncView):
    pagination_class = HistoryPagination

    @extend_schema(
        operation_id="sync_history",
        summary="Change log, newest first",
        description="Applied and superseded ops within the tier's history window, optionally of one key.",
        parameters=[OpenApiParameter("key", str, description="Only this key.")],
        responses={200: ChangeSerializer(many=True), **error_responses(400, 403)},
        tags=TAGS,
    )
    def get(self, request):
        key = request.GET.get("key")
        if key is not None:
            errors = {}
            if not check_key(key, field="key", errors=errors):
                raise ValidationFailed(fields=errors)
        return paginated_response(self, request, services.list_history(user=request.user, key=key), ChangeSerializer)


class QuotaView(SyncView):
    @extend_schema(
        operation_id="sync_quota",
        summary="Usage against the plan's limits",
        responses={200: QuotaSerializer},
        tags=TAGS,
    )
    def get(self, request):
        return Response(QuotaSerializer(services.get_quota(user=request.user)).data)
