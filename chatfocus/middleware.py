"""Middleware that keeps the API's contract: request ids, body limits, one error shape."""

import io
import logging
import re
import time
import uuid

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.utils.functional import SimpleLazyObject, empty

from chatfocus.exceptions import error_response, response_for_exception
from chatfocus.logging import bind_user_id, request_id_var, user_id_var

request_logger = logging.getLogger("chatfocus.request")

SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


# URL parameters that are credentials: the keys in allauth's email confirmation and password reset links.
SECRET_URL_PARAMETERS = ("key",)


def loggable_path(request) -> str:
    """The request path with credential parameters masked, so log readers cannot use an emailed link."""
    path = request.path
    match = getattr(request, "resolver_match", None)
    for name in SECRET_URL_PARAMETERS:
        value = match.kwargs.get(name) if match is not None else None
        if value:
            path = path.replace(str(value), "***")
    return path


def resolved_user_id(request):
    """The id of a user this request already identified (DRF or the session), never forcing a lookup."""
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        user = None if user._wrapped is empty else user._wrapped
    return user.id if getattr(user, "is_authenticated", False) else None


class RequestIDMiddleware:
    """Takes a sane X-Request-ID or makes one, echoes it, and logs one line per request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request.request_id = incoming if SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request_token = request_id_var.set(request.request_id)
        user_token = user_id_var.set(None)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request.request_id
            if request.method == "HEAD" and not response.streaming:
                strip_body(response)
            if user_id_var.get() is None:
                bind_user_id(resolved_user_id(request))
            request_logger.info(
                "request",
                extra={
                    "method": request.method,
                    "path": loggable_path(request),
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            return response
        finally:
            request_id_var.reset(request_token)
            user_id_var.reset(user_token)


def strip_body(response) -> None:
    """A response to HEAD has no body (gunicorn warns of each one that has); a success keeps GET's length."""
    length = len(response.content)
    response.content = b""
    response["Content-Length"] = str(length if response.status_code < 300 else 0)


class ApiHostMiddleware:
    """A Host outside ALLOWED_HOSTS on /api/ is a 400 in the error shape, with DEBUG on too.

    Django raises DisallowedHost from the first `get_host()` (SecurityMiddleware, CommonMiddleware) and,
    under DEBUG, answers with its HTML debug page: settings and paths to whoever sent a forged Host.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if is_api_path(request.path):
            try:
                request.get_host()
            except DisallowedHost:
                return error_response(
                    request,
                    code="validation_error",
                    message="The Host header is not a host this server answers for.",
                    status=400,
                    fields={"Host": ["Not an allowed host."]},
                )
        return self.get_response(request)


class BodySizeLimitMiddleware:
    """413 in the error shape before the body is read: by Content-Length, or a capped read when chunked."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.default_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        self.limits = sorted(settings.API_BODY_LIMITS.items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit
        return self.default_limit

    def too_large(self, request, limit):
        return error_response(
            request,
            code="payload_too_large",
            message=f"The request body is larger than this endpoint accepts ({limit} bytes).",
            status=413,
            details={"limit_bytes": limit},
        )

    def __call__(self, request):
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return self.get_response(request)
        limit = self.limit_for(request.path)
        raw_length = request.META.get("CONTENT_LENGTH") or ""
        if raw_length:
            try:
                length = int(raw_length)
            except ValueError:
                return error_response(
                    request, code="validation_error", message="Invalid Content-Length header.", status=400
                )
            if length > limit:
                return self.too_large(request, limit)
        elif "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = request.META["wsgi.input"].read(limit + 1)
            if len(body) > limit:
                return self.too_large(request, limit)
            # Django reads nothing without a Content-Length: hand it the capped body we read.
            request.META["CONTENT_LENGTH"] = str(len(body))
            request._stream = io.BytesIO(body)
            request._read_started = False
        return self.get_response(request)


class ApiExceptionMiddleware:
    """What escapes DRF under /api/ (and DB outages anywhere in it) still answers in the error shape."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_api_path(request.path):
            return None
        return response_for_exception(request, exception)
