"""Sync data per user: state (cursor, counters), entries (the document), change log, devices, snapshots.

Values of `secret.` keys are stored encrypted (see syncsettings.crypto) in every JSON column here.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class SyncState(models.Model):
    """One row per user: the gapless version counter (the pull cursor) and usage counters; the lock of a push."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="sync_state"
    )
    version = models.BigIntegerField(default=0)
    bytes_used = models.BigIntegerField(default=0)
    key_count = models.IntegerField(default=0)
    # Tombstones at or below this version were pruned: older cursors must start over (410).
    pruned_version = models.BigIntegerField(default=0)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "sync state"
        constraints = [
            models.CheckConstraint(condition=Q(version__gte=0), name="syncstate_version_nonnegative"),
            models.CheckConstraint(
                condition=Q(pruned_version__lte=models.F("version")), name="syncstate_pruned_le_version"
            ),
        ]

    def __str__(self):
        return f"sync state of {self.user_id} at v{self.version}"


class Entry(models.Model):
    """The current value (or tombstone) of one key, with the version, HLC and device that last wrote it."""

    # No index of its own: the unique (user, key) constraint below leads with user, and every row a
    # push writes would update one index more.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=128)
    value = models.JSONField(null=True, blank=True)
    deleted = models.BooleanField(default=False)
    # Bytes the key costs against the quota: len(key) + its compact JSON in UTF-8 (0 for tombstones).
    size = models.IntegerField(default=0)
    version = models.BigIntegerField()
    hlc_ms = models.BigIntegerField()
    hlc_counter = models.IntegerField()
    device_id = models.CharField(max_length=64)
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "entries"
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="syncentry_user_key_unique")]
        indexes = [
            # Pull: entries changed after a version, in version order.
            models.Index(fields=["user", "version"], name="syncentry_user_version"),
            models.Index(fields=["updated_at"], condition=Q(deleted=True), name="syncentry_tombstone_age"),
        ]

    def __str__(self):
        return f"{self.key} v{self.version}"


class Change(models.Model):
    """Append-only log of every op a user sent (applied or superseded), unique per op_id."""

    APPLIED, SUPERSEDED = "applied", "superseded"
    STATUSES = [(APPLIED, "applied"), (SUPERSEDED, "superseded")]
    OPS = [("set", "set"), ("delete", "delete"), ("incr", "incr")]

    # No index of its own: the unique (user, op_id) constraint below leads with user, and every row a
    # push writes would update one index more.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    op_id = models.CharField(max_length=64)
    key = models.CharField(max_length=128)
    op = models.CharField(max_length=8, choices=OPS)
    value = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=STATUSES)
    version = models.BigIntegerField(null=True, blank=True)
    hlc_ms = models.BigIntegerField()
    hlc_counter = models.IntegerField()
    device_id = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "op_id"], name="syncchange_user_op_unique")]
        indexes = [
            models.Index(fields=["user", "key", "-id"], name="syncchange_history"),
            models.Index(fields=["created_at"], name="syncchange_created"),
        ]

    def __str__(self):
        return f"{self.op} {self.key} ({self.status})"


class Device(models.Model):
    """A browser profile that syncs; counts against the tier's device limit from registration or first push."""

    # No index of its own: the unique (user, device_id) constraint below leads with user.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    device_id = models.CharField(max_length=64)
    name = models.CharField(max_length=100, blank=True)
    browser = models.CharField(max_length=50, blank=True)
    platform = models.CharField(max_length=50, blank=True)
    created_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "device_id"], name="syncdevice_user_device_unique")]

    def __str__(self):
        return self.name or self.device_id


class Snapshot(models.Model):
    """A copy of the document at a version: made by the user, before a PUT, or before a restore."""

    MANUAL, AUTO, PRE_RESTORE = "manual", "auto", "pre_restore"
    REASONS = [(MANUAL, "manual"), (AUTO, "auto (before replace)"), (PRE_RESTORE, "auto (before restore)")]

    # No index of its own: the (user, -created_at) index below leads with user.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    document = models.JSONField(default=dict)
    version = models.BigIntegerField()
    key_count = models.IntegerField(default=0)
    bytes_used = models.BigIntegerField(default=0)
    reason = models.CharField(max_length=12, choices=REASONS)
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"], name="syncsnapshot_user_created")]

    def __str__(self):
        return self.label or f"{self.reason} snapshot at v{self.version}"
