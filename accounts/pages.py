"""Hosted account pages under /account/: each view validates a form, calls a service, renders."""

import json
from functools import wraps

from allauth.account.views import EmailView
from allauth.socialaccount.views import ConnectionsView
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import services as accounts_services
from accounts.forms import CheckoutForm, DeleteAccountForm, PreferencesForm, ProfileForm
from billing import services as billing_services
from billing.tiers import FREE, TIERS
from chatfocus.exceptions import DomainError

INVOICES_ON_PAGE = 24


def _call(form, service, **kwargs) -> bool:
    """Run a service; its DomainError becomes errors next to the fields it names (or above the form)."""
    try:
        service(**kwargs)
    except DomainError as error:
        named = {name: errs for name, errs in (error.fields or {}).items() if name in form.fields}
        for name, errs in named.items():
            form.add_error(name, errs)
        if not named:
            form.add_error(None, error.message)
        return False
    return True


def staff_only_second_factor(view):
    """allauth's MFA pages are for staff (DESIGN §3): the API login never asks for a second factor, so a user
    who enrolled would believe the account protected when it is not."""

    @wraps(view)
    def guarded(request, *args, **kwargs):
        if request.user.is_authenticated and not request.user.is_staff:
            messages.error(request, "Two-factor authentication is only for staff accounts.")
            return redirect("account_profile")
        return view(request, *args, **kwargs)

    return guarded


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: a stale or forged form gets our friendly page instead of Django's debug-style one."""
    context = {
        "status": 403,
        "title": "This form has expired",
        "message": "For your security the form could not be sent. Go back, reload the page and try again.",
    }
    return render(request, "error.html", context, status=403)


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    user = request.user
    preferences = accounts_services.get_preferences(user=user)
    requires_password = user.has_usable_password()
    initial = {"name": user.name, "email": user.email, "locale": preferences.locale, "timezone": preferences.timezone}
    profile_form = ProfileForm(initial=initial, requires_password=requires_password)
    preferences_form = PreferencesForm(
        initial={name: getattr(preferences, name) for name in PreferencesForm.base_fields}
    )
    if request.method == "POST" and "save_profile" in request.POST:
        profile_form = ProfileForm(request.POST, initial=initial, requires_password=requires_password)
        if profile_form.is_valid():
            current_password = profile_form.cleaned_data.pop("current_password", None)
            changes = {name: profile_form.cleaned_data[name] for name in profile_form.changed_data if name in initial}
            email_changed = "email" in changes and changes["email"] != user.email
            if not email_changed:
                changes.pop("email", None)
            if _call(
                profile_form,
                accounts_services.update_profile,
                user=user,
                current_password=current_password,
                **changes,
            ):
                messages.success(request, "Your profile was saved.")
                if email_changed:
                    messages.info(
                        request,
                        f"We sent a confirmation link to {changes['email']}. "
                        "Your email address changes when you open it.",
                    )
                return redirect("account_profile")
    elif request.method == "POST" and "save_preferences" in request.POST:
        preferences_form = PreferencesForm(request.POST)
        if preferences_form.is_valid() and _call(
            preferences_form, accounts_services.update_preferences, user=user, **preferences_form.cleaned_data
        ):
            messages.success(request, "Your preferences were saved.")
            return redirect("account_profile")
    return render(
        request,
        "pages/profile.html",
        {
            "profile_form": profile_form,
            "preferences_form": preferences_form,
            "email_verified": accounts_services.is_email_verified(user=user),
        },
    )


class EmailAddresses(EmailView):
    """allauth's email page without adding or promoting addresses: the profile form changes the email.

    That one way needs the current password and tells the old address (accounts.services.update_profile).
    """

    def post(self, request, *args, **kwargs):
        if "action_add" in request.POST or "action_primary" in request.POST:
            messages.error(request, "Change your email address on this page: it needs your current password.")
            return redirect("account_profile")
        return super().post(request, *args, **kwargs)


@require_http_methods(["GET", "POST"])
def undo_email_change(request, token):
    """The link in the notice to the old address: a button (mail scanners open links), then the undo."""
    if request.method == "POST":
        try:
            accounts_services.undo_email_change(token=token)
        except DomainError as error:
            messages.error(request, " ".join((error.fields or {}).get("token", [error.message])))
            return render(request, "account/email_change_undo.html", {"failed": True}, status=400)
        logout(request)
        messages.success(
            request,
            "Your email address is back. Every session was signed out; we emailed you a link to set a new password.",
        )
        return redirect("account_login")
    return render(request, "account/email_change_undo.html")


class Connections(LoginRequiredMixin, ConnectionsView):
    """allauth's connected-accounts page at our URL; allauth refuses to unlink the last way to log in."""

    success_url = reverse_lazy("account_connections")


@login_required
@require_GET
def sessions(request):
    return render(request, "pages/sessions.html", {"sessions": accounts_services.list_sessions(user=request.user)})


