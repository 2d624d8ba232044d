"""Business counters exported at /metrics; any app increments them (multiprocess-safe)."""

from prometheus_client import Counter

SIGNUPS = Counter("chatfocus_signups_total", "Accounts created.", ["method"])
LOGINS = Counter("chatfocus_logins_total", "Login attempts.", ["method", "outcome"])
SYNC_PUSHES = Counter("chatfocus_sync_pushes_total", "Sync push requests.", ["outcome"])
SYNC_OPS = Counter("chatfocus_sync_ops_total", "Sync ops by result status.", ["status"])
WEBHOOK_EVENTS = Counter("chatfocus_webhook_events_total", "Stripe webhook events.", ["type", "outcome"])
ANALYTICS_EVENTS = Counter("chatfocus_analytics_events_total", "Analytics events received.", ["outcome"])
