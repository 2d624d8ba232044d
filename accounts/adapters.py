"""allauth adapters: the one place where allauth's flows meet ChatFocus (emails, links, limits, providers)."""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from allauth.account.utils import user_email
from allauth.core import context
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.providers.base import AuthError, AuthProcess
from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.urls import reverse

from accounts import oauth
from accounts.addresses import InvalidAddress, canonical_email, clean_email, clean_new_email
from accounts.models import User
from accounts.ratelimits import client_ip
from chatfocus import metrics
from chatfocus.emails import send_templated_email
from chatfocus.exceptions import RateLimited

# allauth's email templates → ours, so hosted pages and the API send the same emails.
TEMPLATES = {
    "account/email/email_confirmation_signup": "verify_email",
    "account/email/email_confirmation": "verify_email",
    "account/email/password_reset_key": "password_reset",
    "account/email/account_already_exists": "account_exists",
}
# Why a provider login or connection was refused, for people on the hosted pages.
REFUSALS = {
    "email_not_verified": "The provider has not verified your email address there, so it cannot be used here.",
    "account_not_linkable": (
        "An account with this email address exists but has not verified it. Log in with your password "
        "(or reset it) to verify it first."
    ),
    "own_email_not_verified": "Verify your email address before you connect a login provider.",
}


def absolute_url(path: str) -> str:
    """A link for an email: the host of the current request, else API_URL (Celery, shell, services)."""
    request = context.request
    return request.build_absolute_uri(path) if request is not None else settings.API_URL + path


def password_reset_lifetime_hours() -> int:
    return max(1, settings.PASSWORD_RESET_TIMEOUT // 3600)


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix, email, context):
        template = TEMPLATES.get(template_prefix)
        if template is None:
            return super().send_mail(template_prefix, email, context)
        user = context.get("user")
        send_templated_email(
            to=email,
            template=template,
            context={
                "name": (user.name if user is not None else "") or "",
                "signup": template_prefix.endswith("_signup"),
                "activate_url": context.get("activate_url", ""),
                "password_reset_url": context.get("password_reset_url")
                or absolute_url(reverse("account_reset_password")),
                "login_url": absolute_url(reverse("account_login")),
                "reset_hours": password_reset_lifetime_hours(),
            },
        )

    def get_email_confirmation_url(self, request, emailconfirmation):
        return absolute_url(reverse("account_confirm_email", args=[emailconfirmation.key]))

    def get_reset_password_from_key_url(self, key):
        path = reverse("account_reset_password_from_key", kwargs={"uidb36": "UID", "key": "KEY"})
        return absolute_url(path.replace("UID-KEY", key))

    def confirm_email(self, request, email_address):
        """The confirm page (link in the email) applies a pending email change like the API does."""
        from accounts.services import confirm_email_address

        confirmed = confirm_email_address(email_address=email_address)
        if confirmed:
            self.add_message(
                request, messages.SUCCESS, "account/messages/email_confirmed.txt", {"email": email_address.email}
            )
        else:
            self.add_message(
                request,
                messages.ERROR,
                "account/messages/email_confirmation_failed.txt",
                {"email": email_address.email},
            )
        return confirmed

    def clean_email(self, email):
        """Addresses chosen on the hosted pages (signup) follow the API's rules: canonical, no look-alikes."""
        try:
            return clean_new_email(email)
        except InvalidAddress as error:
            raise forms.ValidationError(str(error)) from error

    def pre_authenticate(self, request, **credentials):
        """The API's login counters (per IP, failures per canonical address) instead of allauth's own."""
        from accounts.services import check_login_allowed

        try:
            check_login_allowed(email=credentials.get("email", ""), ip=client_ip(request))
        except RateLimited as error:
            raise forms.ValidationError(error.message) from error

    def authenticate(self, request, **credentials):
        from accounts.services import clear_login_failures

        if "email" in credentials:
            try:
                credentials["email"] = clean_email(credentials["email"])
            except InvalidAddress as error:
                raise forms.ValidationError(str(error)) from error
        user = super().authenticate(request, **credentials)
        if user is not None and "email" in credentials:
            clear_login_failures(email=credentials["email"])
        return user

    def save_user(self, request, user, form, commit=True):
        """A signup on the hosted pages counts like one through the API."""
        user = super().save_user(request, user, form, commit)
        metrics.SIGNUPS.labels(method="password").inc()
        return user

    def post_login(self, request, user, **kwargs):
        """Hosted-page logins count like the API's; extension OAuth logins count when their code is exchanged."""
        sociallogin = (kwargs.get("signal_kwargs") or {}).get("sociallogin")
        if not kwargs.get("signup") and not oauth.is_extension_login(request):
            method = sociallogin.account.provider if sociallogin else "password"
            metrics.LOGINS.labels(method=method, outcome="success").inc()
        return super().post_login(request, user, **kwargs)

    def authentication_failed(self, request, **credentials):
        from accounts.services import record_login_failure

        if "email" in credentials:
            record_login_failure(email=credentials["email"])
        metrics.LOGINS.labels(method="password", outcome="failure").inc()
        super().authentication_failed(request, **credentials)

    def set_password(self, user, password):
        """Hosted password change and reset sign out every API session too."""
        from accounts.services import set_user_password

        set_user_password(user=user, password=password)


