"""Staff screens for accounts. The user page is support's one page per user: what the user has and why,
and every action on the account, each through a service and written to the admin log with the staff
member who acted. Deleting (one user or a selection) always goes through accounts.services.delete_account.
"""

import json
import uuid
from decimal import Decimal

from allauth.account.models import EmailAddress
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Exists, OuterRef
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist import admin as token_admin
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts import services
from accounts.models import Preferences, Session, User
from accounts.oauth import PROVIDERS
from accounts.sessions import revoke_session_by_id
from billing import services as billing_services
from billing.admin import CompGrantForm
from billing.selectors import account_state, has_live_subscription
from billing.services import TIERS, filter_users_by_tier
from chatfocus.admin import ReadOnlyAdminMixin
from chatfocus.exceptions import DomainError
from syncsettings import services as sync_services

BILLING_PERMISSION = "billing.change_billingaccount"
ACCOUNT_PERMISSION = "accounts.change_user"
# Currencies Stripe counts in whole units (no cents).
ZERO_DECIMAL_CURRENCIES = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv"}
ZERO_DECIMAL_CURRENCIES |= {"xaf", "xof", "xpf"}


class UserCreateForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name")


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class StaffPasswordChangeForm(AdminPasswordChangeForm):
    """The admin's set-password form, through accounts' service: every session of the user is signed out."""

    def save(self, commit=True):
        usable = self.cleaned_data.get("set_usable_password", True) not in (False, "false")
        services.set_user_password(user=self.user, password=self.cleaned_data["password1"] if usable else None)
        return self.user


class RefundForm(forms.Form):
    amount = forms.DecimalField(
        required=False,
        min_value=Decimal("0.01"),
        decimal_places=2,
        help_text="In the invoice's currency, e.g. 4.50. Leave empty to refund the whole amount paid.",
    )
    invoice_id = forms.CharField(widget=forms.HiddenInput)
    confirmation = forms.CharField(widget=forms.HiddenInput)


def minor_units(amount: Decimal, currency: str) -> int:
    return int(amount if currency in ZERO_DECIMAL_CURRENCIES else amount * 100)


def major_units(amount: int, currency: str) -> str:
    if currency in ZERO_DECIMAL_CURRENCIES:
        return f"{amount} {currency.upper()}"
    return f"{Decimal(amount) / 100:.2f} {currency.upper()}"


class EmailVerifiedFilter(admin.SimpleListFilter):
    title = "email verified"
    parameter_name = "verified"

    def lookups(self, request, model_admin):
        return (("yes", "Verified"), ("no", "Not verified"))

    def queryset(self, request, queryset):
        verified = EmailAddress.objects.filter(user=OuterRef("pk"), email=OuterRef("email"), verified=True)
        if self.value() == "yes":
            return queryset.filter(Exists(verified))
        if self.value() == "no":
            return queryset.exclude(Exists(verified))
        return queryset


class ProviderFilter(admin.SimpleListFilter):
    title = "login method"
    parameter_name = "provider"

    def lookups(self, request, model_admin):
        return [("password", "Password")] + [(provider, provider.title()) for provider in PROVIDERS]

    def queryset(self, request, queryset):
        if self.value() == "password":
            return queryset.exclude(password__startswith=UNUSABLE_PASSWORD_PREFIX)
        if self.value() in PROVIDERS:
            return queryset.filter(socialaccount__provider=self.value()).distinct()
        return queryset


class TierFilter(admin.SimpleListFilter):
    title = "tier"
    parameter_name = "tier"

    def lookups(self, request, model_admin):
        return [(tier, tier.title()) for tier in TIERS]

    def queryset(self, request, queryset):
        if self.value() in TIERS:
            return filter_users_by_tier(queryset, tier=self.value())
        return queryset


