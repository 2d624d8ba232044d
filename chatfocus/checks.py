"""Deploy checks: Warning for security mistakes, Info for optional integrations left unset."""

from django.conf import settings
from django.core.checks import Info, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_security_settings(app_configs, **kwargs):
    issues = []
    if not settings.JWT_SECRET:
        issues.append(Warning("JWT_SECRET is not set; access tokens are signed with SECRET_KEY.", id="chatfocus.W001"))
    elif settings.JWT_SECRET == settings.SECRET_KEY or len(settings.JWT_SECRET) < 32:
        issues.append(
            Warning("JWT_SECRET must be at least 32 characters and differ from SECRET_KEY.", id="chatfocus.W002")
        )
    if not settings.ALLOWED_HOSTS or "*" in settings.ALLOWED_HOSTS:
        issues.append(Warning("ALLOWED_HOSTS must name the hosts this server answers for.", id="chatfocus.W003"))
    if not settings.API_URL.startswith("https://"):
        issues.append(Warning("API_URL should be an https:// URL in production.", id="chatfocus.W004"))
    if not settings.DEBUG and settings.NUM_PROXIES is None:
        issues.append(
            Warning(
                "NUM_PROXIES is not set: behind a load balancer or router (Heroku, Railway) every client "
                "shares its address, so one client's failed logins lock everyone out.",
                hint="Set NUM_PROXIES to the number of proxies that append to X-Forwarded-For "
                "(1 on Heroku and Railway), or 0 when clients connect directly.",
                id="chatfocus.W005",
            )
        )
    return issues


@register(deploy=True)
def check_optional_integrations(app_configs, **kwargs):
    optional = {
        "STRIPE_SECRET_KEY": "billing answers 503 billing_not_configured",
        "STRIPE_WEBHOOK_SECRET": "Stripe webhooks are refused",
        "SENDGRID_API_KEY": "emails go to the console",
        "SENTRY_DSN": "errors are only logged",
        "CORS_ALLOWED_ORIGINS": "no extension origin may call the API from a browser context",
        "METRICS_TOKEN": "/metrics answers 401 to everyone",
    }
    return [
        Info(f"{name} is not set: {effect}.", id=f"chatfocus.I{index:03d}")
        for index, (name, effect) in enumerate(optional.items(), start=1)
        if not getattr(settings, name, "")
    ]
