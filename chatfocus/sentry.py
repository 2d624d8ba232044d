"""Sentry setup: error reports carry the request id and never a password, token, key or secret value."""

from urllib.parse import parse_qsl, urlencode, urlsplit

from django.conf import settings
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

from chatfocus.logging import add_request_id_tag

# Field names whose values never leave: Sentry's defaults plus the names our API and pages use.
DENYLIST = [
    *DEFAULT_DENYLIST,
    "current_password",
    "new_password",
    "password1",
    "password2",
    "refresh",
    "access",
    "code",
    "key",
    "token",
    "state",
    "client_secret",
    "id_token",
    "access_token",
    "refresh_token",
    "recovery_code",
    "stripe-signature",
    "http_stripe_signature",
]
# Sync keys whose values are encrypted at rest (syncsettings.crypto.SECRET_PREFIX).
SECRET_KEY_PREFIX = "secret."
FILTERED = "[Filtered]"


def body_free_prefixes() -> tuple[str, ...]:
    """Paths whose request bodies are never sent: credentials, tokens, codes and synced secrets travel there."""
    return (
        "/api/auth/",
        "/api/users/",
        "/api/sync/",
        "/api/subscriptions/webhook",
        "/account/",
        f"/{settings.ADMIN_URL}",
    )


class Scrubber(EventScrubber):
    """Sentry's scrubber over our denylist, recursive, also for `secret.*` keys and query strings."""

    def __init__(self):
        super().__init__(denylist=list(DENYLIST), recursive=True)

    def scrub_dict(self, d) -> None:
        if isinstance(d, dict):
            for key in d:
                if isinstance(key, str) and key.lower().startswith(SECRET_KEY_PREFIX):
                    d[key] = FILTERED
        super().scrub_dict(d)

    def scrub_query_string(self, query: str) -> str:
        return urlencode(
            [
                (name, FILTERED if name.lower() in self.denylist else value)
                for name, value in parse_qsl(query, keep_blank_values=True)
            ]
        )

    def scrub_request(self, event) -> None:
        super().scrub_request(event)
        request = event.get("request")
        if not isinstance(request, dict):
            return
        if isinstance(request.get("query_string"), str):
            request["query_string"] = self.scrub_query_string(request["query_string"])
        url = request.get("url")
        path = event.get("transaction") or ""
        if isinstance(url, str):
            base, _, query = url.partition("?")
            if query:
                request["url"] = f"{base}?{self.scrub_query_string(query)}"
            path = urlsplit(base).path
        # Without a URL (an event raised outside the WSGI handler) the route tells where; nowhere known: no body.
        if not path.startswith("/") or path.startswith(body_free_prefixes()):
            request.pop("data", None)


def init_sentry(dsn: str, **options) -> None:
    """Initialise the SDK with our integrations and scrubbing; `options` pass through (release, transport…)."""
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        # monitor_beat_tasks: Sentry Crons sees each beat task start and finish (a missed run alerts).
        integrations=[DjangoIntegration(), CeleryIntegration(monitor_beat_tasks=True)],
        send_default_pii=False,
        event_scrubber=Scrubber(),
        # Frame locals hold request data under any name (ops, value, data): no denylist can see them.
        include_local_variables=False,
        **options,
    )
    sentry_sdk.get_global_scope().add_event_processor(add_request_id_tag)
