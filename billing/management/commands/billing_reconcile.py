from django.core.management.base import BaseCommand

from billing.services import reconcile_accounts


class Command(BaseCommand):
    help = "Re-read every live subscription from Stripe, fix drift and report what changed."

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="Also re-read ended subscriptions.")

    def handle(self, *args, **options):
        report = reconcile_accounts(only_live=not options["all"])
        for line in report:
            changes = ", ".join(f"{name}: {old!s} → {new!s}" for name, (old, new) in line["changes"].items())
            self.stdout.write(f"{line['user_id']}: {changes}")
        self.stdout.write(self.style.SUCCESS(f"{len(report)} accounts fixed."))
