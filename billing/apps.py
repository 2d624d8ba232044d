from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        import stripe
        from django.conf import settings

        # One API version for our calls and dj-stripe's, and one timeout for every Stripe request.
        stripe.api_version = settings.STRIPE_API_VERSION
        if stripe.default_http_client is None:
            stripe.default_http_client = stripe.new_default_http_client(timeout=settings.STRIPE_TIMEOUT_SECONDS)

        from billing import personal_data

        personal_data.register()
