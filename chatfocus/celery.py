"""Celery app: Redis broker when REDIS_URL is set, otherwise tasks run eagerly in-process.

Worker and beat log JSON through Django's LOGGING (not Celery's own text format), and every task
carries the request id of the web request (or beat tick) that queued it, in a message header.
"""

import logging
import logging.config
import os
import uuid

from celery import Celery, signals

from chatfocus.logging import request_id_var, task_name_var

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatfocus.settings")

app = Celery("chatfocus")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

REQUEST_ID_HEADER = "request_id"
logger = logging.getLogger("chatfocus.tasks")
# Context tokens of the task running in this process, by task id, reset when it ends.
_task_context: dict[str, tuple] = {}


@signals.setup_logging.connect
def use_django_logging(loglevel=None, **kwargs):
    """Replaces Celery's text logging with the project's JSON config (a receiver here stops Celery's own)."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:  # --loglevel on the command line wins over LOG_LEVEL
        logging.getLogger().setLevel(loglevel)


@signals.before_task_publish.connect
def attach_request_id(sender=None, headers=None, **kwargs):
    """Stamps the queued task with the current request id; beat's ticks get a fresh one each."""
    if headers is None:
        return
    request_id = headers.get(REQUEST_ID_HEADER) or request_id_var.get() or uuid.uuid4().hex
    headers[REQUEST_ID_HEADER] = request_id
    logger.info("task queued", extra={"request_id": request_id, "task": sender, "task_id": headers.get("id")})


@signals.task_prerun.connect
def bind_task_context(task_id=None, task=None, **kwargs):
    # Eager tasks run inside the request and keep its id; a worker's come from the message header.
    request_id = getattr(task.request, REQUEST_ID_HEADER, None) or request_id_var.get()
    _task_context[task_id] = (request_id_var.set(request_id), task_name_var.set(task.name))


@signals.task_postrun.connect
def unbind_task_context(task_id=None, **kwargs):
    tokens = _task_context.pop(task_id, None)
    if tokens:
        request_id_var.reset(tokens[0])
        task_name_var.reset(tokens[1])


@signals.task_success.connect
def count_success(sender=None, **kwargs):
    from chatfocus.monitoring import record_task_outcome

    record_task_outcome(sender.name, "succeeded")


@signals.task_failure.connect
def count_failure(sender=None, **kwargs):
    from chatfocus.monitoring import record_task_outcome

    record_task_outcome(sender.name, "failed")


@signals.task_retry.connect
def count_retry(sender=None, **kwargs):
    from chatfocus.monitoring import record_task_outcome

    record_task_outcome(sender.name, "retried")
