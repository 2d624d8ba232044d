"""Forms of the hosted account pages: they validate input, the services in accounts.services decide."""

import zoneinfo

from allauth.account import forms as allauth_forms
from allauth.core import context
from django import forms

from accounts import services
from accounts.addresses import InvalidAddress, clean_email
from accounts.locales import LOCALE_CHOICES
from accounts.ratelimits import client_ip
from billing.tiers import FREE, TIERS
from chatfocus.exceptions import RateLimited

TIMEZONE_CHOICES = [(name, name) for name in sorted(zoneinfo.available_timezones())]


class ProfileForm(forms.Form):
    name = forms.CharField(max_length=150, required=False, widget=forms.TextInput(attrs={"autocomplete": "name"}))
    email = forms.EmailField(
        max_length=254,
        help_text="A new address is used once you open the confirmation link we send to it.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    locale = forms.ChoiceField(label="Language", choices=LOCALE_CHOICES)
    timezone = forms.ChoiceField(label="Time zone", choices=TIMEZONE_CHOICES)
    current_password = forms.CharField(
        label="Current password",
        required=False,
        strip=False,
        help_text="Needed only to change your email address.",
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args, requires_password: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not requires_password:
            # Accounts without a password (Google/GitHub only) prove themselves with a recent login instead.
            del self.fields["current_password"]

    def clean_email(self):
        try:
            return clean_email(self.cleaned_data["email"])
        except InvalidAddress as error:
            raise forms.ValidationError(str(error)) from error


class PreferencesForm(forms.Form):
    analytics_opt_in = forms.BooleanField(
        label="Share anonymous usage analytics",
        required=False,
        help_text="Helps us see which features are used. Off unless you turn it on.",
    )
    product_emails = forms.BooleanField(label="Product update emails", required=False)
    marketing_emails = forms.BooleanField(label="News and offers by email", required=False)


class DeleteAccountForm(forms.Form):
    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    confirm = forms.BooleanField(label="I understand that this cannot be undone")

    def __init__(self, *args, requires_password: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not requires_password:
            # Accounts without a password (Google/GitHub only) prove themselves with a recent login instead.
            del self.fields["password"]


class CheckoutForm(forms.Form):
    tier = forms.ChoiceField(choices=[(name, tier.title) for name, tier in TIERS.items() if name != FREE])
    interval = forms.ChoiceField(label="Billing period", choices=[("month", "Monthly"), ("year", "Yearly")])


class ResetPasswordForm(allauth_forms.ResetPasswordForm):
    """The hosted "forgot password" form: the API's counters and email (accounts.services)."""

    def clean_email(self):
        try:
            email = clean_email(self.cleaned_data["email"])
            return services.count_password_reset_request(email=email, ip=client_ip(context.request))
        except InvalidAddress as error:
            raise forms.ValidationError(str(error)) from error
        except RateLimited as error:
            raise forms.ValidationError(error.message) from error

    def save(self, request, **kwargs):
        services.send_password_reset(email=self.cleaned_data["email"])
        return self.cleaned_data["email"]


class ResetPasswordKeyForm(allauth_forms.ResetPasswordKeyForm):
    """The hosted reset link's form: the same completion as the API's (every session ends, the address is proven)."""

    def save(self):
        services.complete_password_reset(user=self.user, password=self.cleaned_data["password1"])
