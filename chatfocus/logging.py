"""Request-scoped context (request id, user id, running Celery task) attached to every log line."""

import contextvars
import logging

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
user_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("user_id", default=None)
task_name_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("task_name", default=None)


def bind_user_id(user_id) -> None:
    """Record who is making the current request, for the log lines that follow."""
    user_id_var.set(str(user_id) if user_id is not None else None)


class RequestContextFilter(logging.Filter):
    """Adds request_id and user_id to each record so the JSON formatter prints them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            # django.request logs an error response after the middleware has left the request's context;
            # the request rides along on the record.
            record.request_id = request_id_var.get() or getattr(getattr(record, "request", None), "request_id", None)
        if not hasattr(record, "user_id"):
            record.user_id = user_id_var.get()
        task_name = task_name_var.get()
        if task_name and not hasattr(record, "task"):
            record.task = task_name
        return True


def add_request_id_tag(event, hint):
    """Sentry event processor: the request id as a tag, so an error leads to its log lines (web or task)."""
    request_id = request_id_var.get()
    if request_id:
        event.setdefault("tags", {})["request_id"] = request_id
    return event


class TaskArgumentsFilter(logging.Filter):
    """Drops task arguments from Celery's task log records: email tasks carry reset and confirmation links.

    A logger filter (not a handler filter) so the arguments are gone before any handler, Sentry's
    breadcrumbs included, sees the record; Celery puts them in the record's args and `data` extra.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for attribute in ("args", "data"):
            value = getattr(record, attribute, None)
            if isinstance(value, dict):
                setattr(record, attribute, {k: v for k, v in value.items() if k not in ("args", "kwargs")})
        return True


class CacheOutageFilter(logging.Filter):
    """Turns django-redis's "Exception ignored" (an ERROR with a traceback per cache call) into a one-line WARNING.

    The cache fails open on purpose (IGNORE_EXCEPTIONS): during a Redis outage requests are still
    served, so a traceback for every cache call of every request would only flood the logs and Sentry.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.levelno >= logging.ERROR:
            error = record.exc_info[1]
            record.msg, record.args = "Cache unavailable, request served without it: %s", (error.__cause__ or error,)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True