class MFAAdapter(DefaultMFAAdapter):
    def is_mfa_enabled(self, user, types=None):
        """A second factor guards staff only (DESIGN §3): the API login never asks users for one, so the hosted
        login must not either, or a user would think a factor protects the account when it does not."""
        return user.is_authenticated and user.is_staff and super().is_mfa_enabled(user, types=types)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    """Google/GitHub (DESIGN §3 "Connected providers"), on the extension flow and the hosted pages alike.

    A provider creates an account, links to one or is connected to one only with an address the
    provider verified; linking by email needs the account to have verified it too, and connecting
    needs the account's own address verified. Extension logins end at its redirect URI.
    """

    def is_email_verified(self, provider, email):
        # Only the provider's own word counts (Google's email_verified, GitHub's verified flag):
        # a blanket VERIFIED_EMAIL setting would override Google saying "not verified".
        return False

    def can_authenticate_by_email(self, login, email):
        # allauth would also log into an account whose owner never verified this address (and wipe
        # its password); we never link to an unverified account: its creator may not own the mailbox.
        return (
            super().can_authenticate_by_email(login, email)
            and EmailAddress.objects.filter(email=canonical_email(email), verified=True).exists()
        )

    def pre_social_login(self, request, sociallogin):
        verified = [address for address in sociallogin.email_addresses if address.verified]
        for address in verified:
            address.email = canonical_email(address.email)
        if sociallogin.state.get("process") == AuthProcess.CONNECT:
            self._check_connect(request, verified)
        elif not sociallogin.is_existing:
            self._check_signup(request, sociallogin, verified)

    def _check_connect(self, request, verified):
        user = request.user
        if not user.is_authenticated:
            return  # allauth sends anonymous connects to the login page
        if not EmailAddress.objects.filter(user_id=user.id, email=user.email, verified=True).exists():
            self._refuse(request, "own_email_not_verified")
        if not verified:
            self._refuse(request, "email_not_verified")

    def _check_signup(self, request, sociallogin, verified):
        """A new account: from the provider's verified addresses only, the primary one as its email."""
        if not verified:
            self._refuse(request, "email_not_verified")
        if User.objects.filter(email__in=[address.email for address in verified]).exists():
            # An account with this address exists but never verified it: not linked.
            self._refuse(request, "account_not_linkable")
        sociallogin.email_addresses = verified
        chosen = next((address for address in verified if address.primary), verified[0])
        user_email(sociallogin.user, chosen.email)

    def _refuse(self, request, error):
        response = oauth.oauth_error_redirect(request, error)
        if response is None:
            messages.error(request, REFUSALS.get(error, "Logging in with this provider failed. Please try again."))
            target = "account_connections" if request.user.is_authenticated else "account_login"
            response = HttpResponseRedirect(reverse(target))
        raise ImmediateHttpResponse(response)

    def on_authentication_error(self, request, provider, error=None, exception=None, extra_context=None):
        if "state" not in (extra_context or {}):
            code = "state_mismatch"
        elif error in (AuthError.CANCELLED, AuthError.DENIED):
            code = "access_denied"
        else:
            code = "provider_error"
        self._refuse(request, code)

    def populate_user(self, request, sociallogin, data):
        user = super().populate_user(request, sociallogin, data)
        full_name = " ".join(part for part in (data.get("first_name"), data.get("last_name")) if part)
        user.name = (data.get("name") or full_name or "")[:150]
        return user

    def save_user(self, request, sociallogin, form=None):
        user = super().save_user(request, sociallogin, form)
        metrics.SIGNUPS.labels(method=sociallogin.account.provider).inc()
        return user
