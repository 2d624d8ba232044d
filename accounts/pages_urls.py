"""Hosted account pages; mounted at /account/ before allauth's own URLs."""

from allauth.mfa import urls as mfa_urls
from django.urls import URLPattern, URLResolver, include, path

from accounts import pages

# The login steps of a staff login; every other MFA page (enrolment, codes) is staff-only.
MFA_LOGIN_STEPS = {"mfa_authenticate", "mfa_reauthenticate", "mfa_trust"}


def _staff_only(patterns):
    guarded = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            guarded.append(path(str(pattern.pattern), include(_staff_only(pattern.url_patterns))))
        elif pattern.name in MFA_LOGIN_STEPS:
            guarded.append(pattern)
        else:
            guarded.append(
                URLPattern(
                    pattern.pattern,
                    pages.staff_only_second_factor(pattern.callback),
                    pattern.default_args,
                    pattern.name,
                )
            )
    return guarded


urlpatterns = [
    path("", pages.profile, name="account_profile"),
    path("email/", pages.EmailAddresses.as_view(), name="account_email"),
    path("email/undo/<str:token>/", pages.undo_email_change, name="account_undo_email_change"),
    path("connections/", pages.Connections.as_view(), name="account_connections"),
    path("sessions/", pages.sessions, name="account_sessions"),
    path("sessions/<uuid:session_id>/revoke/", pages.revoke_session, name="account_revoke_session"),
    path("billing/", pages.billing, name="account_billing"),
    path("billing/checkout/", pages.checkout, name="account_billing_checkout"),
    path("billing/change/", pages.change_plan, name="account_billing_change"),
    path("billing/portal/", pages.billing_portal, name="account_billing_portal"),
    path("billing/cancel/", pages.cancel_subscription, name="account_billing_cancel"),
    path("billing/resume/", pages.resume_subscription, name="account_billing_resume"),
    path("export/", pages.export, name="account_export"),
    path("delete/", pages.delete, name="account_delete"),
    # Shadows the same URLs that allauth.urls mounts after these.
    path("2fa/", include(_staff_only(mfa_urls.urlpatterns))),
]
