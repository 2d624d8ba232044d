from django.conf import settings
from django.core.management.base import BaseCommand

from analytics.services import prune_expired_events


class Command(BaseCommand):
    help = "Delete raw analytics events older than ANALYTICS_RETENTION_DAYS (rollups are kept)."

    def handle(self, *args, **options):
        deleted = prune_expired_events()
        self.stdout.write(f"Deleted {deleted} raw events older than {settings.ANALYTICS_RETENTION_DAYS} days.")
