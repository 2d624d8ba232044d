"""ChatFocus settings: one module, every value from the environment (see .env.example)."""

import os
import re
import tempfile
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

# Flagged by `check --deploy` (security.W009) because of its prefix: never used in production.
INSECURE_DEV_SECRET_KEY = "django-insecure-chatfocus-dev-only-change-me-0123456789abcdef"

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default=INSECURE_DEV_SECRET_KEY)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
API_URL = env("API_URL", default="http://127.0.0.1:8000").rstrip("/")
PORT = env.int("PORT", default=8000)
ADMIN_URL = env("ADMIN_URL", default="admin/").strip("/") + "/"

INSTALLED_APPS = [
    # First: its runserver (ASGI) serves the /ws/sync socket in development too.
    "daphne",
    "accounts.apps.ChatFocusAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "django_prometheus",
    "anymail",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "allauth.socialaccount.providers.github",
    "allauth.mfa",
    "djstripe",
    "channels",
    "chatfocus",
    "accounts",
    "billing",
    "syncsettings",
    "analytics",
]

MIDDLEWARE = [
    "chatfocus.middleware.RequestIDMiddleware",
    "chatfocus.middleware.ApiHostMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "chatfocus.middleware.BodySizeLimitMiddleware",
    "chatfocus.middleware.ApiExceptionMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    # Inside CORS: an extension must be able to read its 426.
    "chatfocus.flow_control.ClientVersionMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "chatfocus.urls"
WSGI_APPLICATION = "chatfocus.wsgi.application"
SITE_ID = 1

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Persistent connections: per-request connections cost 3-5x throughput (DESIGN.md section 1).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
if IS_POSTGRES:
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, Celery --------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "chatfocus.cache.InvalidationRetryingRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "cf",
            "OPTIONS": {
                # The cache fails open: a Redis outage slows requests down, it never 500s them.
                "IGNORE_EXCEPTIONS": True,
                "LOG_IGNORED_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
            },
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    DJANGO_REDIS_LOGGER = "chatfocus.cache"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Real-time (/ws/sync, DESIGN.md section 5): the ASGI process; pokes cross processes through Redis --------
ASGI_APPLICATION = "chatfocus.asgi.application"
if REDIS_URL:
    # One pub/sub connection per realtime process, a group subscribed once per process (see the module).
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "chatfocus.channel_layer.RedisFanoutChannelLayer", "CONFIG": {"url": REDIS_URL}}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
SYNC_WS_AUTH_TIMEOUT_SECONDS = env.float("SYNC_WS_AUTH_TIMEOUT_SECONDS", default=5.0)
SYNC_WS_PING_SECONDS = env.float("SYNC_WS_PING_SECONDS", default=20.0)
# Flow control (chatfocus.flow_control): clients below this semver get 426; empty: no gate.
MIN_CLIENT_VERSION = env("MIN_CLIENT_VERSION", default="")
# Above 0 during an incident: every sync response says `Backoff: <seconds>`.
SYNC_BACKOFF_SECONDS = env.int("SYNC_BACKOFF_SECONDS", default=0)

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict = {}
# Every task stops: a soft limit raises SoftTimeLimitExceeded inside it, the hard limit kills the worker
# child. Beat's long nightly jobs get more (annotations below).
CELERY_TASK_SOFT_TIME_LIMIT = 5 * 60
CELERY_TASK_TIME_LIMIT = 6 * 60
CELERY_TASK_ANNOTATIONS = {
    "billing.tasks.reconcile_accounts_task": {"soft_time_limit": 30 * 60, "time_limit": 32 * 60},
    "analytics.tasks.rollup_recent_days_task": {"soft_time_limit": 20 * 60, "time_limit": 22 * 60},
}
# Logs go through LOGGING (JSON), set up by chatfocus.celery's setup_logging receiver.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Beat's state file lives outside the code directory, which the image's runtime user cannot write.
CELERY_BEAT_SCHEDULE_FILENAME = env(
    "CELERY_BEAT_SCHEDULE_FILENAME", default=os.path.join(tempfile.gettempdir(), "chatfocus-celerybeat-schedule")
)
# Beat queues a heartbeat task this often; the worker records it, /metrics exports its age
# (chatfocus_beat_heartbeat_timestamp_seconds) and an alert fires when it goes stale.
BEAT_HEARTBEAT_SECONDS = env.int("BEAT_HEARTBEAT_SECONDS", default=60)
CELERY_BEAT_SCHEDULE["beat-heartbeat"] = {
    "task": "chatfocus.tasks.beat_heartbeat_task",
    "schedule": timedelta(seconds=BEAT_HEARTBEAT_SECONDS),
    "options": {"expires": BEAT_HEARTBEAT_SECONDS},
}

