"""Staff screens: accounts with tier/status/period and comp grants, the tier audit log, the webhook event log."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone

from billing import services, webhooks
from billing.models import BillingAccount, Revenue, TierChange, WebhookEvent
from billing.revenue import build_revenue_charts, build_revenue_report
from billing.selectors import PAID_TIERS, account_state, entitlements_from_state
from billing.tiers import PRIORITY_SUPPORT
from chatfocus.admin import ReadOnlyAdminMixin
from chatfocus.exceptions import DomainError


class CompGrantForm(forms.Form):
    tier = forms.ChoiceField(choices=[(tier, tier.title()) for tier in PAID_TIERS])
    until = forms.DateTimeField(help_text="UTC, e.g. 2027-01-31 00:00. The grant ends then.")
    reason = forms.CharField(max_length=255, required=False)


@admin.register(BillingAccount)
class BillingAccountAdmin(admin.ModelAdmin):
    list_display = (
        "user",
        "tier_now",
        "tier",
        "status",
        "interval",
        "current_period_end",
        "cancel_at_period_end",
        "grace_until",
        "comp_tier",
        "comp_until",
    )
    list_filter = ("effective_tier", "tier", "status", "interval", "cancel_at_period_end", "comp_tier")
    search_fields = ("user__email", "stripe_customer_id", "stripe_subscription_id")
    autocomplete_fields = ("user",)
    actions = ("resync_from_stripe", "grant_comp", "revoke_comp")
    list_select_related = ("user",)

    def get_readonly_fields(self, request, obj=None):
        # State comes from Stripe and comp grants from the actions (so they are audited): nothing is edited here.
        fields = [field.name for field in BillingAccount._meta.fields]
        return fields if obj else [name for name in fields if name != "user"]

    @admin.display(description="Tier now")
    def tier_now(self, account):
        entitlements = entitlements_from_state(account_state(account))
        support = " · priority support" if PRIORITY_SUPPORT in entitlements.features else ""
        return f"{entitlements.tier} ({entitlements.source}){support}"

    @admin.action(description="Resync from Stripe")
    def resync_from_stripe(self, request, queryset):
        changed = 0
        try:
            for account in queryset:
                changed += services.refresh_account(account=account, source=TierChange.Source.ADMIN)
        except DomainError as error:
            self.message_user(request, error.message, messages.ERROR)
            return
        self.message_user(request, f"{queryset.count()} accounts re-read from Stripe, {changed} changed.")

    @admin.action(description="Grant a comp tier until a date")
    def grant_comp(self, request, queryset):
        form = CompGrantForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            try:
                for account in queryset:
                    services.grant_comp_tier(user_id=account.user_id, granted_by=request.user, **form.cleaned_data)
            except DomainError as error:
                self.message_user(request, f"{error.message} {error.fields or ''}", messages.ERROR)
                return None
            self.message_user(request, f"Comp tier granted to {queryset.count()} accounts.")
            return None
        return TemplateResponse(
            request,
            "admin/billing/grant_comp.html",
            {**self.admin_site.each_context(request), "form": form, "accounts": queryset, "title": "Grant a comp tier"},
        )

    @admin.action(description="Revoke comp tier")
    def revoke_comp(self, request, queryset):
        for account in queryset:
            services.revoke_comp_tier(user_id=account.user_id, revoked_by=request.user)
        self.message_user(request, f"Comp tier revoked for {queryset.count()} accounts.")


@admin.register(TierChange)
class TierChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "user", "from_tier", "to_tier", "source", "actor", "stripe_event_id", "note")
    list_filter = ("source", "to_tier", "from_tier")
    search_fields = ("user__email", "stripe_event_id")
    list_select_related = ("user", "actor")
    date_hierarchy = "created_at"


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ("id", "type", "status", "attempts", "received_at", "processed_at")
    list_filter = ("status", "type", "livemode")
    search_fields = ("id", "type")
    readonly_fields = [field.name for field in WebhookEvent._meta.fields]
    actions = ("replay",)
    date_hierarchy = "received_at"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Replay (failed events only)")
    def replay(self, request, queryset):
        outcomes = {}
        for event_id in queryset.filter(status=WebhookEvent.Status.FAILED).values_list("id", flat=True):
            try:
                outcomes[event_id] = webhooks.process_event(event_id=event_id)
            except webhooks.WebhookProcessingFailed:
                outcomes[event_id] = "failed"
        failed = sum(outcome == "failed" for outcome in outcomes.values())
        level = messages.ERROR if failed else messages.SUCCESS
        self.message_user(
            request, f"{len(outcomes)} events replayed at {timezone.now():%H:%M:%S}, {failed} failed.", level
        )


# --- Revenue report ------------------------------------------------------------------------------


@admin.register(Revenue)
class RevenueAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Billing → Revenue: a read-only report for staff with the `billing.view_revenue` permission."""

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        report = build_revenue_report()
        context = {
            **self.admin_site.each_context(request),
            "title": "Revenue",
            "opts": self.model._meta,
            "report": report,
            "subscribers_total": sum(row["subscribers"] for row in report.subscribers),
            "charts": build_revenue_charts(report),
        }
        return TemplateResponse(request, "admin/billing/revenue.html", context)
