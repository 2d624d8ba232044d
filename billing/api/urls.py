from django.urls import path

from billing.api import views

urlpatterns = [
    path("subscriptions", views.SubscriptionView.as_view(), name="subscriptions"),
    path("subscriptions/plans", views.PlansView.as_view(), name="subscription-plans"),
    path("subscriptions/invoices", views.InvoicesView.as_view(), name="subscription-invoices"),
    path("subscriptions/preview", views.PreviewView.as_view(), name="subscription-preview"),
    path("subscriptions/portal", views.PortalView.as_view(), name="subscription-portal"),
    path("subscriptions/webhook", views.WebhookView.as_view(), name="subscription-webhook"),
]
