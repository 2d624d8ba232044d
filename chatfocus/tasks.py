from celery import shared_task

from chatfocus import cleanup, monitoring
from chatfocus.emails import deliver_email


@shared_task(autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def send_email_task(*, to: str, template: str, context: dict) -> None:
    deliver_email(to=to, template=template, context=context)


@shared_task(ignore_result=True)
def beat_heartbeat_task() -> float:
    """Beat: proves beat, the broker and a worker are alive (exported as chatfocus_beat_heartbeat_timestamp_seconds)."""
    return monitoring.record_heartbeat()


@shared_task
def flush_expired_tokens_task() -> int:
    return cleanup.flush_expired_tokens()


@shared_task
def clear_expired_sessions_task() -> int:
    return cleanup.clear_expired_sessions()


@shared_task
def prune_ended_api_sessions_task() -> int:
    return cleanup.prune_ended_api_sessions()


@shared_task
def prune_webhook_payloads_task() -> int:
    return cleanup.prune_webhook_payloads()
