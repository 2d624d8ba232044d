"""Hosted account pages; mounted at /account/ before allauth's own URLs."""

from django.urls import path

from accounts import pages

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
]