# --- Auth -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
# BCryptSHA256 first (12 rounds in Django 5.2); plain BCrypt raises on passwords over 72 bytes.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/account/"


def parse_duration(value: str) -> timedelta:
    """Parse the seed's `15m` / `7d` / `30d` / `3600s` / `12h` lifetimes."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", str(value))
    if not match:
        raise environ.ImproperlyConfigured(f"Invalid duration {value!r}: use e.g. 15m, 12h, 30d.")
    amount, unit = int(match.group(1)), match.group(2) or "s"
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: amount})


JWT_SECRET = env("JWT_SECRET", default="")
JWT_ACCESS_LIFETIME = parse_duration(env("JWT_EXPIRES_IN", default="15m"))
JWT_REFRESH_LIFETIME = parse_duration(env("JWT_REFRESH_EXPIRES_IN", default="30d"))
# A rotated refresh token sent again this soon gets the session's current pair, not `token_reused`:
# two contexts of one extension refreshing at once both stay signed in (DESIGN §3).
JWT_REFRESH_REUSE_SECONDS = env.int("JWT_REFRESH_REUSE_SECONDS", default=10)
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": JWT_ACCESS_LIFETIME,
    "REFRESH_TOKEN_LIFETIME": JWT_REFRESH_LIFETIME,
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    # Falls back to SECRET_KEY in development only; the deploy check warns when it is missing.
    "SIGNING_KEY": JWT_SECRET or SECRET_KEY,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
}

# --- allauth --------------------------------------------------------------------------------
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "optional"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[ChatFocus] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if not DEBUG else "http"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
# Hosted password reset and key forms run the API's services (same counters, same proof rules).
ACCOUNT_FORMS = {
    "reset_password": "accounts.forms.ResetPasswordForm",
    "reset_password_from_key": "accounts.forms.ResetPasswordKeyForm",
}
# allauth's own login-failure and reset counters are replaced by the API's (accounts.ratelimits),
# which the hosted pages share through the adapter and the forms above.
ACCOUNT_RATE_LIMITS = {"login_failed": None, "reset_password": None}
# Password reset links (allauth's token generator) work once and expire after an hour.
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=3600)
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_PROVIDERS = {
    "google": {
        "APPS": (
            [{"client_id": env("GOOGLE_CLIENT_ID"), "secret": env("GOOGLE_CLIENT_SECRET", default="")}]
            if env("GOOGLE_CLIENT_ID", default="")
            else []
        ),
        "SCOPE": ["openid", "profile", "email"],
    },
    "github": {
        "APPS": (
            [{"client_id": env("GITHUB_CLIENT_ID"), "secret": env("GITHUB_CLIENT_SECRET", default="")}]
            if env("GITHUB_CLIENT_ID", default="")
            else []
        ),
        "SCOPE": ["read:user", "user:email"],
    },
}
OAUTH_REDIRECT_URIS = env.list("OAUTH_REDIRECT_URIS", default=[])

# --- Staff second factor (allauth.mfa; staff enroll at /account/2fa/) ------------------------
MFA_ADAPTER = "accounts.adapters.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "ChatFocus"
# The admin opens only to sessions that passed a second factor (accounts/admin_site.py).
ADMIN_REQUIRE_MFA = env.bool("ADMIN_REQUIRE_MFA", default=not DEBUG)

# --- Rate limits (count/period-seconds); shared through the cache (Redis in production) ------
RATE_LIMITS = {
    "login_ip": env("RATE_LIMIT_LOGIN_IP", default="10/60"),
    "login_failures_account": env("RATE_LIMIT_LOGIN_FAILURES_ACCOUNT", default="5/900"),
    "register_ip": env("RATE_LIMIT_REGISTER_IP", default="5/3600"),
    # Each registration of a taken email mails its owner a notice: no mailbox flooding from many IPs.
    "register_email": env("RATE_LIMIT_REGISTER_EMAIL", default="3/3600"),
    "forgot_email": env("RATE_LIMIT_FORGOT_EMAIL", default="3/3600"),
    "forgot_ip": env("RATE_LIMIT_FORGOT_IP", default="10/3600"),
    "refresh_session": env("RATE_LIMIT_REFRESH_SESSION", default="60/60"),
    "verify_resend_account": env("RATE_LIMIT_VERIFY_RESEND_ACCOUNT", default="3/3600"),
}

# --- Email ----------------------------------------------------------------------------------
SENDGRID_API_KEY = env("SENDGRID_API_KEY", default="")
FROM_EMAIL = env("FROM_EMAIL", default="ChatFocus <noreply@chatfocus.app>")
DEFAULT_FROM_EMAIL = FROM_EMAIL
SERVER_EMAIL = FROM_EMAIL
if SENDGRID_API_KEY:
    EMAIL_BACKEND = "anymail.backends.sendgrid.EmailBackend"
    ANYMAIL = {"SENDGRID_API_KEY": SENDGRID_API_KEY}
elif env("EMAIL_HOST", default=""):
    # Plain SMTP: the compose stack's mailpit (a local mail catcher), or a relay of your own.
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = env("EMAIL_HOST")
    EMAIL_PORT = env.int("EMAIL_PORT", default=25)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

# --- Stripe / dj-stripe ---------------------------------------------------------------------
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
# The version the pinned `stripe` library speaks; dj-stripe's own calls use the same one.
STRIPE_API_VERSION = env("STRIPE_API_VERSION", default="2026-08-26.dahlia")
STRIPE_LIVE_MODE = STRIPE_SECRET_KEY.startswith("sk_live_")
STRIPE_LIVE_SECRET_KEY = STRIPE_SECRET_KEY if STRIPE_LIVE_MODE else ""
STRIPE_TEST_SECRET_KEY = "" if STRIPE_LIVE_MODE else STRIPE_SECRET_KEY
# dj-stripe points the stripe library at this host whenever the setting exists: define it only
# when asked to (tests, fakes), or its check W002 fires in production.
if env("STRIPE_API_HOST", default=""):
    STRIPE_API_HOST = env("STRIPE_API_HOST")
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"  # Fixed before dj-stripe's first migration; cannot change.
DJSTRIPE_SUBSCRIBER_MODEL = AUTH_USER_MODEL
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
BILLING_GRACE_DAYS = env.int("BILLING_GRACE_DAYS", default=7)
# Free trial days on new Checkout subscriptions (0 = none).
BILLING_TRIAL_DAYS = env.int("BILLING_TRIAL_DAYS", default=0)
# Stripe Checkout offers a promotion code field (codes are made in the Stripe dashboard).
BILLING_ALLOW_PROMOTION_CODES = env.bool("BILLING_ALLOW_PROMOTION_CODES", default=True)
# Timeout of every Stripe HTTP call (ours and dj-stripe's), in seconds.
STRIPE_TIMEOUT_SECONDS = env.int("STRIPE_TIMEOUT_SECONDS", default=20)

# --- Sync, analytics ------------------------------------------------------------------------
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
ANALYTICS_RETENTION_DAYS = env.int("ANALYTICS_RETENTION_DAYS", default=90)
# Hourly: today's and yesterday's rollups stay fresh. Nightly: the last 8 days again, since
# clients may send events up to 7 days late; then raw events past retention are pruned.
CELERY_BEAT_SCHEDULE["analytics-rollup-recent"] = {
    "task": "analytics.tasks.rollup_recent_days_task",
    "schedule": timedelta(hours=1),
    "kwargs": {"days": 2},
}
CELERY_BEAT_SCHEDULE["analytics-rollup-late-events"] = {
    "task": "analytics.tasks.rollup_recent_days_task",
    "schedule": crontab(minute=30, hour=0),
    "kwargs": {"days": 8},
}
CELERY_BEAT_SCHEDULE["analytics-prune"] = {
    "task": "analytics.tasks.prune_expired_events_task",
    "schedule": crontab(minute=0, hour=3),
}
# Nightly: sync change log and tombstones past each user's tier history window.
CELERY_BEAT_SCHEDULE["sync-prune-history"] = {
    "task": "syncsettings.tasks.prune_sync_history_task",
    "schedule": crontab(minute=30, hour=3),
}
# Billing: log tier changes that happen by time alone (grace, downgrade, comp ends) and email users
# who lost a tier, hourly; re-read live subscriptions from Stripe nightly in case a webhook was lost.
CELERY_BEAT_SCHEDULE["billing-record-expired-tiers"] = {
    "task": "billing.tasks.record_expired_tiers_task",
    "schedule": timedelta(hours=1),
}
CELERY_BEAT_SCHEDULE["billing-reconcile"] = {
    "task": "billing.tasks.reconcile_accounts_task",
    "schedule": crontab(minute=15, hour=4),
}

# --- Cleanup (beat, nightly) ----------------------------------------------------------------
# Stored Stripe webhook payloads are emptied after this many days; the event row (its id, for
# dedupe of Stripe's retries) stays. Failed events keep theirs for the admin's replay.
WEBHOOK_PAYLOAD_RETENTION_DAYS = env.int("WEBHOOK_PAYLOAD_RETENTION_DAYS", default=30)
CELERY_BEAT_SCHEDULE["cleanup-expired-tokens"] = {
    "task": "chatfocus.tasks.flush_expired_tokens_task",
    "schedule": crontab(minute=0, hour=2),
}
CELERY_BEAT_SCHEDULE["cleanup-django-sessions"] = {
    "task": "chatfocus.tasks.clear_expired_sessions_task",
    "schedule": crontab(minute=10, hour=2),
}
CELERY_BEAT_SCHEDULE["cleanup-ended-api-sessions"] = {
    "task": "chatfocus.tasks.prune_ended_api_sessions_task",
    "schedule": crontab(minute=20, hour=2),
}
CELERY_BEAT_SCHEDULE["cleanup-webhook-payloads"] = {
    "task": "chatfocus.tasks.prune_webhook_payloads_task",
    "schedule": crontab(minute=30, hour=2),
}

# --- API ------------------------------------------------------------------------------------
# Proxies in front of gunicorn that append to X-Forwarded-For (rate limits key on the client IP).
# None when unset, which the deploy check warns about: behind a router every client shares its address.
NUM_PROXIES = env.int("NUM_PROXIES", default=None)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["chatfocus.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "chatfocus.parsers.ContentNegotiation",
    "DEFAULT_PAGINATION_CLASS": "chatfocus.pagination.CursorPagination",
    "DEFAULT_SCHEMA_CLASS": "chatfocus.schema.AutoSchema",
    "EXCEPTION_HANDLER": "chatfocus.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    # 0 when unset: DRF's None trusts a client-sent X-Forwarded-For, which escapes per-IP limits.
    "NUM_PROXIES": NUM_PROXIES or 0,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ChatFocus API",
    "DESCRIPTION": "Accounts, billing, settings sync and analytics for the ChatFocus extension.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/",
    # Swagger UI served from our static files: the docs work offline, no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "TierEnum": "billing.tiers.TIER_ORDER",
        "PaidTierEnum": "billing.selectors.PAID_TIERS",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "chatfocus.schema.complete_schema",
        "chatfocus.flow_control.declare_flow_control",
    ],
}
# Global body limit; per-endpoint limits are smaller (DESIGN.md section 2).
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
API_BODY_LIMITS = {
    "/api/sync/push": 256 * 1024,
    "/api/analytics/events": 64 * 1024,
}

CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_CREDENTIALS = False
CORS_EXPOSE_HEADERS = [
    "ETag",
    "X-Request-ID",
    "Retry-After",
    "X-Server-Time",
    "Backoff",
    "X-Quota-Used",
    "X-Quota-Limit",
]
CORS_ALLOW_HEADERS = [
    "accept",
    "authorization",
    "content-type",
    "if-match",
    "if-none-match",
    "x-request-id",
    "x-client-version",
]

# --- Security -------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "accounts.pages.csrf_failure"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): scripts and styles from our own static files only, no inline
# code. Forms post to us; the redirects that follow some posts go to OAuth providers and Stripe.
CONTENT_SECURITY_POLICY = {
    # Django's and dj-stripe's admin templates carry inline styles and scripts of their own.
    "EXCLUDE_URL_PREFIXES": [f"/{ADMIN_URL}"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],  # allauth's TOTP QR code is an SVG data: URI
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": [
            "'self'",
            "https://accounts.google.com",
            "https://github.com",
            "https://checkout.stripe.com",
            "https://billing.stripe.com",
        ],
    },
}

# --- i18n, static ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env.bool("STATIC_MANIFEST", default=not DEBUG)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Observability --------------------------------------------------------------------------
SENTRY_DSN = env("SENTRY_DSN", default="")
METRICS_TOKEN = env("METRICS_TOKEN", default="")
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR:
    # prometheus_client reads the variable itself (also when it came from .env) and needs the directory.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_context": {"()": "chatfocus.logging.RequestContextFilter"},
        "task_arguments": {"()": "chatfocus.logging.TaskArgumentsFilter"},
        "cache_outage": {"()": "chatfocus.logging.CacheOutageFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "ts", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Our request log replaces Django's, which would log every 4xx as a warning twice.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
        # Celery's loggers that record a task's arguments (received, succeeded, retried, failed).
        "celery.app.trace": {"filters": ["task_arguments"]},
        "celery.worker.strategy": {"filters": ["task_arguments"]},
        # DJANGO_REDIS_LOGGER: one warning per failed cache call while Redis is down, no traceback.
        "chatfocus.cache": {"filters": ["cache_outage"]},
    },
}

if SENTRY_DSN:
    from chatfocus.sentry import init_sentry

    init_sentry(
        SENTRY_DSN,
        release=env("SENTRY_RELEASE", default=None),
        environment=env("SENTRY_ENVIRONMENT", default="production"),
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
    )
