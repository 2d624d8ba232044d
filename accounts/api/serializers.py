"""Input validation and output shapes of the accounts API."""

import zoneinfo
from urllib.parse import unquote, urlsplit

from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers

from accounts.addresses import InvalidAddress, clean_email
from accounts.locales import LOCALE_CHOICES
from accounts.models import Session
from accounts.oauth import is_allowed_redirect_uri
from chatfocus.serializers import StrictSerializer

RECENT_LOGIN_HELP = "Required if the account has a password; accounts without one need a login in the last 10 minutes."
PASSWORD = {"trim_whitespace": False, "max_length": 4096, "style": {"input_type": "password"}}


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
    locale = serializers.ChoiceField(choices=LOCALE_CHOICES)
    timezone = serializers.CharField(max_length=64, validators=[validate_timezone])


class LoginResultSerializer(TokenPairSerializer):
    user = ProfileSerializer()


class PreferencesSerializer(StrictSerializer):
    analytics_opt_in = serializers.BooleanField()
    product_emails = serializers.BooleanField()
    marketing_emails = serializers.BooleanField()
    locale = serializers.ChoiceField(choices=LOCALE_CHOICES)
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


LOGIN_EXAMPLES = [
    OpenApiExample(
        "Email and password",
        request_only=True,
        value={"email": "ada@example.com", "password": "correct horse battery staple", "device_name": "Chrome on Mac"},
    ),
    OpenApiExample(
        "A new session",
        response_only=True,
        value={
            "user": {
                "id": "5f0c6d1e-8b2a-4c3d-9e4f-1a2b3c4d5e6f",
                "email": "ada@example.com",
                "pending_email": None,
                "name": "Ada",
                "locale": "en",
                "timezone": "Europe/London",
                "email_verified": True,
                "date_joined": "2026-01-31T12:00:00Z",
                "tier": "pro",
                "has_password": True,
                "social_accounts": [],
            },
            "access": "eyJhbGciOiJIUzI1NiJ9.access.signature",
            "refresh": "eyJhbGciOiJIUzI1NiJ9.refresh.signature",
        },
    ),
]
