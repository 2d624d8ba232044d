"""Error pages: JSON in the shared shape under /api/, friendly HTML elsewhere."""

import sys

from django.db import InterfaceError, OperationalError
from django.shortcuts import render

from chatfocus.exceptions import RETRY_AFTER_UNAVAILABLE, error_response
from chatfocus.middleware import is_api_path

ERRORS = {
    400: ("validation_error", "The request could not be processed.", "Bad request"),
    403: ("permission_denied", "You do not have permission to do this.", "Access denied"),
    404: ("not_found", "Not found.", "Page not found"),
    500: ("server_error", "Something went wrong on our side. It has been logged.", "Something went wrong"),
    503: ("unavailable", "The service is temporarily unavailable. Try again shortly.", "Temporarily unavailable"),
}


def _error(request, status):
    code, message, title = ERRORS[status]
    headers = {"Retry-After": str(RETRY_AFTER_UNAVAILABLE)} if status == 503 else {}
    if is_api_path(request.path):
        return error_response(request, code=code, message=message, status=status, headers=headers)
    response = render(request, "error.html", {"status": status, "title": title, "message": message}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def bad_request(request, exception=None):
    return _error(request, 400)


def permission_denied(request, exception=None):
    return _error(request, 403)


def page_not_found(request, exception=None):
    return _error(request, 404)


def server_error(request):
    # Django calls this inside its `except`: an unreachable database (hosted pages, middleware) is a
    # documented 503, not a bug.
    if isinstance(sys.exc_info()[1], (OperationalError, InterfaceError)):
        return _error(request, 503)
    return _error(request, 500)
