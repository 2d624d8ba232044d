from rest_framework import serializers

from billing.selectors import INTERVALS, PAID_TIERS
from billing.tiers import TIER_ORDER
from chatfocus.serializers import StrictSerializer


class LimitsSerializer(serializers.Serializer):
    sync_bytes = serializers.IntegerField()
    value_bytes = serializers.IntegerField()
    keys = serializers.IntegerField()
    devices = serializers.IntegerField()
    history_days = serializers.IntegerField()
    snapshots = serializers.IntegerField()


class EntitlementsSerializer(serializers.Serializer):
    tier = serializers.ChoiceField(choices=TIER_ORDER)
    status = serializers.CharField(help_text="Stripe's subscription status, or `free` without a subscription.")
    interval = serializers.ChoiceField(choices=INTERVALS, allow_null=True)
    current_period_end = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()
    trial_end = serializers.DateTimeField(allow_null=True)
    grace_until = serializers.DateTimeField(allow_null=True, help_text="While past_due: the tier is kept until then.")
    source = serializers.ChoiceField(choices=["free", "stripe", "comp"])
    pending_tier = serializers.ChoiceField(
        choices=TIER_ORDER, allow_null=True, help_text="After a downgrade: the tier from the end of the period."
    )
    comp_until = serializers.DateTimeField(allow_null=True, help_text="A staff grant: the tier is kept until then.")
    limits = LimitsSerializer()
    features = serializers.ListField(child=serializers.CharField())


class PriceSerializer(serializers.Serializer):
    id = serializers.CharField()
    interval = serializers.ChoiceField(choices=INTERVALS)
    unit_amount = serializers.IntegerField(help_text="In the currency's smallest unit (cents).")
    currency = serializers.CharField()


class PlanSerializer(serializers.Serializer):
    tier = serializers.ChoiceField(choices=TIER_ORDER)
    title = serializers.CharField()
    limits = LimitsSerializer()
    features = serializers.ListField(child=serializers.CharField())
    prices = PriceSerializer(many=True)


class PlansSerializer(serializers.Serializer):
    billing_configured = serializers.BooleanField()
    plans = PlanSerializer(many=True)


class CheckoutSerializer(StrictSerializer):
    tier = serializers.ChoiceField(choices=PAID_TIERS)
    interval = serializers.ChoiceField(choices=INTERVALS)


class CheckoutResponseSerializer(serializers.Serializer):
    checkout_url = serializers.URLField()


class PlanChangeSerializer(StrictSerializer):
    tier = serializers.ChoiceField(choices=PAID_TIERS, required=False)
    interval = serializers.ChoiceField(choices=INTERVALS, required=False)
    resume = serializers.BooleanField(required=False, help_text="`true` undoes a pending cancel.")

    def validate(self, attrs):
        if attrs.get("resume") is False:
            raise serializers.ValidationError({"resume": ["Only `true` is meaningful; cancel with DELETE."]})
        if "resume" in attrs and ("tier" in attrs or "interval" in attrs):
            raise serializers.ValidationError({"resume": ["Resume on its own, then change the plan."]})
        if not attrs:
            raise serializers.ValidationError("Send `tier`, `interval` or `resume`.")
        return attrs


class PortalResponseSerializer(serializers.Serializer):
    url = serializers.URLField()


class WebhookResponseSerializer(serializers.Serializer):
    received = serializers.BooleanField()
    outcome = serializers.ChoiceField(choices=["processed", "ignored", "duplicate"])


class InvoiceSerializer(serializers.Serializer):
    id = serializers.CharField()
    number = serializers.CharField(allow_null=True, help_text="Stripe's invoice number (null until finalized).")
    status = serializers.ChoiceField(choices=["open", "paid", "uncollectible", "void"])
    amount_due = serializers.IntegerField(help_text="In the currency's smallest unit (cents).")
    amount_paid = serializers.IntegerField(help_text="In the currency's smallest unit (cents).")
    currency = serializers.CharField()
    created = serializers.DateTimeField()
    period_start = serializers.DateTimeField(allow_null=True, help_text="Start of the service period billed.")
    period_end = serializers.DateTimeField(allow_null=True, help_text="End of the service period billed.")
    hosted_invoice_url = serializers.URLField(allow_null=True, help_text="Stripe's page to view and pay it.")
    invoice_pdf = serializers.URLField(allow_null=True, help_text="Stripe's PDF of the invoice.")


class PreviewQuerySerializer(serializers.Serializer):
    tier = serializers.ChoiceField(choices=PAID_TIERS, required=False, help_text="Default: the current tier.")
    interval = serializers.ChoiceField(choices=INTERVALS, required=False, help_text="Default: the current interval.")

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Send `tier`, `interval` or both.")
        return attrs


class PreviewLineSerializer(serializers.Serializer):
    description = serializers.CharField()
    amount = serializers.IntegerField(help_text="Cents; negative for a credit (unused time of the current plan).")


class PreviewSerializer(serializers.Serializer):
    amount_due_now = serializers.IntegerField(help_text="Charged when the change is made (cents).")
    currency = serializers.CharField()
    next_payment_at = serializers.DateTimeField(allow_null=True)
    next_amount = serializers.IntegerField(help_text="The payment after that (cents), prorations included.")
    lines = PreviewLineSerializer(many=True, help_text="The lines of the invoice Stripe previewed.")
