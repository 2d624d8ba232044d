"""Billing's own state: each user's subscription summary, the tier audit log and the webhook event log.

dj-stripe mirrors Stripe's objects; these rows hold what our rules need to answer entitlements in one
query (tier, status, period, grace, comp) without reading the mirror on hot paths.
"""

from django.conf import settings
from django.db import models

from billing.tiers import TIER_ORDER

TIER_CHOICES = [(name, name.title()) for name in TIER_ORDER]


class BillingAccount(models.Model):
    """One per user who ever touched billing: their Stripe ids, the subscription's state and any comp grant."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="billing_account"
    )
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_price_id = models.CharField(max_length=255, blank=True)
    # The tier of the subscription's current price and the subscription's Stripe status ("" = none).
    tier = models.CharField(max_length=16, choices=TIER_CHOICES, default="free")
    status = models.CharField(max_length=32, blank=True)
    interval = models.CharField(max_length=8, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    trial_end = models.DateTimeField(null=True, blank=True)
    # Set when the subscription turns past_due; the tier is kept until then.
    grace_until = models.DateTimeField(null=True, blank=True)
    # A downgrade takes effect at period end: the tier already paid for is kept until then.
    paid_tier = models.CharField(max_length=16, choices=TIER_CHOICES, blank=True)
    paid_tier_until = models.DateTimeField(null=True, blank=True)
    # Staff grant: this tier until that date, whatever Stripe says.
    comp_tier = models.CharField(max_length=16, choices=TIER_CHOICES, blank=True)
    comp_until = models.DateTimeField(null=True, blank=True)
    comp_reason = models.CharField(max_length=255, blank=True)
    comp_granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The effective tier last recorded in the audit log (time-based changes are logged by a periodic task).
    effective_tier = models.CharField(max_length=16, choices=TIER_CHOICES, default="free")
    synced_at = models.DateTimeField(null=True, blank=True, help_text="Last time the state was read from Stripe.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_customer_id"],
                condition=~models.Q(stripe_customer_id=""),
                name="billing_one_account_per_customer",
            )
        ]

    def __str__(self):
        return f"billing of {self.user_id}"


class TierChange(models.Model):
    """Audit log: every change of a user's effective tier, with what caused it."""

    class Source(models.TextChoices):
        WEBHOOK = "webhook"
        API = "api"
        CHECKOUT = "checkout"
        ADMIN = "admin"
        RECONCILE = "reconcile"
        EXPIRY = "expiry"
        ACCOUNT_DELETION = "account_deletion"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tier_changes")
    from_tier = models.CharField(max_length=16, choices=TIER_CHOICES)
    to_tier = models.CharField(max_length=16, choices=TIER_CHOICES)
    source = models.CharField(max_length=32, choices=Source.choices)
    stripe_event_id = models.CharField(max_length=255, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.user_id}: {self.from_tier} → {self.to_tier} ({self.source})"


class WebhookEvent(models.Model):
    """A verified Stripe event, stored once by its id; its processing status makes it replayable."""

    class Status(models.TextChoices):
        RECEIVED = "received"
        PROCESSED = "processed"
        IGNORED = "ignored"
        FAILED = "failed"

    id = models.CharField(max_length=255, primary_key=True)
    type = models.CharField(max_length=255, db_index=True)
    livemode = models.BooleanField(default=False)
    stripe_created = models.DateTimeField(null=True, blank=True)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self):
        return f"{self.type} {self.id} ({self.status})"


class Revenue(BillingAccount):
    """Admin entry for the staff revenue report (a proxy: no table of its own)."""

    class Meta:
        proxy = True
        verbose_name = "revenue"
        verbose_name_plural = "revenue"
