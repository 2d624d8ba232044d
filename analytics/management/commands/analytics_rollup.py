from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from analytics.services import rollup_recent_days


class Command(BaseCommand):
    help = "Recompute the analytics rollups of a UTC day (default yesterday); safe to re-run."

    def add_arguments(self, parser):
        parser.add_argument("--date", help="YYYY-MM-DD; default yesterday (UTC).")
        parser.add_argument("--days", type=int, default=1, help="Also roll up this many days ending on --date.")

    def handle(self, *args, **options):
        try:
            last = date.fromisoformat(options["date"]) if options["date"] else timezone.now().date() - timedelta(1)
        except ValueError:
            raise CommandError("--date must be YYYY-MM-DD.") from None
        if options["days"] < 1:
            raise CommandError("--days must be at least 1.")
        for summary in rollup_recent_days(days=options["days"], last_day=last):
            self.stdout.write(
                f"{summary.day}: {summary.event_rows} event rows, {summary.metric_rows} metric rows, "
                f"DAU {summary.dau}, WAU {summary.wau}, MAU {summary.mau}"
            )
