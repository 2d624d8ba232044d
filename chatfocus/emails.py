"""Templated email: text + HTML from templates/emails/, sent by a Celery task after commit."""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string


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


def send_templated_email(*, to: str, template: str, context: dict | None = None) -> None:
    """Queue an email once the surrounding transaction commits (context must be JSON-serialisable)."""
    from chatfocus.tasks import send_email_task

    transaction.on_commit(lambda: send_email_task.delay(to=to, template=template, context=context or {}))
