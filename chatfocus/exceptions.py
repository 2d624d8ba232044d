"""One error type and one error shape for the whole API (DESIGN.md section 2)."""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.views import set_rollback

logger = logging.getLogger("chatfocus.errors")

RETRY_AFTER_UNAVAILABLE = 5

# Every `error.code` the API answers with (DESIGN.md section 2); the schema declares them as an enum.
ERROR_CODES = (
    "validation_error",
    "malformed_json",
    "clock_drift",
    "signature_invalid",
    "not_authenticated",
    "token_invalid",
    "token_reused",
    "invalid_credentials",
    "permission_denied",
    "feature_not_available",
    "not_found",
    "method_not_allowed",
    "conflict",
    "subscription_exists",
    "cursor_ahead",
    "cursor_expired",
    "precondition_failed",
    "payload_too_large",
    "unsupported_media_type",
    "quota_exceeded",
    "client_outdated",
    "precondition_required",
    "rate_limited",
    "server_error",
    "upstream_error",
    "unavailable",
    "billing_not_configured",
    "provider_not_configured",
)


class DomainError(Exception):
    """An expected failure with a stable code, an HTTP status and optional per-field messages."""

    code = "validation_error"
    status = 400
    message = "The request could not be processed."

    def __init__(self, message=None, *, code=None, status=None, fields=None, headers=None, details=None):
        self.message = message or self.message
        self.code = code or self.code
        self.status = status or self.status
        self.fields = fields
        self.headers = headers or {}
        self.details = details
        super().__init__(self.message)


class ValidationFailed(DomainError):
    code, status, message = "validation_error", 400, "Some fields are invalid."


class NotAuthenticated(DomainError):
    code, status, message = "not_authenticated", 401, "Authentication credentials were not provided."


class InvalidCredentials(DomainError):
    code, status, message = "invalid_credentials", 401, "Email or password is incorrect."


class TokenInvalid(DomainError):
    code, status, message = "token_invalid", 401, "The token is invalid or expired."


class PermissionDenied(DomainError):
    code, status, message = "permission_denied", 403, "You do not have permission to do this."


class FeatureNotAvailable(PermissionDenied):
    code, message = "feature_not_available", "Your plan does not include this feature."


class NotFound(DomainError):
    code, status, message = "not_found", 404, "Not found."


class Conflict(DomainError):
    code, status, message = "conflict", 409, "The request conflicts with the current state."


class PreconditionFailed(DomainError):
    code, status, message = "precondition_failed", 412, "The resource has changed; fetch it again."


class PayloadTooLarge(DomainError):
    code, status, message = "payload_too_large", 413, "The request body is too large."


class QuotaExceeded(DomainError):
    code, status, message = "quota_exceeded", 422, "Your plan's limit has been reached."


class PreconditionRequired(DomainError):
    code, status, message = "precondition_required", 428, "This request must be conditional (If-Match)."


class RateLimited(DomainError):
    code, status, message = "rate_limited", 429, "Too many requests. Try again later."

    def __init__(self, message=None, *, retry_after: int, **kwargs):
        self.retry_after = max(1, int(retry_after))
        headers = {"Retry-After": str(self.retry_after), **kwargs.pop("headers", {})}
        super().__init__(message, headers=headers, **kwargs)


class UpstreamError(DomainError):
    code, status, message = "upstream_error", 502, "A payment or identity provider failed. Nothing was changed."


class ServiceUnavailable(DomainError):
    code, status, message = "unavailable", 503, "The service is temporarily unavailable. Try again shortly."

    def __init__(self, message=None, *, retry_after: int = RETRY_AFTER_UNAVAILABLE, **kwargs):
        headers = {"Retry-After": str(retry_after), **kwargs.pop("headers", {})}
        super().__init__(message, headers=headers, **kwargs)


def error_body(*, code, message, request_id=None, fields=None, details=None):
    """The shared error shape as a dict."""
    error = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    if details is not None:
        error["details"] = details
    error["request_id"] = request_id
    return {"error": error}