class SessionInline(admin.TabularInline):
    model = Session
    fields = ("device_name", "method", "ip_address", "created_at", "last_used_at", "revoked_at", "revoked_reason")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-created_at",)
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreateForm
    change_password_form = StaffPasswordChangeForm
    change_form_template = "admin/accounts/user/change_form.html"
    ordering = ("-date_joined",)
    list_display = ("email", "name", "is_active", "is_staff", "date_joined")
    list_filter = (
        TierFilter,
        EmailVerifiedFilter,
        "is_staff",
        ProviderFilter,
        "is_active",
        "is_superuser",
        "date_joined",
    )
    inlines = (SessionInline,)
    search_fields = ("email", "name")
    readonly_fields = ("id", "date_joined", "updated_at", "last_login")
    fieldsets = (
        (None, {"fields": ("id", "email", "password")}),
        ("Profile", {"fields": ("name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("date_joined", "updated_at", "last_login")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "name", "password1", "password2")}),)
    actions = ("delete_accounts",)

    # slug → (permission, method, label); GET shows what the action will do, POST does it.
    SUPPORT_ACTIONS = {
        "cancel-at-period-end": (BILLING_PERMISSION, "cancel_at_period_end", "Cancel at period end"),
        "cancel-now": (BILLING_PERMISSION, "cancel_now", "Cancel now"),
        "resume": (BILLING_PERMISSION, "resume", "Resume"),
        "refund": (BILLING_PERMISSION, "refund", "Refund the last invoice"),
        "grant-comp": (BILLING_PERMISSION, "grant_comp", "Grant a comp tier"),
        "revoke-comp": (BILLING_PERMISSION, "revoke_comp", "Revoke the comp tier"),
        "resend-verification": (ACCOUNT_PERMISSION, "resend_verification", "Resend the verification email"),
        "sign-out": (ACCOUNT_PERMISSION, "sign_out", "Sign out every session"),
        "deactivate": (ACCOUNT_PERMISSION, "deactivate", "Deactivate"),
        "reactivate": (ACCOUNT_PERMISSION, "reactivate", "Reactivate"),
    }

    def get_urls(self):
        support = [
            path(
                "<path:object_id>/support/export/",
                self.admin_site.admin_view(self.export_view),
                name="accounts_user_export",
            ),
            path(
                "<path:object_id>/support/<slug:action>/",
                self.admin_site.admin_view(self.support_view),
                name="accounts_user_support",
            ),
        ]
        return support + super().get_urls()

    # --- the support page ---------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        user = self.get_object(request, unquote(object_id))
        if user is not None and self.has_view_or_change_permission(request, user):
            extra_context = {**(extra_context or {}), "support": self._support_context(request, user)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _applicable_actions(self, user, billing: dict, email_verified: bool) -> set[str]:
        """The actions that make sense for the account as it is now (the others are not offered)."""
        account = billing["account"]
        live = bool(account) and has_live_subscription(account_state(account))
        applicable = {
            "cancel-at-period-end": live and not account.cancel_at_period_end,
            "cancel-now": live,
            "resume": live and account.cancel_at_period_end,
            "refund": bool(account and account.stripe_customer_id),
            "grant-comp": True,
            "revoke-comp": bool(account and account.comp_tier),
            "resend-verification": user.is_active and (not email_verified or bool(user.pending_email)),
            "sign-out": True,
            "deactivate": user.is_active,
            "reactivate": not user.is_active,
        }
        return {slug for slug, offered in applicable.items() if offered}

    def _support_context(self, request, user) -> dict:
        billing = billing_services.get_support_overview(user=user)
        email_verified = services.is_email_verified(user=user)
        applicable = self._applicable_actions(user, billing, email_verified)
        return {
            "email_verified": email_verified,
            "pending_email": user.pending_email,
            "billing": billing,
            "tier_changes": billing["tier_changes"],
            "invoices": [
                {**invoice, "total_display": major_units(invoice.get("total") or 0, invoice.get("currency") or "usd")}
                for invoice in billing["invoices"]
            ],
            "quota": sync_services.get_quota(user=user),
            "devices": list(sync_services.list_devices(user=user)),
            "preferences": Preferences.objects.filter(user_id=user.id).first() or Preferences(user_id=user.id),
            "actions": [
                (label, reverse("admin:accounts_user_support", args=[user.pk, slug]))
                for slug, (permission, _, label) in self.SUPPORT_ACTIONS.items()
                if slug in applicable and request.user.has_perm(permission)
            ],
            "can_export": request.user.has_perm(ACCOUNT_PERMISSION),
        }

    # --- actions ------------------------------------------------------------------------------

    def _user_or_404(self, request, object_id, permission: str) -> User:
        if not request.user.has_perm(permission):
            raise PermissionDenied
        user = self.get_object(request, unquote(object_id))
        if user is None:
            raise Http404("No such user.")
        return user

    def support_view(self, request, object_id, action):
        if action not in self.SUPPORT_ACTIONS:
            raise Http404("No such action.")
        permission, method, _ = self.SUPPORT_ACTIONS[action]
        user = self._user_or_404(request, object_id, permission)
        try:
            return getattr(self, f"_action_{method}")(request, user)
        except DomainError as error:
            fields = " ".join(f"{name}: {' '.join(errors)}" for name, errors in (error.fields or {}).items())
            self.message_user(request, f"{error.message} {fields}".strip(), messages.ERROR)
            return self._back(user)

    def _back(self, user) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:accounts_user_change", args=[user.pk]))

    def _confirm(self, request, user, *, title: str, lines: list[str], form=None, button="Confirm", confirm=False):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": user,
            "title": title,
            "lines": lines,
            "form": form,
            "button": button,
            "confirm": confirm,
        }
        return TemplateResponse(request, "admin/accounts/user/support_confirm.html", context)

    def _done(self, request, user, message: str):
        """Record the action in the admin log (with the staff member) and go back to the user's page."""
        self.log_change(request, user, f"Support: {message}")
        self.message_user(request, message[0].upper() + message[1:] + ".", messages.SUCCESS)
        return self._back(user)

    def _subscription_lines(self, user) -> list[str]:
        entitlements = billing_services.get_entitlements(user=user)
        period_end = f"{entitlements.current_period_end:%Y-%m-%d}" if entitlements.current_period_end else "—"
        return [
            f"Now: {entitlements.tier} ({entitlements.source}, {entitlements.status or 'no subscription'})",
            f"Current period ends {period_end}; cancel at period end: {entitlements.cancel_at_period_end}",
        ]

    def _action_cancel_at_period_end(self, request, user):
        if request.method != "POST":
            lines = [*self._subscription_lines(user), "The tier stays until the period ends, then falls to free."]
            return self._confirm(request, user, title="Cancel at period end", lines=lines)
        entitlements = billing_services.cancel_subscription(user=user, actor=request.user)
        return self._done(request, user, f"canceled the subscription at period end ({entitlements.current_period_end})")

    def _action_cancel_now(self, request, user):
        if request.method != "POST":
            lines = [
                *self._subscription_lines(user),
                "The subscription ends now in Stripe and the tier falls to free at once. Nothing is refunded: "
                "refund the last invoice separately if needed.",
            ]
            return self._confirm(request, user, title="Cancel the subscription now", lines=lines, button="Cancel now")
        billing_services.cancel_subscription_now(user=user, actor=request.user)
        return self._done(request, user, "canceled the subscription now, without a refund")

    def _action_resume(self, request, user):
        if request.method != "POST":
            lines = [*self._subscription_lines(user), "The pending cancellation is undone; the subscription renews."]
            return self._confirm(request, user, title="Resume the subscription", lines=lines)
        billing_services.resume_subscription(user=user, actor=request.user)
        return self._done(request, user, "resumed the subscription")

    def _action_refund(self, request, user):
        invoice = billing_services.get_refundable_invoice(user=user)
        if invoice is None:
            self.message_user(request, "This user has no paid invoice to refund.", messages.WARNING)
            return self._back(user)
        paid = major_units(invoice.amount_paid, invoice.currency)
        lines = [f"Last paid invoice {invoice.number}: {paid} paid on {invoice.created:%Y-%m-%d}."]
        initial = {"invoice_id": invoice.id, "confirmation": uuid.uuid4().hex}
        form = RefundForm(request.POST if request.method == "POST" else None, initial=initial)
        if request.method != "POST" or not form.is_valid():
            return self._confirm(request, user, title="Refund the last paid invoice", lines=lines, form=form)
        amount = form.cleaned_data["amount"]
        if amount is not None and invoice.currency in ZERO_DECIMAL_CURRENCIES and amount != amount.to_integral_value():
            form.add_error("amount", f"{invoice.currency.upper()} has no decimals.")
            return self._confirm(request, user, title="Refund the last paid invoice", lines=lines, form=form)
        amount_minor = None if amount is None else minor_units(amount, invoice.currency)
        if request.POST.get("confirm") != "yes":
            shown = paid if amount_minor is None else major_units(amount_minor, invoice.currency)
            lines.append(f"Refund {shown} to the card that paid it? Stripe sends the money back at once.")
            form = RefundForm(initial=form.cleaned_data)
            for field in form.fields.values():
                field.widget = forms.HiddenInput()
            return self._confirm(
                request, user, title="Confirm the refund", lines=lines, form=form, button="Refund", confirm=True
            )
        refund = billing_services.refund_last_invoice(
            user=user,
            invoice_id=form.cleaned_data["invoice_id"],
            amount=amount_minor,
            actor=request.user,
            confirmation=form.cleaned_data["confirmation"],
        )
        amount_shown = major_units(refund["amount"], refund["currency"])
        return self._done(request, user, f"refunded {amount_shown} of invoice {invoice.number} ({refund['id']})")

    def _action_grant_comp(self, request, user):
        form = CompGrantForm(request.POST if request.method == "POST" else None)
        if request.method != "POST" or not form.is_valid():
            lines = ["The tier applies until the date whatever Stripe says (never lowering what the user pays for)."]
            return self._confirm(request, user, title="Grant a comp tier", lines=lines, form=form, button="Grant")
        billing_services.grant_comp_tier(user_id=user.id, granted_by=request.user, **form.cleaned_data)
        data = form.cleaned_data
        return self._done(request, user, f"granted comp tier {data['tier']} until {data['until']:%Y-%m-%d %H:%M}")

    def _action_revoke_comp(self, request, user):
        if request.method != "POST":
            lines = ["The comp grant ends now; the user keeps what they pay for."]
            return self._confirm(request, user, title="Revoke the comp tier", lines=lines, button="Revoke")
        billing_services.revoke_comp_tier(user_id=user.id, revoked_by=request.user)
        return self._done(request, user, "revoked the comp tier")

    def _action_resend_verification(self, request, user):
        if services.is_email_verified(user=user) and not user.pending_email:
            self.message_user(request, f"{user.email} is already verified.", messages.WARNING)
            return self._back(user)
        address = user.pending_email or user.email
        if request.method != "POST":
            lines = [f"A new verification link goes to {address}."]
            return self._confirm(request, user, title="Resend the verification email", lines=lines, button="Send")
        services.resend_verification_email(user=user)
        return self._done(request, user, f"sent the verification email again to {address}")

    def _action_sign_out(self, request, user):
        if request.method != "POST":
            lines = ["Every session ends now: the extension's next request is refused and it must log in again."]
            return self._confirm(request, user, title="Sign out every session", lines=lines, button="Sign out")
        count = services.sign_out_all_sessions(user=user, reason="staff")
        return self._done(request, user, f"signed out {count} session(s)")

    def _action_deactivate(self, request, user):
        if request.method != "POST":
            lines = ["The user can no longer log in and every session ends now. Their data stays."]
            return self._confirm(request, user, title="Deactivate the account", lines=lines, button="Deactivate")
        services.set_user_active(user=user, active=False)
        return self._done(request, user, "deactivated the account and signed out every session")

    def _action_reactivate(self, request, user):
        if request.method != "POST":
            lines = ["The user can log in again."]
            return self._confirm(request, user, title="Reactivate the account", lines=lines, button="Reactivate")
        services.set_user_active(user=user, active=True)
        return self._done(request, user, "reactivated the account")

    def export_view(self, request, object_id):
        """The same JSON the user gets from GET /api/users/me/export (for access requests)."""
        user = self._user_or_404(request, object_id, ACCOUNT_PERMISSION)
        data = services.export_user_data(user=user)
        self.log_change(request, user, "Support: exported the account's data")
        response = HttpResponse(json.dumps(data, cls=DjangoJSONEncoder, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="chatfocus-export-{user.pk}.json"'
        return response

    # --- deletion: always through delete_account ----------------------------------------------

    def get_actions(self, request):
        actions = super().get_actions(request)
        # The stock bulk delete skips the account service (no Stripe cancel, sync data and events left behind).
        actions.pop("delete_selected", None)
        return actions

    def delete_view(self, request, object_id, extra_context=None):
        user = self.get_object(request, unquote(object_id))
        if user is None:
            raise Http404("No such user.")
        if not self.has_delete_permission(request, user):
            raise PermissionDenied
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            if self._delete_accounts(request, [user]):
                return HttpResponseRedirect(reverse("admin:accounts_user_changelist"))
            return self._back(user)
        return self._delete_confirmation(request, [user])

    @admin.action(
        description="Delete the selected accounts (cancels billing, erases all their data)", permissions=["delete"]
    )
    def delete_accounts(self, request, queryset):
        users = list(queryset)
        if request.POST.get("confirm") == "yes":
            self._delete_accounts(request, users)
            return None
        return self._delete_confirmation(request, users)

    def _delete_confirmation(self, request, users):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Delete accounts" if len(users) > 1 else f"Delete {users[0].email}",
            "accounts": [(user, services.describe_erasure(user=user)) for user in users],
            "bulk": len(users) > 1 or request.POST.get("action") == "delete_accounts",
        }
        return TemplateResponse(request, "admin/accounts/user/delete_account.html", context)

    def _delete_accounts(self, request, users) -> bool:
        """delete_account for each; a failure (Stripe down) keeps that account whole and is reported."""
        content_type = ContentType.objects.get_for_model(User)
        deleted = 0
        for user in users:
            user_id = user.pk
            if user_id == request.user.pk:
                self.message_user(request, "Delete your own account from your account page.", messages.ERROR)
                continue
            try:
                services.delete_account(user=user, staff=request.user)
            except DomainError as error:
                self.message_user(request, f"{user.email} was not deleted: {error.message}", messages.ERROR)
                continue
            deleted += 1
            # Named by id, not email: the log outlives the account.
            LogEntry.objects.create(
                user_id=request.user.pk,
                content_type=content_type,
                object_id=str(user_id),
                object_repr=f"Deleted user {user_id}",
                action_flag=DELETION,
                change_message="Support: deleted the account and erased its data (accounts.services.delete_account)",
            )
        if deleted:
            self.message_user(request, f"Deleted {deleted} account(s) and erased their data.", messages.SUCCESS)
        return deleted == len(users)

    # --- the change form and the password form sign out at once --------------------------------

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data:
            services.set_user_active(user=obj, active=obj.is_active)


class SessionStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("active", "Active"), ("revoked", "Revoked"))

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True, refresh_expires_at__gt=timezone.now())
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("user", "device_name", "method", "ip_address", "created_at", "last_used_at", "revoked_at")
    list_filter = (SessionStateFilter, "method", "revoked_reason")
    list_select_related = ("user",)
    search_fields = ("user__email", "device_name", "ip_address", "id")
    ordering = ("-created_at",)
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Session._meta.fields]
    actions = ("revoke_sessions",)

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected sessions (their tokens stop working at once)")
    def revoke_sessions(self, request, queryset):
        session_ids = list(queryset.filter(revoked_at__isnull=True).values_list("id", flat=True))
        for session_id in session_ids:
            revoke_session_by_id(session_id=session_id, reason="staff")
        self.message_user(request, f"Revoked {len(session_ids)} session(s).", messages.SUCCESS)


# simplejwt's token admins show each refresh token's text, which works as a login: staff see ids only.
admin.site.unregister(OutstandingToken)
admin.site.unregister(BlacklistedToken)


@admin.register(OutstandingToken)
class OutstandingTokenAdmin(token_admin.OutstandingTokenAdmin):
    exclude = ("token",)

    def get_readonly_fields(self, request, obj=None):
        return [name for name in super().get_readonly_fields(request, obj) if name != "token"]


@admin.register(BlacklistedToken)
class BlacklistedTokenAdmin(ReadOnlyAdminMixin, token_admin.BlacklistedTokenAdmin):
    """Read-only: deleting an entry would bring a revoked refresh token back to life."""

    fields = ("token_jti", "token_user", "token_created_at", "token_expires_at", "blacklisted_at")
    readonly_fields = fields
