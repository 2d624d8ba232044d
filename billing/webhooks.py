"""Stripe webhooks: verify, store once, process in its own transaction, dispatch to services.

1. The `Stripe-Signature` header is checked over the raw body with STRIPE_WEBHOOK_SECRET (its
   timestamp within 300 s of now, either way: the library only refuses old ones) before any lookup,
   storage or "billing configured" check: a bad, missing, stale or future signature is a 400 and
   nothing is written. dj-stripe's own view is not used because it answers 404 without an endpoint row,
   stores the request before validating and, under DEBUG, accepts an `x-djstripe-webhook-secret`
   header in place of the real secret; here no header can replace the secret.
2. A type we handle (HANDLERS act on it, or dj-stripe mirrors it for tables we read: MIRRORED)
   arriving while STRIPE_SECRET_KEY is unset is a 503 `billing_not_configured` (nothing stored;
   Stripe retries later), unless it was processed before. Other types are stored as ignored without
   calling Stripe (dj-stripe's mirroring re-fetches every object).
   The event is stored by its Stripe id (primary key): a duplicate delivery finds the row.
3. Exactly one request processes it: the row is locked with SKIP LOCKED, so a concurrent duplicate
   sees nothing to do and answers 200, and a processed event is never processed again.
4. Processing runs in a savepoint: dj-stripe mirrors the event (its Event log; it re-fetches the
   object from Stripe), then our handlers apply our rules from Stripe's current state. A failure
   rolls the savepoint back, marks the event failed with its traceback (replayable with
   `billing_replay_events --failed`) and answers 500, so Stripe retries too.
"""

import logging
import re
import time
import traceback
from datetime import UTC, datetime

import stripe
from django.conf import settings
from django.db import DataError, transaction
from django.utils import timezone

from billing import services
from billing.models import TierChange, WebhookEvent
from chatfocus import parsers
from chatfocus.exceptions import DomainError, ValidationFailed
from chatfocus.metrics import WEBHOOK_EVENTS

logger = logging.getLogger(__name__)

SOURCE = TierChange.Source.WEBHOOK
EVENT_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
EVENT_TYPE = re.compile(r"[A-Za-z0-9_.]{1,255}")
MAX_CREATED = 253402300799  # 9999-12-31T23:59:59Z
DONE = (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED)


class SignatureInvalid(DomainError):
    code, status, message = "signature_invalid", 400, "The Stripe-Signature header is missing, invalid or too old."


class WebhookProcessingFailed(DomainError):
    code, status, message = "server_error", 500, "Processing the event failed; it is kept for a retry."


def _verify(payload: bytes, signature: str | None) -> None:
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret or not signature:
        raise SignatureInvalid()
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"), signature, secret, tolerance=services.WEBHOOK_TOLERANCE_SECONDS
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as error:
        raise SignatureInvalid() from error
    # verify_header refuses only old timestamps; the header parsed there, so it parses here (the same way).
    timestamp, _signatures = stripe.WebhookSignature._get_timestamp_and_signatures(signature, "v1")
    if timestamp > time.time() + services.WEBHOOK_TOLERANCE_SECONDS:
        raise SignatureInvalid()


def receive_webhook(*, payload: bytes, signature: str | None) -> str:
    """Verify, store and process one delivery; the outcome: processed, ignored or duplicate."""
    try:
        _verify(payload, signature)
    except SignatureInvalid:
        WEBHOOK_EVENTS.labels(type="unknown", outcome="signature_invalid").inc()
        raise
    try:
        event = parsers.loads(payload)
    except parsers.MalformedJSON as error:
        raise ValidationFailed(str(error), code="malformed_json") from error
    if not _is_stripe_event(event):
        raise ValidationFailed("The body is not a Stripe event.")
    if is_handled(event["type"]) and not services.is_billing_configured():
        if WebhookEvent.objects.filter(id=event["id"], status__in=DONE).exists():
            WEBHOOK_EVENTS.labels(type=event["type"], outcome="duplicate").inc()
            return "duplicate"
        WEBHOOK_EVENTS.labels(type=event["type"], outcome="billing_not_configured").inc()
        raise services.BillingNotConfigured()
    try:
        WebhookEvent.objects.get_or_create(
            id=event["id"],
            defaults={
                "type": event["type"],
                "livemode": bool(event.get("livemode")),
                "stripe_created": datetime.fromtimestamp(event["created"], tz=UTC) if event.get("created") else None,
                "payload": event,
            },
        )
    except DataError as error:  # jsonb refuses U+0000 and unpaired surrogates, which JSON allows
        raise ValidationFailed("The body is not a Stripe event.") from error
    return process_event(event_id=event["id"])


def _is_stripe_event(event) -> bool:
    """The envelope of every Stripe event, with an id, type and creation time the event log can store."""
    if not isinstance(event, dict) or event.get("object") != "event":
        return False
    data, created = event.get("data"), event.get("created")
    return (
        isinstance(event.get("id"), str)
        and EVENT_ID.fullmatch(event["id"]) is not None
        and isinstance(event.get("type"), str)
        and EVENT_TYPE.fullmatch(event["type"]) is not None
        and isinstance(data, dict)
        and isinstance(data.get("object"), dict)
        and (created is None or (type(created) is int and 0 <= created <= MAX_CREATED))
    )


