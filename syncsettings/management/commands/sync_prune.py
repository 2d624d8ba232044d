from django.core.management.base import BaseCommand

from syncsettings.services import prune_sync_history


class Command(BaseCommand):
    help = "Delete sync change log rows and tombstones older than each user's tier history window."

    def handle(self, *args, **options):
        totals = prune_sync_history()
        self.stdout.write(
            f"Pruned {totals['changes']} log rows and {totals['tombstones']} tombstones for {totals['users']} users."
        )
