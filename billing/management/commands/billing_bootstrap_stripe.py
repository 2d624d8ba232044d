from django.core.management.base import BaseCommand

from billing.services import bootstrap_stripe


class Command(BaseCommand):
    help = "Create the Pro and Premium products and prices in the Stripe account STRIPE_SECRET_KEY points at."

    def handle(self, *args, **options):
        created = bootstrap_stripe()
        for line in created:
            self.stdout.write(f"created {line}")
        self.stdout.write(self.style.SUCCESS(f"{len(created)} objects created; plans mirrored."))
