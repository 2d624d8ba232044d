"""The admin site: password login under the API's login limits, and a second factor for staff.

With ADMIN_REQUIRE_MFA on, the admin opens only to a session that passed allauth's MFA: either
through this login form (email, password and an authenticator or recovery code) or through the
hosted login at /account/login/, which asks for the code itself. Staff enroll at /account/2fa/.
"""

from allauth.account.authentication import get_authentication_records
from allauth.mfa.base.forms import AuthenticateForm
from allauth.mfa.utils import is_mfa_enabled
from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.urls import reverse
from django.utils.html import format_html

from accounts import services
from accounts.api.views import client_ip
from chatfocus.exceptions import InvalidCredentials, RateLimited


def passed_second_factor(request) -> bool:
    """Whether this session's login included an MFA step and the user still has an authenticator."""
    records = get_authentication_records(request, request.user)
    return any(record.get("method") == "mfa" for record in records) and is_mfa_enabled(request.user)


class AdminLoginForm(AdminAuthenticationForm):
    code = forms.CharField(
        label="Authenticator code",
        required=False,
        strip=True,
        help_text="The 6-digit code from your authenticator app, or one of your recovery codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def clean(self):
        email, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if not email or not password:
            return self.cleaned_data
        try:
            user = services.authenticate_password(email=email, password=password, ip=client_ip(self.request))
        except RateLimited as error:
            minutes = max(1, round(error.retry_after / 60))
            raise forms.ValidationError(
                f"Too many failed logins for this account or address. Try again in {minutes} minute(s).",
                code="rate_limited",
            ) from None
        except InvalidCredentials:
            raise self.get_invalid_login_error() from None
        user.backend = "django.contrib.auth.backends.ModelBackend"  # the one authenticate_password asked
        self.confirm_login_allowed(user)
        if settings.ADMIN_REQUIRE_MFA or is_mfa_enabled(user):
            # Recorded by AdminSite.login once Django's login has set up the session.
            self.request.admin_second_factor = self.check_second_factor(user)
        self.user_cache = user
        return self.cleaned_data

    def check_second_factor(self, user):
        if not is_mfa_enabled(user):
            setup_url = reverse("mfa_index")
            raise forms.ValidationError(
                format_html(
                    "Staff accounts need two-factor authentication. Log in at <a href='{}'>your account</a>, "
                    "set up an authenticator app, then come back.",
                    setup_url,
                ),
                code="mfa_required",
            )
        code_form = AuthenticateForm(user=user, data={"code": self.cleaned_data.get("code", "")})
        if not code_form.is_valid():
            raise forms.ValidationError(
                "Enter the current code from your authenticator app, or one of your recovery codes.",
                code="mfa_code_invalid",
            )
        return code_form


class AdminSite(admin.AdminSite):
    login_form = AdminLoginForm
    login_template = "admin/chatfocus_login.html"

    def has_permission(self, request):
        if not super().has_permission(request):
            return False
        return not settings.ADMIN_REQUIRE_MFA or passed_second_factor(request)

    def login(self, request, extra_context=None):
        response = super().login(request, extra_context)
        second_factor = getattr(request, "admin_second_factor", None)
        if second_factor is not None and request.user.is_authenticated:
            second_factor.save()
        return response
