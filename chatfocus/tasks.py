from celery import shared_task

from chatfocus.emails import deliver_email


@shared_task(autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def send_email_task(*, to: str, template: str, context: dict) -> None:
    deliver_email(to=to, template=template, context=context)
