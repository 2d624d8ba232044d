"""The OpenAPI schema says what the API does: DELETE bodies, every error status, the headers clients read."""

from drf_spectacular import openapi

from chatfocus.exceptions import ERROR_CODES

ERROR_DESCRIPTIONS = {
    400: "Invalid input (`validation_error`, `malformed_json`, `clock_drift`, `signature_invalid`).",
    401: (
        "Missing or invalid credentials (`not_authenticated`, `token_invalid`, `token_reused`, `invalid_credentials`)."
    ),
    403: "`permission_denied`, or `feature_not_available` when the plan lacks the feature.",
    404: "`not_found`.",
    405: "`method_not_allowed`.",
    409: "Conflict with current state (`conflict`, `subscription_exists`, `cursor_ahead`).",
    410: "`cursor_expired`.",
    412: "`precondition_failed`.",
    413: "`payload_too_large`.",
    415: "`unsupported_media_type`.",
    422: "`quota_exceeded`.",
    428: "`precondition_required`.",
    429: "`rate_limited` (see Retry-After).",
    500: "`server_error` (always a bug).",
    502: "`upstream_error`: Stripe or a provider failed; nothing changed.",
    503: "`unavailable`, `billing_not_configured` or `provider_not_configured` (see Retry-After).",
}
UNSAFE = {"post", "put", "patch", "delete"}
STRING = {"schema": {"type": "string"}}
# Response headers by operation: validators (ETag) and the sync clock (X-Server-Time on every sync answer).
ETAG_OPERATIONS = {
    ("get", "/api/sync/pull"),
    ("get", "/api/sync/settings"),
    ("put", "/api/sync/settings"),
    ("get", "/api/subscriptions"),
}
# OpenAPI links from an operation's answer to the operations that act on what it names: clients (and the
# fuzzer's stateful phase) follow them to objects that exist.
LINKS = {
    ("post", "/api/sync/devices", "201"): {
        "DeleteDevice": ("sync_devices_delete", {"device_id": "$response.body#/device_id"}),
    },
    ("get", "/api/sync/devices", "200"): {
        "DeleteDevice": ("sync_devices_delete", {"device_id": "$response.body#/results/0/device_id"}),
    },
    ("post", "/api/sync/snapshots", "201"): {
        "RestoreSnapshot": ("sync_snapshots_restore", {"snapshot_id": "$response.body#/id"}),
    },
    ("get", "/api/sync/snapshots", "200"): {
        "RestoreSnapshot": ("sync_snapshots_restore", {"snapshot_id": "$response.body#/results/0/id"}),
    },
    ("post", "/api/sync/snapshots/{snapshot_id}/restore", "200"): {
        "UndoRestore": ("sync_snapshots_restore", {"snapshot_id": "$response.body#/undo_snapshot_id"}),
    },
    ("get", "/api/auth/sessions", "200"): {
        "RevokeSession": ("auth_sessions_revoke", {"session_id": "$response.body#/results/0/id"}),
    },
}
ERROR_EXAMPLE = {
    "error": {
        "code": "validation_error",
        "message": "Some fields are invalid.",
        "fields": {"email": ["Enter a valid email address."]},
        "request_id": "9f1c2e7a4b2d4c1e8f0a6b3d5e7c9a1b",
    }
}


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, plus the request body of a DELETE that declares one (DELETE /api/users/me)."""

    def _get_request_body(self, direction="request"):
        if self.method != "DELETE":
            return super()._get_request_body(direction)
        # spectacular documents bodies of POST/PUT/PATCH only. A DELETE says `request=None` when it takes none
        # (else the schema build fails: an APIView has no serializer to guess from).
        if self.get_request_serializer() is None:
            return None
        self.method = "POST"
        try:
            return super()._get_request_body(direction)
        finally:
            self.method = "DELETE"


def _header(description: str) -> dict:
    return {"description": description, **STRING}


def _error_statuses(path: str, method: str, operation: dict) -> set[int]:
    """What middleware and DRF can answer on this operation whatever its view does."""
    statuses = {405, 500, 503}
    if method in UNSAFE:
        statuses |= {413}  # decided from Content-Length before any view runs
    if "requestBody" in operation:
        statuses |= {400, 415}
    # Query parameters are validated (a list's `cursor` the server did not hand out is 400 too).
    if any(parameter.get("in") == "query" for parameter in operation.get("parameters", [])):
        statuses |= {400}
    if operation.get("security") and {} not in operation["security"]:
        statuses |= {401}
    if "{" in path:
        statuses |= {404}
    return statuses


def _declare_error_shape(schemas: dict) -> None:
    if "Error" not in schemas:
        schemas["ErrorDetail"] = {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
                "details": {},
                "request_id": {"type": "string", "nullable": True},
            },
            "required": ["code", "message", "request_id"],
        }
        schemas["Error"] = {
            "type": "object",
            "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}},
            "required": ["error"],
        }
    schemas["ErrorDetail"]["properties"]["code"] = {
        "type": "string",
        "enum": list(ERROR_CODES),
        "description": "Stable snake_case code clients can switch on.",
    }
    schemas["Error"]["example"] = ERROR_EXAMPLE


def complete_schema(result, generator, request, public):
    """Postprocessing hook: declare the errors and headers every operation has (middleware and DRF add them)."""
    error_ref = {"$ref": "#/components/schemas/Error"}
    _declare_error_shape(result.setdefault("components", {}).setdefault("schemas", {}))
    for path, path_item in result.get("paths", {}).items():
        for method, operation in path_item.items():
            if method not in {"get"} | UNSAFE:
                continue
            responses = operation.setdefault("responses", {})
            for status in sorted(_error_statuses(path, method, operation)):
                responses.setdefault(
                    str(status),
                    {"description": ERROR_DESCRIPTIONS[status], "content": {"application/json": {"schema": error_ref}}},
                )
            for status, response in responses.items():
                for name, (target, parameters) in LINKS.get((method, path, status), {}).items():
                    response.setdefault("links", {})[name] = {"operationId": target, "parameters": parameters}
                headers = response.setdefault("headers", {})
                headers["X-Request-ID"] = _header("This request's id (the client's X-Request-ID if sane); in logs.")
                if path.startswith("/api/sync/"):
                    headers["X-Server-Time"] = _header("The server clock, unix ms (for the device's HLC).")
                if status in {"429", "503"}:
                    headers["Retry-After"] = _header("Seconds to wait before trying again.")
                if (method, path) in ETAG_OPERATIONS and status in {"200", "304"}:
                    headers["ETag"] = _header(
                        "The representation's validator: send it back as If-None-Match (If-Match to write)."
                    )
    return result
