"""A small stateful fake of the Stripe API, installed as the stripe library's HTTP client.

It speaks the current API shapes (billing period on subscription items, an invoice's subscription
under `parent.subscription_details`), answers the expansions dj-stripe asks for when it re-fetches,
and records every request (method, path, params, Idempotency-Key). Anything it does not know raises
`UnsupportedStripeCall`, so a call the code forgot to expect fails the test loudly.
"""

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import stripe

API_VERSION = "2026-08-26.dahlia"
INTERVAL_SECONDS = {"month": 30 * 86400, "year": 365 * 86400}


class UnsupportedStripeCall(AssertionError):
    pass


@dataclass
class Request:
    method: str
    path: str
    params: dict
    idempotency_key: str | None


def parse_params(encoded: str) -> dict:
    """Stripe's form encoding (`a[b][0][c]=v`) back to nested dicts and lists."""
    root: dict = {}
    for key, value in parse_qsl(encoded, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _listify(root)


def _listify(node):
    if isinstance(node, dict):
        node = {key: _listify(value) for key, value in node.items()}
        if node and all(key.isdigit() for key in node):
            return [node[key] for key in sorted(node, key=int)]
    return node


def _bool(value) -> bool:
    return value in (True, "true", "True", "1")


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header value for these exact bytes (Stripe's t=…,v1=HMAC-SHA256 scheme)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class StripeFake(stripe.HTTPClient):
    name = "chatfocus-stripe-fake"

    def __init__(self):
        super().__init__()
        self.requests: list[Request] = []
        self.objects: dict[str, dict] = {}
        self.failures: list[tuple[str, str, int, str]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.account = {
            "id": "acct_chatfocusfake",
            "object": "account",
            "type": "standard",
            "country": "US",
            "default_currency": "usd",
            "email": "billing@chatfocus.test",
            "charges_enabled": True,
            "payouts_enabled": True,
            "details_submitted": True,
            "business_profile": {"name": "ChatFocus (fake)"},
            "settings": {"dashboard": {"display_name": "ChatFocus (fake)"}},
            "created": int(time.time()),
        }

    # --- the HTTPClient interface -------------------------------------------------------------

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        parts = urlsplit(url)
        params = parse_params(post_data if method == "post" else parts.query or "")
        path = parts.path
        with self._lock:
            recorded = json.loads(json.dumps(params))
            self.requests.append(Request(method.upper(), path, recorded, (headers or {}).get("Idempotency-Key")))
            for fail_method, prefix, status, code in self.failures:
                if fail_method == method.upper() and path.startswith(prefix):
                    body = {"error": {"type": "api_error", "code": code, "message": f"Fake failure of {path}"}}
                    return json.dumps(body), status, {"Stripe-Should-Retry": "false", "Request-Id": "req_fake"}
            status, body = self._route(method.upper(), path, params)
        return json.dumps(body), status, {"Request-Id": f"req_{next(self._ids)}"}

    def request_stream(self, method, url, headers, post_data=None, *, _usage=None):
        raise UnsupportedStripeCall(f"Streaming {method} {url}")

    def close(self):
        pass

    # --- test helpers -------------------------------------------------------------------------

    def fail(self, method: str, path_prefix: str, *, status: int = 500, code: str = "fake_failure") -> None:
        """Answer every matching request with an error until `failures` is cleared."""
        self.failures.append((method, path_prefix, status, code))

    def calls(self, method: str, path_prefix: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def seed_catalog(self) -> dict[tuple[str, str], str]:
        """Pro and Premium products with monthly and yearly prices: {(tier, interval): price id}."""
        prices = {}
        for tier, monthly in (("pro", 500), ("premium", 1200)):
            product = self._create_product({"name": tier.title(), "metadata": {"chatfocus_tier": tier}})
            for interval, amount in (("month", monthly), ("year", monthly * 10)):
                price = self._new_price(
                    {
                        "product": product["id"],
                        "unit_amount": str(amount),
                        "currency": "usd",
                        "recurring": {"interval": interval},
                        "lookup_key": f"chatfocus_{tier}_{interval}",
                        "metadata": {"chatfocus_tier": tier},
                    }
                )
                prices[(tier, interval)] = price["id"]
        return prices

    def complete_checkout(self, session_id: str, *, trial_days: int = 0) -> dict:
        """What Stripe does when the customer pays: a subscription exists and the session is complete."""
        session = self.objects[session_id]
        line = session["_line_items"][0]
        data = dict(session.get("_subscription_data") or {})
        if trial_days:
            data["trial_period_days"] = trial_days
        subscription = self._new_subscription(session["customer"], line["price"], data)
        session.update(status="complete", payment_status="paid", subscription=subscription["id"])
        return self._public(session)

    def set_status(self, subscription_id: str, status: str) -> dict:
        subscription = self.objects[subscription_id]
        subscription["status"] = status
        return self._public(subscription)

    def end_period(self, subscription_id: str) -> dict:
        """The period ends: a subscription cancelled at period end ends, any other renews."""
        subscription = self.objects[subscription_id]
        item = subscription["items"]["data"][0]
        if subscription["cancel_at_period_end"]:
            now = int(time.time())
            subscription.update(status="canceled", canceled_at=now, ended_at=now)
        else:
            length = INTERVAL_SECONDS[item["price"]["recurring"]["interval"]]
            item["current_period_start"] = item["current_period_end"]
            item["current_period_end"] += length
            if subscription["status"] == "trialing":
                subscription["status"] = "active"
        return self._public(subscription)

    def create_invoice(self, subscription_id: str, *, paid: bool) -> dict:
        subscription = self.objects[subscription_id]
        price = subscription["items"]["data"][0]["price"]
        invoice = self._create(
            "invoice",
            "in",
            {
                "customer": subscription["customer"],
                "status": "paid" if paid else "open",
                "amount_due": price["unit_amount"],
                "amount_paid": price["unit_amount"] if paid else 0,
                "amount_remaining": 0 if paid else price["unit_amount"],
                "currency": price["currency"],
                "total": price["unit_amount"],
                "subtotal": price["unit_amount"],
                "hosted_invoice_url": "https://invoice.stripe.test/i/fake",
                "billing_reason": "subscription_cycle",
                "collection_method": "charge_automatically",
                "discounts": [],
                "lines": {"object": "list", "data": [], "has_more": False, "url": "/v1/invoices/lines"},
                "parent": {
                    "type": "subscription_details",
                    "subscription_details": {"subscription": subscription_id, "metadata": {}},
                },
                "period_start": int(time.time()),
                "period_end": int(time.time()),
            },
        )
        if paid:
            intent = self._create(
                "payment_intent",
                "pi",
                {"customer": subscription["customer"], "amount": invoice["amount_paid"], "_refunded": 0},
            )
            self._create(
                "invoice_payment",
                "inpay",
                {
                    "invoice": invoice["id"],
                    "status": "paid",
                    "amount_paid": invoice["amount_paid"],
                    "currency": invoice["currency"],
                    "is_default": True,
                    "payment": {"type": "payment_intent", "payment_intent": intent["id"]},
                },
            )
        invoice["number"] = f"CF-{invoice['id'][3:11]}"
        invoice["invoice_pdf"] = f"https://pay.stripe.test/invoice/{invoice['id']}/pdf"
        return self._public(invoice)

    def event(self, type: str, obj: dict, *, created: int | None = None) -> dict:
        """A webhook event as Stripe would send it (its object is a snapshot at that moment)."""
        return {
            "id": f"evt_{next(self._ids):08d}fake",
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()) if created is None else created,
            "data": {"object": json.loads(json.dumps(obj))},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type,
        }

    # --- objects ------------------------------------------------------------------------------

    def _create(self, kind: str, prefix: str, fields: dict) -> dict:
        obj_id = f"{prefix}_{next(self._ids):08d}fake"
        obj = {"id": obj_id, "object": kind, "livemode": False, "created": int(time.time()), "metadata": {}}
        obj.update(fields)
        self.objects[obj_id] = obj
        return obj

    def _public(self, obj: dict) -> dict:
        return json.loads(json.dumps({k: v for k, v in obj.items() if not k.startswith("_")}))

    def _get(self, obj_id: str, kind: str) -> dict:
        obj = self.objects.get(obj_id)
        if obj is None or obj["object"] != kind:
            raise _Missing(kind, obj_id)
        return obj

    def _new_price(self, params: dict) -> dict:
        self._get(params["product"], "product")
        recurring = params.get("recurring") or {}
        return self._create(
            "price",
            "price",
            {
                "active": True,
                "product": params["product"],
                "currency": params["currency"],
                "unit_amount": int(params["unit_amount"]),
                "unit_amount_decimal": str(params["unit_amount"]),
                "recurring": {
                    "interval": recurring["interval"],
                    "interval_count": 1,
                    "usage_type": "licensed",
                    "meter": None,
                },
                "type": "recurring",
                "billing_scheme": "per_unit",
                "lookup_key": params.get("lookup_key"),
                "nickname": None,
                "tiers_mode": None,
                "metadata": params.get("metadata") or {},
            },
        )

    def _new_subscription(self, customer_id: str, price_id: str, data: dict) -> dict:
        now = int(time.time())
        price = self._public(self._get(price_id, "price"))
        trial_days = int(data.get("trial_period_days") or 0)
        period_end = now + (trial_days * 86400 if trial_days else INTERVAL_SECONDS[price["recurring"]["interval"]])
        subscription = self._create(
            "subscription",
            "sub",
            {
                "customer": customer_id,
                "status": "trialing" if trial_days else "active",
                "metadata": data.get("metadata") or {},
                "cancel_at_period_end": False,
                "cancel_at": None,
                "canceled_at": None,
                "ended_at": None,
                "start_date": now,
                "billing_cycle_anchor": period_end,
                "trial_start": now if trial_days else None,
                "trial_end": period_end if trial_days else None,
                "collection_method": "charge_automatically",
                "default_payment_method": None,
                "latest_invoice": None,
                "schedule": None,
                "currency": price["currency"],
            },
        )
        item = {
            "id": f"si_{next(self._ids):08d}fake",
            "object": "subscription_item",
            "created": now,
            "metadata": {},
            "price": price,
            "quantity": 1,
            "subscription": subscription["id"],
            "current_period_start": now,
            "current_period_end": period_end,
        }
        subscription["items"] = {
            "object": "list",
            "data": [item],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/subscription_items?subscription={subscription['id']}",
        }
        return subscription

    # --- routing ------------------------------------------------------------------------------

    ROUTES = [
        ("GET", r"/v1/account", "get_account"),
        ("POST", r"/v1/customers", "create_customer"),
        ("GET", r"/v1/customers/(?P<id>[^/]+)", "get_customer"),
        ("POST", r"/v1/customers/(?P<id>[^/]+)", "modify_customer"),
        ("DELETE", r"/v1/customers/(?P<id>[^/]+)", "delete_customer"),
        ("GET", r"/v1/customers/(?P<id>[^/]+)/payment_methods", "list_payment_methods"),
        ("POST", r"/v1/payment_methods/(?P<id>[^/]+)/detach", "detach_payment_method"),
        ("POST", r"/v1/products", "create_product"),
        ("GET", r"/v1/products", "list_products"),
        ("GET", r"/v1/products/(?P<id>[^/]+)", "get_product"),
        ("GET", r"/v1/products/(?P<id>[^/]+)/features", "list_product_features"),
        ("POST", r"/v1/prices", "create_price"),
        ("GET", r"/v1/prices", "list_prices"),
        ("GET", r"/v1/prices/(?P<id>[^/]+)", "get_price"),
        ("POST", r"/v1/checkout/sessions", "create_checkout_session"),
        ("GET", r"/v1/checkout/sessions/(?P<id>[^/]+)", "get_checkout_session"),
        ("POST", r"/v1/billing_portal/sessions", "create_portal_session"),
        ("GET", r"/v1/subscriptions", "list_subscriptions"),
        ("GET", r"/v1/subscriptions/(?P<id>[^/]+)", "get_subscription"),
        ("POST", r"/v1/subscriptions/(?P<id>[^/]+)", "modify_subscription"),
        ("DELETE", r"/v1/subscriptions/(?P<id>[^/]+)", "cancel_subscription"),
        ("GET", r"/v1/invoices/(?P<id>[^/]+)", "get_invoice"),
        ("GET", r"/v1/invoices", "list_invoices"),
        ("GET", r"/v1/invoice_payments", "list_invoice_payments"),
        ("POST", r"/v1/refunds", "create_refund"),
        ("POST", r"/v1/invoices/create_preview", "create_invoice_preview"),
    ]
    EXPANSIONS = {
        "product": set(),
        "customer": {"default_source", "sources"},
        "price": {"product", "currency_options", "tiers"},
        "checkout.session": {"line_items", "line_items.data.discounts", "total_details.breakdown"},
        "invoice": {"discounts", "lines.data.discounts"},
        "subscription": set(),
        "account": set(),
    }

    def _route(self, method: str, path: str, params: dict):
        for route_method, pattern, handler in self.ROUTES:
            match = re.fullmatch(pattern, path)
            if route_method == method and match:
                try:
                    return 200, getattr(self, f"_{handler}")(params, **match.groupdict())
                except _InvalidRequest as invalid:
                    return 400, {"error": {"type": "invalid_request_error", "message": str(invalid)}}
                except _Missing as missing:
                    return 404, {
                        "error": {
                            "type": "invalid_request_error",
                            "code": "resource_missing",
                            "param": "id",
                            "message": f"No such {missing.kind}: '{missing.obj_id}'",
                        }
                    }
        raise UnsupportedStripeCall(f"The Stripe fake does not support {method} {path} {params}")

    def _expand(self, obj: dict, expand) -> dict:
        public = self._public(obj)
        for field in expand or []:
            if field not in self.EXPANSIONS[obj["object"]]:
                raise UnsupportedStripeCall(f"Expansion {field} of {obj['object']}")
            if field == "product":
                public["product"] = self._public(self._get(obj["product"], "product"))
            elif field == "line_items":
                public["line_items"] = {
                    "object": "list",
                    "data": [
                        {
                            "id": f"li_{index}_{obj['id']}",
                            "object": "item",
                            "price": self._public(self._get(line["price"], "price")),
                            "quantity": line["quantity"],
                            "amount_total": 0,
                            "amount_subtotal": 0,
                            "currency": "usd",
                            "description": "ChatFocus",
                            "discounts": [],
                        }
                        for index, line in enumerate(obj["_line_items"])
                    ],
                    "has_more": False,
                    "url": f"/v1/checkout/sessions/{obj['id']}/line_items",
                }
            elif field == "total_details.breakdown":
                public["total_details"] = {
                    "amount_discount": 0,
                    "amount_shipping": 0,
                    "amount_tax": 0,
                    "breakdown": {"discounts": [], "taxes": []},
                }
        return public

    def _list(self, kind: str, params: dict, predicate=lambda obj: True) -> dict:
        data = [o for o in self.objects.values() if o["object"] == kind and predicate(o)]
        expand = [field.removeprefix("data.") for field in params.get("expand") or []]
        return {
            "object": "list",
            "data": [self._expand(o, expand) for o in data],
            "has_more": False,
            "url": f"/v1/{kind}s",
        }

    def _get_account(self, params):
        return self.account

    def _create_customer(self, params):
        return self._public(
            self._create(
                "customer",
                "cus",
                {
                    "email": params.get("email"),
                    "name": params.get("name"),
                    "metadata": params.get("metadata") or {},
                    "balance": 0,
                    "currency": None,
                    "delinquent": False,
                    "default_source": None,
                    "invoice_settings": {"default_payment_method": None},
                    "sources": {"object": "list", "data": [], "has_more": False, "url": "/v1/customers/sources"},
                    "_payment_methods": [f"pm_{next(self._ids):08d}fake"],
                },
            )
        )

    def _get_customer(self, params, id):
        return self._expand(self._get(id, "customer"), params.get("expand"))

    def _modify_customer(self, params, id):
        customer = self._get(id, "customer")
        customer["metadata"].update(params.pop("metadata", {}))
        customer.update(params)
        return self._public(customer)

    def _delete_customer(self, params, id):
        self._get(id, "customer")
        del self.objects[id]
        return {"id": id, "object": "customer", "deleted": True}

    def _list_payment_methods(self, params, id):
        customer = self._get(id, "customer")
        return {
            "object": "list",
            "data": [{"id": pm, "object": "payment_method", "customer": id} for pm in customer["_payment_methods"]],
            "has_more": False,
            "url": f"/v1/customers/{id}/payment_methods",
        }

    def _detach_payment_method(self, params, id):
        for customer in self.objects.values():
            if customer["object"] == "customer" and id in customer["_payment_methods"]:
                customer["_payment_methods"].remove(id)
                return {"id": id, "object": "payment_method", "customer": None}
        raise _Missing("payment_method", id)

    def _create_product(self, params):
        return self._public(
            self._create(
                "product",
                "prod",
                {"name": params["name"], "active": True, "metadata": params.get("metadata") or {}},
            )
        )

    def _list_products(self, params):
        return self._list("product", params)

    def _get_product(self, params, id):
        return self._expand(self._get(id, "product"), params.get("expand"))

    def _list_product_features(self, params, id):
        self._get(id, "product")
        return {"object": "list", "data": [], "has_more": False, "url": f"/v1/products/{id}/features"}

    def _create_price(self, params):
        return self._public(self._new_price(params))

    def _list_prices(self, params):
        return self._list("price", params)

    def _get_price(self, params, id):
        return self._expand(self._get(id, "price"), params.get("expand"))

    def _create_checkout_session(self, params):
        if params.get("mode") != "subscription":
            raise UnsupportedStripeCall(f"Checkout mode {params.get('mode')}")
        self._get(params["customer"], "customer")
        for line in params["line_items"]:
            self._get(line["price"], "price")
        session = self._create(
            "checkout.session",
            "cs_test",
            {
                "mode": "subscription",
                "customer": params["customer"],
                "client_reference_id": params.get("client_reference_id"),
                "metadata": params.get("metadata") or {},
                "status": "open",
                "payment_status": "unpaid",
                "subscription": None,
                "success_url": params["success_url"],
                "cancel_url": params["cancel_url"],
                "currency": "usd",
                "expires_at": int(time.time()) + 86400,
                "_line_items": [
                    {"price": li["price"], "quantity": int(li.get("quantity", 1))} for li in params["line_items"]
                ],
                "_subscription_data": params.get("subscription_data") or {},
                "allow_promotion_codes": _bool(params.get("allow_promotion_codes")),
            },
        )
        session["url"] = f"https://checkout.stripe.test/c/pay/{session['id']}"
        return self._public(session)

    def _get_checkout_session(self, params, id):
        return self._expand(self._get(id, "checkout.session"), params.get("expand"))

    def _create_portal_session(self, params):
        self._get(params["customer"], "customer")
        session = self._create(
            "billing_portal.session", "bps", {"customer": params["customer"], "return_url": params.get("return_url")}
        )
        session["url"] = f"https://billing.stripe.test/p/session/{session['id']}"
        return self._public(session)

    def _list_subscriptions(self, params):
        customer = params.get("customer")
        return self._list("subscription", params, lambda s: customer is None or s["customer"] == customer)

    def _get_subscription(self, params, id):
        return self._expand(self._get(id, "subscription"), params.get("expand"))

    def _modify_subscription(self, params, id):
        subscription = self._get(id, "subscription")
        if subscription["status"] in ("canceled", "incomplete_expired"):
            raise _InvalidRequest(f"A canceled subscription can only update its cancellation_details: {id}")
        params.pop("proration_behavior", None)
        subscription["metadata"].update(params.pop("metadata", {}))
        if "cancel_at_period_end" in params:
            cancel = _bool(params.pop("cancel_at_period_end"))
            item = subscription["items"]["data"][0]
            subscription["cancel_at_period_end"] = cancel
            subscription["cancel_at"] = item["current_period_end"] if cancel else None
        for change in params.pop("items", []):
            item = next(i for i in subscription["items"]["data"] if i["id"] == change["id"])
            old_interval = item["price"]["recurring"]["interval"]
            item["price"] = self._public(self._get(change["price"], "price"))
            new_interval = item["price"]["recurring"]["interval"]
            if new_interval != old_interval:
                now = int(time.time())
                item["current_period_start"] = now
                item["current_period_end"] = now + INTERVAL_SECONDS[new_interval]
        if params:
            raise UnsupportedStripeCall(f"Subscription update with {params}")
        return self._public(subscription)

    def _cancel_subscription(self, params, id):
        subscription = self._get(id, "subscription")
        now = int(time.time())
        subscription.update(status="canceled", canceled_at=now, ended_at=now)
        return self._public(subscription)

    def _get_invoice(self, params, id):
        return self._expand(self._get(id, "invoice"), params.get("expand"))

    def _list_invoices(self, params):
        """Newest first, as Stripe lists them."""

        def matches(invoice):
            return all(params.get(name) in (None, invoice[name]) for name in ("customer", "status"))

        listing = self._list("invoice", params, matches)
        listing["data"] = listing["data"][::-1][: int(params.get("limit", 10))]
        return listing

    def _list_invoice_payments(self, params):
        def matches(payment):
            return payment["invoice"] == params.get("invoice") and params.get("status") in (None, payment["status"])

        return self._list("invoice_payment", params, matches)

    def _create_refund(self, params):
        intent = self._get(params.get("payment_intent"), "payment_intent")
        amount = int(params.get("amount") or intent["amount"] - intent["_refunded"])
        if not 0 < amount <= intent["amount"] - intent["_refunded"]:
            raise _InvalidRequest(f"Refund amount ({amount}) is greater than the unrefunded amount of {intent['id']}.")
        intent["_refunded"] += amount
        fields = {"payment_intent": intent["id"], "amount": amount, "currency": "usd", "status": "succeeded"}
        fields.update(reason=params.get("reason"), metadata=params.get("metadata") or {})
        return self._public(self._create("refund", "re", fields))

    # --- invoice previews of plan changes --------------------------------------------------------

    def _create_invoice_preview(self, params):
        """The invoice a change of the subscription's price would produce, prorated to the second as Stripe does.

        An interval change restarts the period and is invoiced at once (credit for the unused time, the
        new price); otherwise `none` previews the renewal at the new price and `create_prorations` the
        renewal with the unused and remaining time added.
        """
        subscription = self._get(params.get("subscription"), "subscription")
        if subscription["customer"] != params.get("customer"):
            raise _InvalidRequest("The subscription does not belong to this customer.")
        if subscription["status"] in ("canceled", "incomplete_expired"):
            raise _InvalidRequest(f"Cannot preview a change of a canceled subscription: {subscription['id']}")
        details = params.get("subscription_details") or {}
        behavior = details.get("proration_behavior", "create_prorations")
        if behavior not in ("none", "create_prorations", "always_invoice"):
            raise _InvalidRequest(f"Invalid proration_behavior: {behavior}")
        item = subscription["items"]["data"][0]
        change = next((c for c in details.get("items") or [] if c.get("id") == item["id"]), None)
        if change is None:
            raise _InvalidRequest("subscription_details[items] must name an item of the subscription.")
        old, new = item["price"], self._public(self._get(change["price"], "price"))
        now, start, end = int(time.time()), item["current_period_start"], item["current_period_end"]
        after = time.strftime("%d %b %Y", time.gmtime(now))
        new_length = INTERVAL_SECONDS[new["recurring"]["interval"]]

        def line(description, amount, period_start, period_end, price, proration):
            return {
                "object": "line_item",
                "amount": amount,
                "currency": new["currency"],
                "description": description,
                "period": {"start": period_start, "end": period_end},
                "pricing": {"type": "price_details", "price_details": {"price": price["id"]}},
                "parent": {
                    "type": "subscription_item_details",
                    "subscription_item_details": {
                        "proration": proration,
                        "subscription": subscription["id"],
                        "subscription_item": item["id"],
                    },
                },
            }

        def full(period_start):
            amount = new["unit_amount"]
            description = f"1 × {self._product_name(new)} (at ${amount / 100:.2f} / {new['recurring']['interval']})"
            return line(description, amount, period_start, period_start + new_length, new, False)

        unused = line(
            f"Unused time on {self._product_name(old)} after {after}",
            -round(old["unit_amount"] * (end - now) / (end - start)),
            now,
            end,
            old,
            True,
        )
        if new["recurring"]["interval"] != old["recurring"]["interval"]:
            lines = [unused, full(now)]
        elif behavior == "none":
            lines = [full(end)]
        else:
            remaining = line(
                f"Remaining time on {self._product_name(new)} after {after}",
                round(new["unit_amount"] * (end - now) / (end - start)),
                now,
                end,
                new,
                True,
            )
            lines = [unused, remaining] if behavior == "always_invoice" else [unused, remaining, full(end)]
        total = sum(entry["amount"] for entry in lines)
        return {
            "object": "invoice",
            "customer": subscription["customer"],
            "currency": new["currency"],
            "status": "draft",
            "subtotal": total,
            "total": total,
            "amount_due": max(total, 0),
            "amount_paid": 0,
            "lines": {"object": "list", "data": lines, "has_more": False, "url": "/v1/invoices/upcoming/lines"},
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": subscription["id"], "metadata": subscription["metadata"]},
            },
        }

    def _product_name(self, price: dict) -> str:
        return self.objects[price["product"]]["name"]


class _Missing(Exception):
    def __init__(self, kind, obj_id):
        super().__init__(kind, obj_id)
        self.kind, self.obj_id = kind, obj_id


class _InvalidRequest(Exception):
    pass


def deliver(client, event: dict, *, secret: str, timestamp: int | None = None, **headers):
    """POST an event to our webhook exactly as Stripe does: signed raw JSON bytes."""
    payload = json.dumps(event).encode()
    return client.generic(
        "POST",
        "/api/subscriptions/webhook",
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload, secret, timestamp),
        **headers,
    )
