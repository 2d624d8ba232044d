from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


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


@register()
def check_min_client_version(app_configs, **kwargs):
    from chatfocus.flow_control import parse_semver

    if not settings.MIN_CLIENT_VERSION or parse_semver(settings.MIN_CLIENT_VERSION) is not None:
        return []
    return [
        Error(
            f"MIN_CLIENT_VERSION={settings.MIN_CLIENT_VERSION!r} is not a semantic version.",
            hint="Use MAJOR.MINOR.PATCH, such as 1.4.0, or leave it empty for no minimum.",
            id="syncsettings.E001",
        )
    ]
