"""Input validation and output shapes of the accounts API."""

import re
import zoneinfo
from urllib.parse import unquote, urlsplit

from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers

from accounts.addresses import InvalidAddress, clean_email
from accounts.models import Session
from accounts.oauth import is_allowed_redirect_uri

LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
RECENT_LOGIN_HELP = "Required if the account has a password; accounts without one need a login in the last 10 minutes."
PASSWORD = {"trim_whitespace": False, "max_length": 4096, "style": {"input_type": "password"}}


class StrictSerializer(serializers.Serializer):
    """Unknown keys are an error, not silently ignored (a typo must not look like a saved change)."""

    def validate(self, attrs):
        if isinstance(self.initial_data, dict):
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return attrs


class StrictSerializerSchema(OpenApiSerializerExtension):
    """The schema says what StrictSerializer enforces: request bodies take no properties beyond the declared."""

    target_class = StrictSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["additionalProperties"] = False
        return schema


def _last_path_segment(value: str, marker: str) -> str:
    """Accept a whole link from an email as well as the bare key/token it carries."""
    value = value.strip()
    if value.startswith(("http://", "https://")):
        path = urlsplit(value).path
        if marker in path:
            return unquote(path.split(marker, 1)[1].strip("/"))
    return value


def _canonical_email(value: str) -> str:
    try:
        return clean_email(value)
    except InvalidAddress as error:
        raise serializers.ValidationError(str(error)) from error


class CanonicalEmailField(serializers.EmailField):
    """An email address in its canonical form (accounts.addresses); invisible characters are a 400."""

    def to_internal_value(self, data):
        return _canonical_email(super().to_internal_value(data))


class LoginEmailField(serializers.CharField):
    """The login's address, canonical; not checked for format (an unknown address answers like a wrong password)."""

    def to_internal_value(self, data):
        return _canonical_email(super().to_internal_value(data))


# --- Auth -------------------------------------------------------------------------------


class RegisterSerializer(StrictSerializer):
    email = CanonicalEmailField(max_length=254)
    password = serializers.CharField(**PASSWORD)
    name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


class LoginSerializer(StrictSerializer):
    email = LoginEmailField(max_length=254)
    password = serializers.CharField(**PASSWORD)
    device_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class RefreshSerializer(StrictSerializer):
    refresh = serializers.CharField(max_length=4096)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class ForgotPasswordSerializer(StrictSerializer):
    email = CanonicalEmailField(max_length=254)


class ResetPasswordSerializer(StrictSerializer):
    token = serializers.CharField(max_length=1024, help_text="The token from the reset link, or the whole link.")
    password = serializers.CharField(**PASSWORD)

    def validate_token(self, value):
        return _last_path_segment(value, "/password/reset/key/")


class VerifyEmailSerializer(StrictSerializer):
    key = serializers.CharField(max_length=1024, help_text="The key from the confirmation link, or the whole link.")

    def validate_key(self, value):
        return _last_path_segment(value, "/confirm-email/")


class ChangePasswordSerializer(StrictSerializer):
    current_password = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text=RECENT_LOGIN_HELP,
        **PASSWORD,
    )
    new_password = serializers.CharField(**PASSWORD)


class SessionSerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField(help_text="True for the session that made this request.")

    class Meta:
        model = Session
        fields = ("id", "device_name", "user_agent", "ip_address", "method", "created_at", "last_used_at", "current")

    def get_current(self, session) -> bool:
        return session.id == getattr(self.context["request"].user, "session_id", None)


# --- Users ------------------------------------------------------------------------------


# A RegexValidator (not a function) so the OpenAPI schema shows the pattern.
validate_locale = RegexValidator(LOCALE, "Use a language tag such as en, de or pt-BR.")


def validate_timezone(value: str) -> str:
    if value not in zoneinfo.available_timezones():
        raise serializers.ValidationError("Use an IANA time zone such as Europe/Berlin or UTC.")
    return value


class SocialAccountSerializer(serializers.Serializer):
    provider = serializers.CharField()
    uid = serializers.CharField()
    date_joined = serializers.DateTimeField()


class ProfileSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    pending_email = serializers.EmailField(
        allow_null=True, help_text="A new address waiting for confirmation; `email` changes once it is confirmed."
    )
    name = serializers.CharField()
    locale = serializers.CharField()
    timezone = serializers.CharField()
    email_verified = serializers.BooleanField()
    date_joined = serializers.DateTimeField()
    tier = serializers.CharField()
    has_password = serializers.BooleanField()
    social_accounts = SocialAccountSerializer(many=True)


class ProfileUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=150, allow_blank=True)
    email = CanonicalEmailField(
        max_length=254,
        help_text=(
            "A new address gets a confirmation link and is used once it is confirmed; the old address is "
            "told, with a link that undoes the change for 7 days. Needs `current_password`."
        ),
    )
    current_password = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="Needed to change `email` (403 without it). " + RECENT_LOGIN_HELP,
        **PASSWORD,
    )
    locale = serializers.CharField(max_length=35, validators=[validate_locale])
    timezone = serializers.CharField(max_length=64, validators=[validate_timezone])


class LoginResultSerializer(TokenPairSerializer):
    user = ProfileSerializer()


class PreferencesSerializer(StrictSerializer):
    analytics_opt_in = serializers.BooleanField()
    product_emails = serializers.BooleanField()
    marketing_emails = serializers.BooleanField()
    locale = serializers.CharField(max_length=35, validators=[validate_locale])
    timezone = serializers.CharField(max_length=64, validators=[validate_timezone])


class DeleteAccountSerializer(StrictSerializer):
    password = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text=RECENT_LOGIN_HELP,
        **PASSWORD,
    )


class OAuthStartSerializer(StrictSerializer):
    redirect_uri = serializers.URLField(
        max_length=2000, help_text="Where the extension waits for the result; must be in OAUTH_REDIRECT_URIS."
    )

    def validate_redirect_uri(self, value):
        if not is_allowed_redirect_uri(value):
            raise serializers.ValidationError("This redirect URI is not allowed.")
        return value


class OAuthTokenSerializer(StrictSerializer):
    code = serializers.CharField(max_length=200)
    redirect_uri = serializers.URLField(
        max_length=2000, required=False, help_text="If sent, must be the redirect URI the code was issued for."
    )
    device_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
