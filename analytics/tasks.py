from celery import shared_task

from analytics.services import prune_expired_events, rollup_recent_days


@shared_task
def rollup_recent_days_task(days: int = 2) -> int:
    """Beat: refresh the rollups of the last `days` UTC days (today included)."""
    return len(rollup_recent_days(days=days))


@shared_task
def prune_expired_events_task() -> int:
    """Beat: delete raw events past ANALYTICS_RETENTION_DAYS."""
    return prune_expired_events()