def process_event(*, event_id: str) -> str:
    """Process a stored event unless it is done or being processed; raises WebhookProcessingFailed on failure."""
    with transaction.atomic():
        stored = (
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(id=event_id, status__in=[WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED])
            .first()
        )
        if stored is None:
            WEBHOOK_EVENTS.labels(type=_type_of(event_id), outcome="duplicate").inc()
            return "duplicate"
        stored.attempts += 1
        failure = None
        try:
            with transaction.atomic():
                handled = _dispatch(stored)
        except Exception as error:
            logger.exception("Stripe event %s (%s) failed", stored.id, stored.type)
            failure = error
            stored.status, stored.error = WebhookEvent.Status.FAILED, traceback.format_exc()
        else:
            stored.status = WebhookEvent.Status.PROCESSED if handled else WebhookEvent.Status.IGNORED
            stored.error, stored.processed_at = "", timezone.now()
            if not handled:
                logger.info("Stripe event %s of unhandled type %s", stored.id, stored.type)
        stored.save()
    WEBHOOK_EVENTS.labels(type=stored.type, outcome=stored.status).inc()
    if failure is not None:
        raise WebhookProcessingFailed() from failure
    return stored.status


def replay_failed_events() -> dict[str, str]:
    """Process every failed event again, oldest first: {event id: outcome}."""
    outcomes = {}
    failed = WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED).order_by("received_at")
    for event_id in failed.values_list("id", flat=True):
        try:
            outcomes[event_id] = process_event(event_id=event_id)
        except WebhookProcessingFailed:
            outcomes[event_id] = WebhookEvent.Status.FAILED
    return outcomes


def _type_of(event_id: str) -> str:
    return WebhookEvent.objects.filter(id=event_id).values_list("type", flat=True).first() or "unknown"


def _dispatch(stored: WebhookEvent) -> bool:
    """Mirror the event with dj-stripe, then apply our rules; False for types we do not act on."""
    from djstripe.models import Event

    endpoint = services.ensure_webhook_endpoint()
    if not is_handled(stored.type):
        return False
    account = endpoint.djstripe_owner_account if endpoint else None
    api_key = (account.default_api_key if account else None) or settings.STRIPE_SECRET_KEY
    try:
        Event.process(stored.payload, api_key=api_key)
    except stripe.InvalidRequestError as error:
        # An object the event names is gone from Stripe since (a late checkout.session.completed of a
        # deleted customer: dj-stripe writes the customer's metadata back). Every redelivery would fail
        # the same way; dj-stripe rolled its mirror back, and our rules read Stripe's current state.
        if error.code != "resource_missing":
            raise
        logger.warning("dj-stripe skipped Stripe event %s (%s): %s", stored.id, stored.type, error)
    handler = HANDLERS.get(stored.type)
    if handler is None:
        return False  # mirrored only
    handler(stored.payload["data"]["object"], event_id=stored.id, event_created=stored.stripe_created)
    return True


def _id(value) -> str:
    return value if isinstance(value, str) or value is None else value.get("id")


def _on_checkout_completed(session: dict, **event):
    if session.get("mode") != "subscription" or not session.get("subscription"):
        return
    user_id = session.get("client_reference_id") or (session.get("metadata") or {}).get("djstripe_subscriber")
    services.refresh_subscription(
        subscription_id=_id(session["subscription"]),
        customer_id=_id(session.get("customer")) or "",
        user_id_hint=user_id,
        source=SOURCE,
        **event,
    )


def _on_subscription(subscription: dict, **event):
    return services.refresh_subscription(
        subscription_id=subscription["id"],
        customer_id=_id(subscription.get("customer")) or "",
        user_id_hint=(subscription.get("metadata") or {}).get("djstripe_subscriber"),
        source=SOURCE,
        fallback=subscription,
        **event,
    )


def _on_trial_will_end(subscription: dict, **event):
    services.notify_trial_will_end(account=_on_subscription(subscription, **event))


def _invoice_account(invoice: dict, **event):
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    subscription_id = _id(details.get("subscription"))
    if not subscription_id:
        return None
    return services.refresh_subscription(
        subscription_id=subscription_id,
        customer_id=_id(invoice.get("customer")) or "",
        user_id_hint=(details.get("metadata") or {}).get("djstripe_subscriber"),
        source=SOURCE,
        **event,
    )


def _on_invoice_paid(invoice: dict, **event):
    _invoice_account(invoice, **event)


def _on_payment_failed(invoice: dict, **event):
    services.notify_payment_failed(account=_invoice_account(invoice, **event))


def _on_payment_action_required(invoice: dict, **event):
    account = _invoice_account(invoice, **event)
    services.notify_payment_action_required(account=account, invoice_url=invoice.get("hosted_invoice_url") or "")


def _on_customer_deleted(customer: dict, event_id: str, **event):
    services.forget_customer(customer_id=customer["id"], event_id=event_id)


HANDLERS = {
    "checkout.session.completed": _on_checkout_completed,
    "customer.subscription.created": _on_subscription,
    "customer.subscription.updated": _on_subscription,
    "customer.subscription.deleted": _on_subscription,
    "customer.subscription.trial_will_end": _on_trial_will_end,
    "invoice.paid": _on_invoice_paid,
    "invoice.payment_failed": _on_payment_failed,
    "invoice.payment_action_required": _on_payment_action_required,
    "customer.deleted": _on_customer_deleted,
}
# Types dj-stripe mirrors for the tables we read (invoices, customers and payment methods, plans, refunds)
# though no rule of ours acts on them.
MIRRORED = ("customer.", "invoice.", "payment_method.", "price.", "product.", "charge.")


def is_handled(event_type: str) -> bool:
    """Whether processing this type needs Stripe: a rule of ours acts on it or dj-stripe mirrors it."""
    return event_type in HANDLERS or event_type.startswith(MIRRORED)
