"""Templated email: text + HTML from templates/emails/, sent by a Celery task after commit."""

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from kombu.exceptions import OperationalError as BrokerUnavailable

logger = logging.getLogger(__name__)


def render_email(*, template: str, context: dict) -> tuple[str, str, str]:
    """(subject, text, html) from emails/<template>_subject.txt, .txt and .html."""
    context = {"api_url": settings.API_URL, **context}
    subject = render_to_string(f"emails/{template}_subject.txt", context).strip()
    text = render_to_string(f"emails/{template}.txt", context)
    html = render_to_string(f"emails/{template}.html", context)
    return " ".join(subject.splitlines()), text, html


def deliver_email(*, to: str, template: str, context: dict) -> None:
    """Render and send now (called by the Celery task)."""
    subject, text, html = render_email(template=template, context=context)
    message = EmailMultiAlternatives(subject=subject, body=text, from_email=settings.DEFAULT_FROM_EMAIL, to=[to])
    message.attach_alternative(html, "text/html")
    message.send()


def _queue_email(*, to: str, template: str, context: dict) -> None:
    from chatfocus.tasks import send_email_task

    try:
        send_email_task.delay(to=to, template=template, context=context)
    except BrokerUnavailable as error:
        # Redis (the broker) is down. The request's transaction has committed, so failing it would
        # only hide that it worked: send from this process instead, and never fail the request.
        logger.warning("Celery broker unreachable, sending the %s email in process: %s", template, error)
        try:
            deliver_email(to=to, template=template, context=context)
        except Exception:
            logger.exception("Could not send the %s email", template)


def send_templated_email(*, to: str, template: str, context: dict | None = None) -> None:
    """Queue an email once the surrounding transaction commits (context must be JSON-serialisable)."""
    transaction.on_commit(lambda: _queue_email(to=to, template=template, context=context or {}))
