from django.apps import AppConfig


class SyncsettingsConfig(AppConfig):
    name = "syncsettings"
    verbose_name = "Settings sync"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from syncsettings import (
            checks,  # noqa: F401  (registers the deploy check)
            personal_data,
        )

        personal_data.register()
