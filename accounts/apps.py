from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import signals

        signals.connect()


class ChatFocusAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with our site: the API's login limits and a second factor for staff."""

    default = False  # INSTALLED_APPS names it; "accounts" alone still means AccountsConfig
    default_site = "accounts.admin_site.AdminSite"
