"""Analytics data: the event registry, raw events (pruned) and anonymous daily rollups (kept)."""

from django.core.exceptions import ValidationError
from django.db import models


class EventDefinition(models.Model):
    """A name clients may send; metrics carry a numeric `value` in milliseconds."""

    EVENT = "event"
    METRIC = "metric"
    KINDS = [(EVENT, "Event"), (METRIC, "Metric")]

    name = models.SlugField(max_length=64, unique=True, allow_unicode=False)
    kind = models.CharField(max_length=8, choices=KINDS, default=EVENT)
    description = models.TextField(blank=True)
    allowed_props = models.JSONField(
        default=list, blank=True, help_text="Property names clients may send with this event (a JSON list)."
    )
    active = models.BooleanField(default=True, help_text="Inactive names are rejected as unknown.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self):
        return self.name

    def clean(self):
        props = self.allowed_props
        if not isinstance(props, list) or not all(isinstance(p, str) and 0 < len(p) <= 64 for p in props):
            raise ValidationError({"allowed_props": 'A JSON list of property names, e.g. ["surface"].'})


class Event(models.Model):
    """One raw client event of an opted-in user; deleted with the account and after the retention period."""

    event_id = models.UUIDField(help_text="Client-generated id; a resend is a duplicate.")
    # A plain column, not a foreign key: accounts deletes a user's events through
    # analytics.services.delete_user_events, and ingest never joins users.
    user_id = models.UUIDField()
    name = models.CharField(max_length=64)
    ts = models.DateTimeField()
    received_at = models.DateTimeField()
    props = models.JSONField(default=dict)
    value = models.FloatField(null=True)
    tier = models.CharField(max_length=16)
    client_version = models.CharField(max_length=32)
    client_browser = models.CharField(max_length=32, blank=True)
    client_os = models.CharField(max_length=32, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "event_id"], name="analytics_event_user_event_unique")
        ]
        indexes = [models.Index(fields=["ts"]), models.Index(fields=["name", "ts"])]

    def __str__(self):
        return f"{self.name} at {self.ts:%Y-%m-%d %H:%M:%S}"


class DailyEventRollup(models.Model):
    """Events per day × name × tier × client version: how often and by how many users."""

    day = models.DateField()
    name = models.CharField(max_length=64)
    tier = models.CharField(max_length=16)
    client_version = models.CharField(max_length=32)
    count = models.PositiveIntegerField()
    unique_users = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "name", "tier", "client_version"], name="analytics_event_rollup_unique"
            )
        ]
        ordering = ["-day", "name", "tier", "client_version"]

    def __str__(self):
        return f"{self.day} {self.name} {self.tier} {self.client_version}: {self.count}"


class DailyActiveUsers(models.Model):
    """Distinct users with any event on the day, in the 7 days and in the 30 days ending on it."""

    day = models.DateField(unique=True)
    dau = models.PositiveIntegerField()
    wau = models.PositiveIntegerField()
    mau = models.PositiveIntegerField()

    class Meta:
        ordering = ["-day"]
        verbose_name_plural = "daily active users"

    def __str__(self):
        return f"{self.day}: {self.dau} / {self.wau} / {self.mau}"


class DailyMetricRollup(models.Model):
    """Percentiles of a performance metric's values (ms) on one day."""

    day = models.DateField()
    name = models.CharField(max_length=64)
    count = models.PositiveIntegerField()
    p50 = models.FloatField()
    p95 = models.FloatField()
    p99 = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "name"], name="analytics_metric_rollup_unique")]
        ordering = ["-day", "name"]

    def __str__(self):
        return f"{self.day} {self.name}: p50 {self.p50:.0f} ms"


class Dashboard(DailyActiveUsers):
    """Admin entry for the staff dashboard (a proxy: no table of its own)."""

    class Meta:
        proxy = True
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"
