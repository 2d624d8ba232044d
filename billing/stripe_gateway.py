"""The one module that calls Stripe: every call carries our key, API version and an idempotency key.

The HTTP timeout is set once on the stripe library's client (see BillingConfig.ready), so dj-stripe's
own calls get it too. A Stripe failure becomes `UpstreamError` (502): callers call Stripe before
they write anything, so a failure leaves no local change.
"""

import logging
import uuid

import stripe
from django.conf import settings

from chatfocus.exceptions import UpstreamError

logger = logging.getLogger(__name__)

# Retries reuse the request's idempotency key, so they can never double-charge or double-create.
MAX_NETWORK_RETRIES = 2


def _options(idempotency_key: str | None = None) -> dict:
    return {
        "api_key": settings.STRIPE_SECRET_KEY,
        "stripe_version": settings.STRIPE_API_VERSION,
        "idempotency_key": idempotency_key or f"cf-{uuid.uuid4()}",
        "max_network_retries": MAX_NETWORK_RETRIES,
    }


def _call(operation: str, function, *args, idempotency_key: str | None = None, **params):
    try:
        return function(*args, **params, **_options(idempotency_key))
    except stripe.StripeError as error:
        logger.warning("Stripe %s failed: %s", operation, error, extra={"stripe_code": getattr(error, "code", None)})
        raise UpstreamError(
            "The payment provider failed. Nothing was changed; try again in a moment.",
            details={"operation": operation, "stripe_code": getattr(error, "code", None)},
        ) from error


def is_missing(error: UpstreamError) -> bool:
    """True when Stripe answered that the object does not exist."""
    return isinstance(error.__cause__, stripe.InvalidRequestError) and error.__cause__.code == "resource_missing"


# --- Customers ----------------------------------------------------------------------------------


def create_customer(*, user_id: str, attempt: str, email: str, name: str):
    return _call(
        "customer.create",
        stripe.Customer.create,
        email=email,
        name=name or None,
        metadata={"djstripe_subscriber": user_id},
        idempotency_key=f"cf-customer-{attempt}",
    )


def retrieve_customer(*, customer_id: str):
    return _call("customer.retrieve", stripe.Customer.retrieve, customer_id)


def list_payment_methods(*, customer_id: str) -> list:
    page = _call("payment_method.list", stripe.Customer.list_payment_methods, customer_id, limit=100)
    return list(page.data)


def detach_payment_method(*, payment_method_id: str):
    return _call("payment_method.detach", stripe.PaymentMethod.detach, payment_method_id)


# --- Checkout and portal ------------------------------------------------------------------------


def create_checkout_session(
    *,
    customer_id: str,
    price_id: str,
    user_id: str,
    success_url: str,
    cancel_url: str,
    trial_days: int = 0,
    allow_promotion_codes: bool = False,
):
    # Stripe does not copy session metadata to the subscription: the link to the user goes on both.
    subscription_data = {"metadata": {"djstripe_subscriber": user_id}}
    if trial_days:
        subscription_data["trial_period_days"] = trial_days
    return _call(
        "checkout.session.create",
        stripe.checkout.Session.create,
        mode="subscription",
        customer=customer_id,
        client_reference_id=user_id,
        line_items=[{"price": price_id, "quantity": 1}],
        success_url=success_url,
        cancel_url=cancel_url,
        metadata={"djstripe_subscriber": user_id},
        subscription_data=subscription_data,
        allow_promotion_codes=allow_promotion_codes,
    )


def retrieve_checkout_session(*, session_id: str):
    return _call("checkout.session.retrieve", stripe.checkout.Session.retrieve, session_id)


def create_portal_session(*, customer_id: str, return_url: str):
    return _call(
        "billing_portal.session.create",
        stripe.billing_portal.Session.create,
        customer=customer_id,
        return_url=return_url,
    )


# --- Subscriptions ------------------------------------------------------------------------------


def retrieve_subscription(*, subscription_id: str):
    return _call("subscription.retrieve", stripe.Subscription.retrieve, subscription_id)


def list_subscriptions(*, customer_id: str) -> list:
    page = _call("subscription.list", stripe.Subscription.list, customer=customer_id, status="all", limit=100)
    return list(page.data)


def modify_subscription(*, subscription_id: str, **params):
    return _call("subscription.modify", stripe.Subscription.modify, subscription_id, **params)


def cancel_subscription_now(*, subscription_id: str):
    return _call("subscription.cancel", stripe.Subscription.cancel, subscription_id, prorate=False)


# --- Refunds (staff) ----------------------------------------------------------------------------


def last_paid_invoice(*, customer_id: str):
    """The customer's newest paid invoice, or None."""
    page = _call("invoice.list", stripe.Invoice.list, customer=customer_id, status="paid", limit=1)
    return page.data[0] if page.data else None


def list_invoice_payments(*, invoice_id: str) -> list:
    page = _call("invoice_payment.list", stripe.InvoicePayment.list, invoice=invoice_id, status="paid", limit=100)
    return list(page.data)


def create_refund(*, payment_intent_id: str, amount: int, idempotency_key: str, metadata: dict):
    return _call(
        "refund.create",
        stripe.Refund.create,
        payment_intent=payment_intent_id,
        amount=amount,
        reason="requested_by_customer",
        metadata=metadata,
        idempotency_key=idempotency_key,
    )


# --- Plan-change previews -----------------------------------------------------------------------


def preview_invoice(*, customer_id: str, subscription_id: str, items: list[dict], proration_behavior: str):
    """Stripe's preview of the invoice a subscription change would produce (nothing is created)."""
    return _call(
        "invoice.create_preview",
        stripe.Invoice.create_preview,
        customer=customer_id,
        subscription=subscription_id,
        subscription_details={"items": items, "proration_behavior": proration_behavior},
    )


# --- Catalogue ----------------------------------------------------------------------------------


def list_products() -> list:
    return list(_call("product.list", stripe.Product.list, limit=100).data)


def list_prices() -> list:
    return list(_call("price.list", stripe.Price.list, limit=100, expand=["data.product"]).data)


def retrieve_price(*, price_id: str):
    return _call("price.retrieve", stripe.Price.retrieve, price_id, expand=["product"])


def create_product(*, name: str, tier: str):
    return _call(
        "product.create",
        stripe.Product.create,
        name=name,
        metadata={"chatfocus_tier": tier},
        idempotency_key=f"cf-bootstrap-product-{tier}",
    )


def create_price(*, product_id: str, tier: str, interval: str, unit_amount: int, currency: str):
    return _call(
        "price.create",
        stripe.Price.create,
        product=product_id,
        unit_amount=unit_amount,
        currency=currency,
        recurring={"interval": interval},
        lookup_key=f"chatfocus_{tier}_{interval}",
        metadata={"chatfocus_tier": tier},
        idempotency_key=f"cf-bootstrap-price-{tier}-{interval}-{unit_amount}-{currency}",
    )
