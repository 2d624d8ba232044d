"""Error pages: JSON in the shared shape under /api/, friendly HTML elsewhere."""

from django.shortcuts import render

from chatfocus.exceptions import error_response
from chatfocus.middleware import is_api_path

ERRORS = {
    400: ("validation_error", "The request could not be processed.", "Bad request"),
    403: ("permission_denied", "You do not have permission to do this.", "Access denied"),
    404: ("not_found", "Not found.", "Page not found"),
    500: ("server_error", "Something went wrong on our side. It has been logged.", "Something went wrong"),
}


def _error(request, status):
    code, message, title = ERRORS[status]
    if is_api_path(request.path):
        return error_response(request, code=code, message=message, status=status)
    return render(request, "error.html", {"status": status, "title": title, "message": message}, status=status)


def bad_request(request, exception=None):
    return _error(request, 400)


def permission_denied(request, exception=None):
    return _error(request, 403)


def page_not_found(request, exception=None):
    return _error(request, 404)


def server_error(request):
    return _error(request, 500)
