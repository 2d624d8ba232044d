"""OAuth login for the extension (Google, GitHub): allauth runs the provider dance, we hand over its result.

1. `GET /api/auth/oauth/{provider}?redirect_uri=` checks the URI against OAUTH_REDIRECT_URIS,
   remembers it in a short-lived session (the one cookie the API uses, SameSite=Lax; a browser
   signed in to the hosted pages is signed out first) and lets allauth redirect to the provider
   with its own state.
2. allauth's callback (`/account/{provider}/login/callback/`) finishes the login: new accounts
   are created with the provider's verified email, an existing account is linked only when it
   verified the same email (accounts.adapters.SocialAccountAdapter). It then redirects to
   `/api/auth/oauth/complete`.
3. That view turns the logged-in browser session into a one-time code (60 s, single use, bound
   to the redirect URI), ends the session and redirects to `redirect_uri?code=…`; failures
   redirect to `redirect_uri?error=…` instead.
4. `POST /api/auth/oauth/token {code}` exchanges the code for a JWT session.
"""

import hashlib
import secrets
from urllib.parse import urlencode

from allauth.socialaccount.adapter import get_adapter as get_social_adapter
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.base import AuthProcess
from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.core.cache import cache
from django.http import HttpResponseRedirect
from django.urls import reverse

from chatfocus import metrics
from chatfocus.exceptions import NotFound, ServiceUnavailable, ValidationFailed

PROVIDERS = ("google", "github")
PENDING_SESSION_KEY = "accounts_oauth_pending"
CODE_CACHE_KEY = "accounts:oauth_code:{digest}"
CODE_LIFETIME = 60


class ProviderNotConfigured(ServiceUnavailable):
    code = "provider_not_configured"
    message = "Logging in with this provider is not set up on this server."


def is_allowed_redirect_uri(uri: str) -> bool:
    return uri in settings.OAUTH_REDIRECT_URIS


def _with_params(uri: str, **params) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{urlencode(params)}"


def _code_key(code: str) -> str:
    return CODE_CACHE_KEY.format(digest=hashlib.sha256(code.encode()).hexdigest())


def start_oauth_login(*, request, provider_id: str, redirect_uri: str) -> HttpResponseRedirect:
    """Redirect the browser to the provider (allauth keeps the state); the redirect URI waits in the session."""
    if provider_id not in PROVIDERS:
        raise NotFound(f"Unknown login provider {provider_id!r}.")
    try:
        provider = get_social_adapter(request).get_provider(request, provider_id)
    except SocialApp.DoesNotExist as error:
        raise ProviderNotConfigured() from error
    if SESSION_KEY in request.session:
        # allauth would log a signed-in browser out at the callback, flushing the pending login
        # with it; the session ends at the code hand-over anyway, so end it now.
        logout(request)
    request.session[PENDING_SESSION_KEY] = {"provider": provider_id, "redirect_uri": redirect_uri}
    return provider.redirect(request, process=AuthProcess.LOGIN, next_url=reverse("auth-oauth-complete"))


def oauth_error_redirect(request, error: str) -> HttpResponseRedirect | None:
    """Send a failed extension login back to its redirect URI with `error=`; None outside that flow."""
    pending = request.session.pop(PENDING_SESSION_KEY, None)
    if not pending:
        return None
    metrics.LOGINS.labels(method=pending["provider"], outcome="failure").inc()
    return HttpResponseRedirect(_with_params(pending["redirect_uri"], error=error))


def is_extension_login(request) -> bool:
    return PENDING_SESSION_KEY in getattr(request, "session", {})


def finish_oauth_login(*, request) -> HttpResponseRedirect:
    """allauth logged the browser in: swap that session for a one-time code at the redirect URI."""
    pending = request.session.get(PENDING_SESSION_KEY)
    if not pending:
        raise ValidationFailed("No login with a provider is in progress. Start again from the extension.")
    if not getattr(request.user, "is_authenticated", False):
        return oauth_error_redirect(request, "login_failed")
    code = secrets.token_urlsafe(32)
    cache.set(
        _code_key(code),
        {"user_id": str(request.user.id), "redirect_uri": pending["redirect_uri"], "provider": pending["provider"]},
        timeout=CODE_LIFETIME,
    )
    logout(request)  # the browser session only carried the login to here
    return HttpResponseRedirect(_with_params(pending["redirect_uri"], code=code))


def redeem_oauth_code(*, code: str, redirect_uri: str | None = None) -> dict:
    """The login a code stands for, once: {user_id, redirect_uri, provider}; else ValidationFailed."""
    key = _code_key(code)
    grant = cache.get(key)
    # delete() is the single-use gate: of two concurrent redemptions only one deletes the key.
    if grant is None or not cache.delete(key):
        raise ValidationFailed(fields={"code": ["This code is invalid, expired or already used. Log in again."]})
    if redirect_uri is not None and redirect_uri != grant["redirect_uri"]:
        raise ValidationFailed(fields={"redirect_uri": ["This code was issued for another redirect URI."]})
    return grant
