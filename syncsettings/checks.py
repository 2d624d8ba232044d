from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def check_field_encryption_keys(app_configs, **kwargs):
    if settings.FIELD_ENCRYPTION_KEYS:
        return []
    return [
        Warning(
            "FIELD_ENCRYPTION_KEYS is not set: secret.* sync values are encrypted with a key derived from "
            "SECRET_KEY, so anyone who learns SECRET_KEY can read them and rotating it makes them unreadable.",
            hint="Set FIELD_ENCRYPTION_KEYS to one or more Fernet keys (Fernet.generate_key()); values written "
            "before stay readable, and `manage.py sync_rotate_keys` moves them to the new key.",
            id="syncsettings.W001",
        )
    ]
