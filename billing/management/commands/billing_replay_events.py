from django.core.management.base import BaseCommand, CommandError

from billing.webhooks import replay_failed_events


class Command(BaseCommand):
    help = "Process failed Stripe webhook events again (oldest first)."

    def add_arguments(self, parser):
        parser.add_argument("--failed", action="store_true", required=True, help="Replay every failed event.")

    def handle(self, *args, **options):
        outcomes = replay_failed_events()
        for event_id, outcome in outcomes.items():
            self.stdout.write(f"{event_id}: {outcome}")
        still_failed = sum(1 for outcome in outcomes.values() if outcome == "failed")
        if still_failed:
            raise CommandError(f"{still_failed} of {len(outcomes)} events failed again.")
        self.stdout.write(self.style.SUCCESS(f"{len(outcomes)} events replayed."))
