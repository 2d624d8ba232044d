from django.core.management.base import BaseCommand

from billing.services import sync_plans


class Command(BaseCommand):
    help = "Mirror Stripe's products and prices (dj-stripe) and list the prices on sale per tier."

    def handle(self, *args, **options):
        report = sync_plans()
        for line in report:
            self.stdout.write(line)
        if not report:
            self.stderr.write("No price is tagged with a chatfocus_tier product; run billing_bootstrap_stripe.")
            raise SystemExit(1)
