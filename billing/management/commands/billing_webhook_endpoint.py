from django.core.management.base import BaseCommand

from billing.services import ensure_webhook_endpoint


class Command(BaseCommand):
    help = "Create or update dj-stripe's webhook endpoint row from STRIPE_WEBHOOK_SECRET and API_URL (release phase)."

    def handle(self, *args, **options):
        endpoint = ensure_webhook_endpoint()
        if endpoint is None:
            self.stdout.write("STRIPE_WEBHOOK_SECRET is not set: no webhook endpoint.")
            return
        self.stdout.write(f"Webhook endpoint {endpoint.id}: {endpoint.url}")
