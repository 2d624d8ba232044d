"""Flow control (DESIGN.md section 5): the client version gate, and the headers declared in the schema.

Clients send `X-Client-Version: <semver>`. Below MIN_CLIENT_VERSION every API endpoint but auth answers
426 `client_outdated`, so an old build can still sign in and be told to update. No header (browsers on
the site, Stripe's webhooks, scripts) is not gated. Sync responses carry `Backoff` while
SYNC_BACKOFF_SECONDS is above 0, push and pull `X-Quota-Used` / `X-Quota-Limit` (syncsettings.api.views).
"""

import re

from django.conf import settings

from chatfocus.exceptions import error_response

SEMVER = re.compile(r"v?(\d{1,9})\.(\d{1,9})\.(\d{1,9})(?:-([0-9A-Za-z.-]{1,64}))?(?:\+[0-9A-Za-z.-]{1,64})?")
GATED_PREFIX = "/api/"
EXEMPT_PREFIXES = ("/api/auth/", "/api/schema/", "/api/docs/")
CLIENT_VERSION_HEADER = "X-Client-Version"


def parse_semver(text: str) -> tuple | None:
    """A sortable key for a semantic version (a pre-release sorts before its release), or None."""
    match = SEMVER.fullmatch(text.strip())
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    # Pre-release identifiers compare numerically when numeric, else as text (semver 2.0.0, section 11).
    pre_key = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split(".")) if pre else ()
    return (int(major), int(minor), int(patch), 0 if pre else 1, pre_key)


def minimum_client_version() -> tuple | None:
    """The configured minimum (a malformed one fails `manage.py check`: syncsettings.E001), or None."""
    return parse_semver(settings.MIN_CLIENT_VERSION) if settings.MIN_CLIENT_VERSION else None


class ClientVersionMiddleware:
    """426 `client_outdated` for API requests from a client older than MIN_CLIENT_VERSION (auth exempt)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        sent = request.headers.get(CLIENT_VERSION_HEADER)
        if sent is None or not request.path.startswith(GATED_PREFIX) or request.path.startswith(EXEMPT_PREFIXES):
            return self.get_response(request)
        version = parse_semver(sent)
        if version is None:
            return error_response(
                request,
                code="validation_error",
                message="Some fields are invalid.",
                status=400,
                fields={CLIENT_VERSION_HEADER: ["A semantic version such as 1.4.2 is required."]},
            )
        minimum = minimum_client_version()
        if minimum is not None and version < minimum:
            return error_response(
                request,
                code="client_outdated",
                message="This version of ChatFocus is no longer supported: update the extension.",
                status=426,
                details={"min_version": settings.MIN_CLIENT_VERSION},
            )
        return self.get_response(request)


def _header(description: str, schema_type: str = "integer") -> dict:
    return {"description": description, "schema": {"type": schema_type}}


BACKOFF = _header("Seconds to wait before the next sync the user did not ask for (sent during incidents).")
QUOTA_USED = _header("Bytes of synced settings stored for the account.")
QUOTA_LIMIT = _header("Bytes the account's plan may store.")
QUOTA_OPERATIONS = {"sync_push", "sync_pull"}


def declare_flow_control(result, generator, request, public):
    """drf-spectacular hook: X-Client-Version and 426 on every gated operation; Backoff and quota headers."""
    parameter = {
        "in": "header",
        "name": CLIENT_VERSION_HEADER,
        "required": False,
        "schema": {"type": "string", "example": "1.4.2"},
        "description": "The client's semantic version; below the server's minimum → 426 `client_outdated`.",
    }
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    outdated = {"description": "`client_outdated`: update the client (`details.min_version`).", "content": error}
    malformed = {"description": "`validation_error` (also for a malformed X-Client-Version).", "content": error}
    for path, path_item in result.get("paths", {}).items():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            if not path.startswith(EXEMPT_PREFIXES):
                operation.setdefault("parameters", []).append(parameter)
                operation.setdefault("responses", {}).setdefault("426", outdated)
                operation["responses"].setdefault("400", malformed)
            if not path.startswith("/api/sync/"):
                continue
            for status, response in operation.get("responses", {}).items():
                headers = response.setdefault("headers", {})
                headers["Backoff"] = BACKOFF
                if operation.get("operationId") in QUOTA_OPERATIONS and status in {"200", "304"}:
                    headers["X-Quota-Used"], headers["X-Quota-Limit"] = QUOTA_USED, QUOTA_LIMIT
    return result
