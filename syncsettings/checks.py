from django.conf import settings
from django.core.checks import Info, register


@register(deploy=True)
def check_field_encryption_keys(app_configs, **kwargs):
    if settings.FIELD_ENCRYPTION_KEYS:
        return []
    return [
        Info(
            "FIELD_ENCRYPTION_KEYS is not set: secret.* sync values are encrypted with a key derived from "
            "SECRET_KEY, so rotating SECRET_KEY would make them unreadable.",
            hint="Set FIELD_ENCRYPTION_KEYS to one or more Fernet keys (Fernet.generate_key()).",
            id="syncsettings.I001",
        )
    ]
