from celery import shared_task

from syncsettings.services import prune_sync_history


@shared_task
def prune_sync_history_task() -> dict:
    """Beat: drop change log rows and tombstones past each user's history window."""
    return prune_sync_history()