@login_required
@require_POST
def revoke_session(request, session_id):
    try:
        accounts_services.revoke_session(user=request.user, session_id=session_id)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "The session was signed out. Its device has to log in again.")
    return redirect("account_sessions")


@login_required
@require_GET
def billing(request):
    user = request.user
    if request.GET.get("session_id"):
        # Back from Stripe Checkout: sync the session now so the new plan shows before the webhook lands.
        try:
            billing_services.sync_checkout_session(user=user, session_id=request.GET["session_id"])
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, "Thank you! Your plan is updated.")
        return redirect("account_billing")
    entitlements = billing_services.get_entitlements(user=user)
    invoices = list(billing_services.list_invoices(user=user)[: INVOICES_ON_PAGE + 1])
    return render(
        request,
        "pages/billing.html",
        {
            "entitlements": entitlements,
            "tier": TIERS[entitlements.tier],
            "paid_tiers": [tier for name, tier in TIERS.items() if name != FREE],
            "billing_configured": billing_services.is_billing_configured(),
            "change_form": CheckoutForm(initial={"tier": entitlements.tier, "interval": entitlements.interval}),
            "preview": _plan_change_preview(request),
            "invoices": [billing_services.invoice_summary(invoice) for invoice in invoices[:INVOICES_ON_PAGE]],
            "more_invoices": len(invoices) > INVOICES_ON_PAGE,
        },
    )


def _plan_change_preview(request) -> dict | None:
    """`?tier=&interval=` on the billing page: what that plan change would charge, shown before it is confirmed."""
    if "tier" not in request.GET and "interval" not in request.GET:
        return None
    form = CheckoutForm(request.GET)
    if not form.is_valid():
        messages.error(request, "Choose a plan and a billing period.")
        return None
    ok, preview = _billing_action(request, billing_services.preview_subscription_change, **form.cleaned_data)
    return {**preview, **form.cleaned_data, "title": TIERS[form.cleaned_data["tier"]].title} if ok else None


def _billing_action(request, service, **kwargs):
    """(ok, result) of a paid action; a Stripe or configuration failure becomes a message on the page."""
    try:
        return True, service(user=request.user, **kwargs)
    except DomainError as error:
        messages.error(request, error.message)
        return False, None


@login_required
@require_POST
def checkout(request):
    form = CheckoutForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a plan and a billing period.")
        return redirect("account_billing")
    ok, checkout_url = _billing_action(request, billing_services.start_checkout, **form.cleaned_data)
    return redirect(checkout_url if ok else "account_billing")


@login_required
@require_POST
def change_plan(request):
    form = CheckoutForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a plan and a billing period.")
        return redirect("account_billing")
    ok, entitlements = _billing_action(request, billing_services.change_subscription, **form.cleaned_data)
    if ok and entitlements.pending_tier:
        until = f"{entitlements.current_period_end:%-d %B %Y}" if entitlements.current_period_end else "then"
        messages.success(
            request,
            f"Your plan changes at the end of the period. You keep {TIERS[entitlements.tier].title} until {until}.",
        )
    elif ok:
        messages.success(request, f"Your plan is now {TIERS[entitlements.tier].title}.")
    return redirect("account_billing")


@login_required
@require_POST
def billing_portal(request):
    ok, portal_url = _billing_action(request, billing_services.create_portal_session)
    return redirect(portal_url if ok else "account_billing")


@login_required
@require_POST
def cancel_subscription(request):
    ok, _ = _billing_action(request, billing_services.cancel_subscription)
    if ok:
        messages.success(request, "Your subscription is cancelled. You keep your plan until the end of the period.")
    return redirect("account_billing")


@login_required
@require_POST
def resume_subscription(request):
    ok, _ = _billing_action(request, billing_services.resume_subscription)
    if ok:
        messages.success(request, "Your subscription continues. Nothing changes for you.")
    return redirect("account_billing")


@login_required
@require_http_methods(["GET", "POST"])
def export(request):
    if request.method == "GET":
        return render(request, "pages/export.html")
    data = accounts_services.export_user_data(user=request.user)
    filename = f"chatfocus-export-{timezone.now():%Y-%m-%d}.json"
    response = HttpResponse(
        json.dumps(data, indent=2, default=str, ensure_ascii=False), content_type="application/json; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def delete(request):
    user = request.user
    requires_password = user.has_usable_password()
    form = DeleteAccountForm(request.POST or None, requires_password=requires_password)
    if request.method == "POST" and form.is_valid():
        password = form.cleaned_data.get("password")
        if _call(form, accounts_services.delete_account, user=user, password=password):
            logout(request)
            messages.success(request, "Your account and its data were deleted. Thank you for using ChatFocus.")
            return redirect("landing")
    entitlements = billing_services.get_entitlements(user=user)
    return render(
        request,
        "pages/delete.html",
        {"form": form, "entitlements": entitlements, "tier": TIERS[entitlements.tier]},
    )
