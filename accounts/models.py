import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone
from django.utils.crypto import salted_hmac

from accounts.addresses import canonical_email

# Django's own salt: with an empty session_salt the hash is the stock one.
SESSION_AUTH_HASH_SALT = "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash"


class UserManager(BaseUserManager):
    use_in_migrations = True

    def normalize_email(self, email):
        return canonical_email(email)

    def get_by_natural_key(self, email):
        return self.get(email=canonical_email(email))

    def _create_user(self, email, password, **extra_fields):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields.update(is_staff=True, is_superuser=True)
        return self._create_user(email, password, **extra_fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A ChatFocus account: identified by its email, stored in canonical form (accounts.addresses)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField("email address", max_length=254, unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Can log into the admin site.")
    date_joined = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # An email change waiting for its confirmation link; `email` changes when it is opened.
    pending_email = models.EmailField(max_length=254, blank=True)
    # Mixed into the hosted pages' session hash: a new value signs every browser out
    # (accounts.services.end_every_session). Empty keeps Django's stock hash, so no one is signed out by deploying it.
    session_salt = models.CharField(max_length=32, blank=True, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        indexes = [models.Index(fields=["date_joined"])]

    def __str__(self):
        return self.email

    def clean(self):
        super().clean()
        self.email = self.__class__.objects.normalize_email(self.email)

    def get_session_auth_hash(self):
        return self._salted_session_auth_hash(secret=None)

    def get_session_auth_fallback_hash(self):
        for fallback_secret in settings.SECRET_KEY_FALLBACKS:
            yield self._salted_session_auth_hash(secret=fallback_secret)

    def _salted_session_auth_hash(self, *, secret):
        return salted_hmac(
            SESSION_AUTH_HASH_SALT, self.password + self.session_salt, secret=secret, algorithm="sha256"
        ).hexdigest()

    def get_full_name(self):
        return self.name or self.email

    def get_short_name(self):
        return self.name or self.email.split("@")[0]


class Preferences(models.Model):
    """Account preferences (`/api/users/me/settings`); locale and timezone live only here."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, primary_key=True, related_name="preferences")
    analytics_opt_in = models.BooleanField(default=False)
    product_emails = models.BooleanField(default=True)
    marketing_emails = models.BooleanField(default=False)
    locale = models.CharField(max_length=35, default="en")
    timezone = models.CharField(max_length=64, default="UTC")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "preferences"

    def __str__(self):
        return f"Preferences of {self.user_id}"


class Session(models.Model):
    """One login on one device; owns its refresh-token family (every token it ever issued carries its id)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sessions")
    device_name = models.CharField(max_length=100, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    method = models.CharField(max_length=20, default="password", help_text="How the session was started.")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(default=timezone.now, help_text="Login or last token refresh.")
    refresh_expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=30, blank=True)
    # The jti of the family's newest refresh token: what a reuse within JWT_REFRESH_REUSE_SECONDS gets back.
    refresh_jti = models.CharField(max_length=255, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-last_used_at"])]

    def __str__(self):
        return f"{self.device_name or 'Unnamed device'} ({self.user_id})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.refresh_expires_at > timezone.now()