def error_response(request, *, code, message, status, fields=None, headers=None, details=None):
    """A JsonResponse in the shared error shape; usable outside DRF (middleware, handlers)."""
    body = error_body(
        code=code,
        message=message,
        request_id=getattr(request, "request_id", None),
        fields=fields,
        details=details,
    )
    response = JsonResponse(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _flatten_fields(detail):
    """DRF's nested ValidationError detail → {field: [messages]} with dotted paths for nesting."""
    if isinstance(detail, dict):
        flat = {}
        for key, value in detail.items():
            if isinstance(value, dict):
                for sub_key, messages in _flatten_fields(value).items():
                    flat[f"{key}.{sub_key}"] = messages
            elif isinstance(value, list) and value and isinstance(value[0], (dict, list)):
                for index, item in enumerate(value):
                    for sub_key, messages in _flatten_fields(item).items():
                        flat[f"{key}.{index}.{sub_key}".rstrip(".")] = messages
            else:
                flat[str(key)] = [str(m) for m in (value if isinstance(value, list) else [value])]
        return flat
    if isinstance(detail, list):
        if detail and all(isinstance(item, dict) for item in detail):
            flat = {}
            for index, item in enumerate(detail):
                for sub_key, messages in _flatten_fields(item).items():
                    flat[f"{index}.{sub_key}"] = messages
            return flat
        return {"non_field_errors": [str(m) for m in detail]}
    return {"non_field_errors": [str(detail)]}


def _translate(exc):
    """Map any known exception to (code, message, status, fields, headers, details), or None."""
    if isinstance(exc, DomainError):
        return exc.code, exc.message, exc.status, exc.fields, exc.headers, exc.details
    if isinstance(exc, drf.ValidationError):
        return "validation_error", "Some fields are invalid.", 400, _flatten_fields(exc.detail), {}, None
    if isinstance(exc, drf.ParseError):
        return "malformed_json", str(exc.detail), 400, None, {}, None
    if isinstance(exc, drf.UnsupportedMediaType):
        return (
            "unsupported_media_type",
            "Send the request body as application/json.",
            415,
            None,
            {},
            None,
        )
    if isinstance(exc, drf.Throttled):
        wait = max(1, int(exc.wait or 1))
        return "rate_limited", "Too many requests. Try again later.", 429, None, {"Retry-After": str(wait)}, None
    if isinstance(exc, drf.NotAuthenticated):
        return "not_authenticated", "Authentication credentials were not provided.", 401, None, {}, None
    if isinstance(exc, drf.AuthenticationFailed):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "token_invalid"
        if code not in {"token_invalid", "token_reused", "invalid_credentials", "not_authenticated"}:
            code = "token_invalid"
        message = str(exc.detail) if isinstance(exc.detail, str) else "The token is invalid or expired."
        return code, message, 401, None, {}, None
    if isinstance(exc, (drf.PermissionDenied, DjangoPermissionDenied)):
        return "permission_denied", "You do not have permission to do this.", 403, None, {}, None
    if isinstance(exc, (drf.NotFound, Http404)):
        return "not_found", "Not found.", 404, None, {}, None
    if isinstance(exc, drf.MethodNotAllowed):
        return "method_not_allowed", str(exc.detail), 405, None, {}, None
    if isinstance(exc, RequestDataTooBig):
        return "payload_too_large", "The request body is too large.", 413, None, {}, None
    if isinstance(exc, SuspiciousOperation):
        return "validation_error", "The request could not be processed.", 400, None, {}, None
    if isinstance(exc, (OperationalError, InterfaceError)):
        return (
            "unavailable",
            "The service is temporarily unavailable. Try again shortly.",
            503,
            None,
            {"Retry-After": str(RETRY_AFTER_UNAVAILABLE)},
            None,
        )
    if isinstance(exc, drf.APIException):
        return str(exc.default_code), str(exc.detail), exc.status_code, None, {}, None
    return None


def response_for_exception(request, exc):
    """Turn any exception into a JsonResponse in the shared shape; unknown ones become a logged 500."""
    translated = _translate(exc)
    if translated is None:
        logger.error("Unhandled exception on %s %s", request.method, request.path, exc_info=exc)
        return error_response(
            request,
            code="server_error",
            message="Something went wrong on our side. It has been logged.",
            status=500,
        )
    code, message, status, fields, headers, details = translated
    if status == 503:
        logger.warning("Service unavailable on %s: %s", request.path, exc)
    return error_response(
        request, code=code, message=message, status=status, fields=fields, headers=headers, details=details
    )


def api_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every error leaves the API in the shared shape."""
    request = context["request"]
    set_rollback()
    response = response_for_exception(getattr(request, "_request", request), exc)
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response
