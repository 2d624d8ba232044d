import dataclasses
import hashlib
import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import services, webhooks
from billing.api.serializers import (
    CheckoutResponseSerializer,
    CheckoutSerializer,
    EntitlementsSerializer,
    InvoiceSerializer,
    PlanChangeSerializer,
    PlansSerializer,
    PortalResponseSerializer,
    PreviewQuerySerializer,
    PreviewSerializer,
    WebhookResponseSerializer,
)
from chatfocus.api import error_responses, represent
from chatfocus.pagination import CursorPagination

TAGS = ["billing"]
ENTITLEMENTS_DESCRIPTION = (
    "`tier` is what the user may use now: `active`/`trialing` give the subscription's tier, `past_due` keeps it "
    "until `grace_until`, anything else is free; a staff grant (`source: comp`) applies until `comp_until`."
)


def entitlements_body(entitlements) -> dict:
    return represent(EntitlementsSerializer, entitlements)  # fields read the dataclass' attributes


def etag_of(body: dict) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f'"{digest}"'


class PlansView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="subscription_plans",
        summary="Tiers, limits and prices",
        description="Public. Prices come from Stripe (mirrored); the list is empty when billing is not configured.",
        responses={200: PlansSerializer},
        tags=TAGS,
    )
    def get(self, request):
        configured = services.is_billing_configured()
        plans = services.list_plans(billing_configured=configured)
        for plan in plans:
            plan["limits"] = dataclasses.asdict(plan["limits"])
        return Response(PlansSerializer({"billing_configured": configured, "plans": plans}).data)


class SubscriptionView(APIView):
    def cache_keys_for(self, request, *, user_id) -> list[str]:
        return services.entitlements_cache_keys(user_id=user_id) if request.method == "GET" else []

    @extend_schema(
        operation_id="subscription_get",
        summary="The user's entitlements",
        description=ENTITLEMENTS_DESCRIPTION + " No Stripe call. Send `If-None-Match` with the last ETag → 304.",
        parameters=[OpenApiParameter("If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER)],
        responses={200: EntitlementsSerializer, 304: OpenApiResponse(description="Not modified.")},
        tags=TAGS,
    )
    def get(self, request):
        body = entitlements_body(services.get_entitlements(user=request.user, prefetched=request.user.prefetched))
        etag = etag_of(body)
        if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
            return Response(status=304, headers={"ETag": etag})
        return Response(body, headers={"ETag": etag})

    @extend_schema(
        operation_id="subscription_checkout",
        summary="Start Stripe Checkout for a paid tier",
        description=(
            "Returns the Stripe Checkout URL; after payment Stripe sends the user to the hosted billing page. "
            "409 `subscription_exists` when a subscription is live (change it with PUT instead)."
        ),
        request=CheckoutSerializer,
        responses={201: CheckoutResponseSerializer, **error_responses(409, 502)},
        tags=TAGS,
    )
    def post(self, request):
        serializer = CheckoutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        url = services.start_checkout(user=request.user, **serializer.validated_data)
        return Response({"checkout_url": url}, status=201)

    @extend_schema(
        operation_id="subscription_change",
        summary="Change plan or resume",
        description=(
            "`{tier?, interval?}`: an upgrade applies now with prorations; a downgrade applies at the end of the "
            "period (the current tier is kept until then); an interval switch applies now with prorations. "
            "`{resume: true}` undoes a pending cancel. 409 `conflict` without a live subscription."
        ),
        request=PlanChangeSerializer,
        responses={200: EntitlementsSerializer, **error_responses(409, 502)},
        tags=TAGS,
    )
    def put(self, request):
        serializer = PlanChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data.get("resume"):
            entitlements = services.resume_subscription(user=request.user)
        else:
            entitlements = services.change_subscription(user=request.user, **data)
        return Response(entitlements_body(entitlements))

    @extend_schema(
        operation_id="subscription_cancel",
        summary="Cancel at period end",
        description="The tier stays until `current_period_end`; resume with PUT `{resume: true}` before then.",
        request=None,
        responses={200: EntitlementsSerializer, **error_responses(409, 502)},
        tags=TAGS,
    )
    def delete(self, request):
        return Response(entitlements_body(services.cancel_subscription(user=request.user)))


class InvoicePagination(CursorPagination):
    ordering = ("-created", "-djstripe_id")


class InvoicesView(APIView):
    # Declared on the view so the schema shows the paginated shape and its parameters.
    pagination_class = InvoicePagination

    @extend_schema(
        operation_id="subscription_invoices",
        summary="The user's invoices, newest first",
        description=(
            "From the server's mirror of Stripe (no Stripe call), drafts left out. Amounts in cents; "
            "`hosted_invoice_url` and `invoice_pdf` are Stripe's pages for viewing, paying and downloading."
        ),
        responses={200: InvoiceSerializer(many=True)},
        tags=TAGS,
    )
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(services.list_invoices(user=request.user), request, view=self)
        invoices = [services.invoice_summary(invoice) for invoice in page]
        return paginator.get_paginated_response(InvoiceSerializer(invoices, many=True).data)


class PreviewView(APIView):
    @extend_schema(
        operation_id="subscription_preview",
        summary="Preview a plan change",
        description=(
            "What `PUT /api/subscriptions` with the same `tier`/`interval` would charge now and at the next "
            "payment, from Stripe's invoice preview. Nothing changes. 409 `conflict` without a live "
            "subscription; 400 for the current plan or an unknown tier or interval."
        ),
        parameters=[PreviewQuerySerializer],
        responses={200: PreviewSerializer, **error_responses(409, 502)},
        tags=TAGS,
    )
    def get(self, request):
        query = PreviewQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        preview = services.preview_subscription_change(user=request.user, **query.validated_data)
        return Response(PreviewSerializer(preview).data)


class PortalView(APIView):
    @extend_schema(
        operation_id="subscription_portal",
        summary="Stripe billing portal URL",
        description="Payment methods and invoices. 409 `conflict` before the first checkout.",
        request=None,
        responses={200: PortalResponseSerializer, **error_responses(409, 502)},
        tags=TAGS,
    )
    def post(self, request):
        return Response({"url": services.create_portal_session(user=request.user)})


class WebhookView(APIView):
    """Stripe's webhook: the raw body is verified, so DRF never parses it."""

    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = []

    @extend_schema(
        operation_id="subscription_webhook",
        summary="Stripe webhook",
        description=(
            "Called by Stripe. `Stripe-Signature` is verified over the raw body with STRIPE_WEBHOOK_SECRET "
            "(300 s tolerance) before anything else: 400 `signature_invalid` and nothing stored otherwise. "
            "Each event is stored once by id and processed once; duplicates and unhandled types answer 200 "
            "without a call to Stripe. A handled type while STRIPE_SECRET_KEY is unset answers 503 "
            "`billing_not_configured` and stores nothing (Stripe retries). A processing failure answers 500 "
            "(Stripe retries; staff can replay)."
        ),
        parameters=[OpenApiParameter("Stripe-Signature", OpenApiTypes.STR, OpenApiParameter.HEADER, required=True)],
        request={"application/json": OpenApiTypes.OBJECT},
        responses={200: WebhookResponseSerializer, **error_responses(400, 503)},
        tags=TAGS,
    )
    def post(self, request):
        outcome = webhooks.receive_webhook(payload=request.body, signature=request.headers.get("Stripe-Signature"))
        return Response({"received": True, "outcome": outcome})
