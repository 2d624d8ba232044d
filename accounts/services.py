"""Account verbs; other apps call these, never accounts' models."""

import logging
import re
from datetime import UTC, date, datetime, timedelta

from allauth.account.adapter import get_adapter
from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from allauth.account.utils import url_str_to_user_pk, user_pk_to_url_str
from allauth.mfa.models import Authenticator
from allauth.socialaccount.models import SocialAccount
from django.contrib.admin.models import LogEntry
from django.contrib.auth import password_validation
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import update_last_login
from django.contrib.contenttypes.models import ContentType
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import get_random_string
from kombu.exceptions import OperationalError as BrokerUnavailable
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts import personal_data, ratelimits
from accounts.addresses import InvalidAddress, canonical_email, clean_new_email
from accounts.models import Preferences, Session, User
from accounts.oauth import redeem_oauth_code
from accounts.sessions import (
    SESSION_CLAIM,
    decode_refresh_token,
    forget_session_states,
    issue_session_tokens,  # noqa: F401  (callers import it from services)
    revoke_session_by_id,
    revoke_sessions,
    rotate_refresh_token,
)
from billing.selectors import entitlements_cache_keys, get_entitlements
from chatfocus import metrics
from chatfocus.cache import get_many_prefetched
from chatfocus.emails import send_templated_email
from chatfocus.exceptions import InvalidCredentials, NotFound, PermissionDenied, RateLimited, ValidationFailed

logger = logging.getLogger(__name__)

PREFERENCE_FIELDS = ("analytics_opt_in", "product_emails", "marketing_emails", "locale", "timezone")
PROFILE_FIELDS = ("name", "email", "locale", "timezone")
OPT_IN_CACHE_KEY = "accounts:analytics_opt_in:{user_id}"
PROFILE_CACHE_KEY = "accounts:profile:{user_id}"
PROFILE_VERSION_KEY = "accounts:profile_version:{user_id}"
# Entries are invalidated on every write (forget_profile); expiry only bounds what a missed write costs.
PROFILE_CACHE_SECONDS = 3600
# Much longer than an entry lives: an entry can never outlive the version it was stored under.
PROFILE_VERSION_SECONDS = 30 * 24 * 3600
# Accounts without a password prove who they are by a login this recent.
RECENT_LOGIN = timedelta(minutes=10)
RESET_TOKEN = re.compile(r"([0-9A-Za-z]+)-(.+)")
EMAIL_CHANGE_UNDO_DAYS = 7
EMAIL_CHANGE_UNDO_SALT = "accounts.email_change_undo"


# --- Users, preferences, profile ------------------------------------------------------------


def get_user(*, user_id) -> User:
    """The user row (for endpoints that need more than the id the access token carries)."""
    user = User.objects.filter(id=user_id, is_active=True).first()
    if user is None:
        raise NotFound("This account no longer exists.")
    return user


def count_signups_by_day(*, start: datetime, end: datetime) -> dict[date, int]:
    """Accounts created per UTC day in [start, end)."""
    rows = (
        User.objects.filter(date_joined__gte=start, date_joined__lt=end)
        .annotate(day=TruncDate("date_joined", tzinfo=UTC))
        .values("day")
        .annotate(count=Count("pk"))
        .order_by()
    )
    return {row["day"]: row["count"] for row in rows}


def get_preferences(*, user) -> Preferences:
    """The user's preferences row, created with defaults on first use."""
    preferences, _ = Preferences.objects.get_or_create(user_id=user.id)
    return preferences


def update_preferences(*, user, **changes) -> Preferences:
    """Apply validated preference changes (keys from PREFERENCE_FIELDS only)."""
    unknown = set(changes) - set(PREFERENCE_FIELDS)
    if unknown:
        raise ValueError(f"Unknown preference fields: {sorted(unknown)}")
    preferences = get_preferences(user=user)
    for name, value in changes.items():
        setattr(preferences, name, value)
    preferences.save()
    cache.delete(OPT_IN_CACHE_KEY.format(user_id=user.id))
    return preferences


def get_analytics_opt_in(*, user_id) -> bool:
    """Whether the user agreed to product analytics (cached; False when never set)."""
    key = OPT_IN_CACHE_KEY.format(user_id=user_id)
    opted_in = cache.get(key)
    if opted_in is None:
        opted_in = Preferences.objects.filter(user_id=user_id, analytics_opt_in=True).exists()
        cache.set(key, opted_in, timeout=300)
    return opted_in


def is_email_verified(*, user) -> bool:
    return EmailAddress.objects.filter(user_id=user.id, email=user.email, verified=True).exists()


def profile_cache_keys(*, user_id) -> list[str]:
    """The cache keys get_profile reads (see its `prefetched`)."""
    return [
        PROFILE_CACHE_KEY.format(user_id=user_id),
        PROFILE_VERSION_KEY.format(user_id=user_id),
        *entitlements_cache_keys(user_id=user_id),
    ]


def get_profile(*, user, prefetched: dict | None = None) -> dict:
    """What `GET /api/users/me` shows: the account, its locale/timezone, tier and login methods.

    A hot read, served from the cache: one round trip for the entry, the version it must carry
    (forget_profile bumps the version on every write, so an entry loaded before a write is never
    taken as current) and billing's entitlements. The tier is not cached with the profile: billing
    caches its state itself, and the tier also changes with time. `prefetched`: what a caller's own
    `cache.get_many` returned for profile_cache_keys (the API reads them with the session state).
    """
    key, version_key = PROFILE_CACHE_KEY.format(user_id=user.id), PROFILE_VERSION_KEY.format(user_id=user.id)
    cached = get_many_prefetched(profile_cache_keys(user_id=user.id), prefetched)
    version, entry = cached.get(version_key, 0), cached.get(key)
    if entry is None or entry[0] != version:
        entry = (version, _load_profile(user_id=user.id))
        cache.set(key, entry, PROFILE_CACHE_SECONDS)
    return {**entry[1], "tier": get_entitlements(user=user, prefetched=cached).tier}


def _load_profile(*, user_id) -> dict:
    row = get_user(user_id=user_id)
    # Read only: creating the preferences row here would be a write that invalidates what is loaded.
    preferences = Preferences.objects.filter(user_id=row.id).first() or Preferences(user_id=row.id)
    return {
        "id": row.id,
        "email": row.email,
        "pending_email": row.pending_email or None,
        "name": row.name,
        "locale": preferences.locale,
        "timezone": preferences.timezone,
        "email_verified": is_email_verified(user=row),
        "date_joined": row.date_joined,
        "has_password": row.has_usable_password(),
        "social_accounts": [
            {"provider": account.provider, "uid": account.uid, "date_joined": account.date_joined}
            for account in SocialAccount.objects.filter(user_id=row.id).order_by("date_joined")
        ],
    }


def forget_profile(*, user_id) -> None:
    """Invalidate the cached profile: now, and again once the transaction commits.

    Called on every write of the rows a profile shows (accounts/signals.py). The second bump covers a
    reader that loaded the old rows between the first bump and the commit. The entry is deleted too:
    the cache backend makes up for a delete that Redis missed during an outage, not for a missed bump.
    """
    key, version_key = PROFILE_CACHE_KEY.format(user_id=user_id), PROFILE_VERSION_KEY.format(user_id=user_id)

    def bump():
        cache.delete(key)
        cache.add(version_key, 0, timeout=PROFILE_VERSION_SECONDS)
        cache.incr(version_key)

    bump()
    transaction.on_commit(bump)


def update_profile(*, user, current_password: str | None = None, **changes) -> User:
    """Change name, locale, timezone; a new email is only requested here and applied on confirmation.

    A new email needs `current_password` (accounts without one: a recent login), else PermissionDenied:
    a stolen access token must not be enough to move the account to another mailbox.
    """
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"Unknown profile fields: {sorted(unknown)}")
    row = get_user(user_id=user.id)
    email = _new_address(changes["email"], field="email") if changes.get("email") else ""
    if email and email != row.email:
        _confirm_identity_for_email_change(user=user, row=row, password=current_password)
    with transaction.atomic():
        if "name" in changes and changes["name"] != row.name:
            row.name = changes["name"]
            row.save(update_fields=["name", "updated_at"])
        localisation = {name: changes[name] for name in ("locale", "timezone") if name in changes}
        if localisation:
            update_preferences(user=row, **localisation)
        if email and email != row.email:
            _request_email_change(user=row, email=email)
    return row


def _new_address(value: str, *, field: str) -> str:
    """The canonical form of an address an account is to use; ValidationFailed names `field` otherwise."""
    try:
        return clean_new_email(value)
    except InvalidAddress as error:
        raise ValidationFailed(fields={field: [str(error)]}) from error


def _confirm_identity_for_email_change(*, user, row: User, password: str | None) -> None:
    if row.has_usable_password() and not password:
        raise PermissionDenied("Changing your email address needs your current password (current_password).")
    try:
        _confirm_identity(user=user, row=row, password=password, field="current_password")
    except ValidationFailed as error:
        raise PermissionDenied("Your password is incorrect, so the email address was not changed.") from error


def _request_email_change(*, user: User, email: str) -> None:
    if User.objects.filter(email=email).exclude(id=user.id).exists():
        raise ValidationFailed(fields={"email": ["This email address is already used by another account."]})
    if user.pending_email:
        EmailAddress.objects.filter(user=user, email=user.pending_email, verified=False).delete()
    address, _ = EmailAddress.objects.get_or_create(user=user, email=email, defaults={"primary": False})
    user.pending_email = email
    user.save(update_fields=["pending_email", "updated_at"])
    if address.verified:
        confirm_email_address(email_address=address)
    else:
        address.send_confirmation(None, signup=False)


def confirm_email_address(*, email_address: EmailAddress) -> bool:
    """Mark an address verified (the link was opened); a pending email change becomes the account's email.

    The old address is told, with a link that undoes the change. False when another account already
    owns the address.
    """
    with transaction.atomic():
        user = User.objects.select_for_update().get(id=email_address.user_id)
        if User.objects.filter(email=email_address.email).exclude(id=user.id).exists():
            return False
        first_proof = not EmailAddress.objects.filter(user=user, verified=True).exists()
        if not email_address.set_verified(commit=True):
            return False
        if user.pending_email and user.pending_email == email_address.email:
            old_email = user.email
            EmailAddress.objects.filter(user=user).exclude(id=email_address.id).delete()
            user.pending_email = ""
            user.save(update_fields=["pending_email", "updated_at"])
            email_address.user = user
            email_address.set_as_primary()  # also sets user.email
            _send_email_change_notice(user=user, old_email=old_email)
        else:
            email_address.set_as_primary(conditional=True)
        if first_proof:
            _end_access_from_before_proof(user_id=user.id)
    return True


def _end_access_from_before_proof(*, user_id) -> None:
    """The account's mailbox was proven for the first time: drop what its creator may have set up.

    Whoever registered an address they did not own could have connected their own Google/GitHub
    and signed in on devices; none of it may outlive the owner's first proof.
    """
    SocialAccount.objects.filter(user_id=user_id).delete()
    end_every_session(user_id=user_id, reason="email_verified")


def _send_email_change_notice(*, user: User, old_email: str) -> None:
    change = {"user_id": str(user.id), "old_email": old_email, "new_email": user.email}
    token = signing.dumps(
        {**change, "changed_at": timezone.now().isoformat()}, salt=EMAIL_CHANGE_UNDO_SALT, compress=True
    )
    from accounts.adapters import absolute_url

    send_templated_email(
        to=old_email,
        template="email_changed",
        context={
            "name": user.name,
            "old_email": old_email,
            "new_email": user.email,
            "undo_url": absolute_url(reverse("account_undo_email_change", args=[token])),
            "undo_days": EMAIL_CHANGE_UNDO_DAYS,
        },
    )


def undo_email_change(*, token: str) -> User:
    """Put back the address an email change replaced (link in the notice to the old address, 7 days).

    Whoever changed it knew the password (or had a fresh login), so every session ends, the password
    is cleared and the old address gets a link to set a new one; providers connected since go too.
    """
    invalid = ValidationFailed(fields={"token": ["This link is invalid, expired or was already used."]})
    try:
        change = signing.loads(token, salt=EMAIL_CHANGE_UNDO_SALT, max_age=timedelta(days=EMAIL_CHANGE_UNDO_DAYS))
    except signing.BadSignature as error:
        raise invalid from error
    old_email = change["old_email"]
    with transaction.atomic():
        user = User.objects.select_for_update().filter(id=change["user_id"], is_active=True).first()
        if user is None or user.email != change["new_email"]:
            raise invalid
        if User.objects.filter(email=old_email).exclude(id=user.id).exists():
            raise ValidationFailed(fields={"token": ["The old address now belongs to another account."]})
        EmailAddress.objects.filter(user=user).delete()
        EmailAddress.objects.create(user=user, email=old_email, primary=True, verified=True)
        user.email, user.pending_email = old_email, ""
        user.set_unusable_password()
        user.save(update_fields=["email", "pending_email", "password", "updated_at"])
        SocialAccount.objects.filter(user=user, date_joined__gte=datetime.fromisoformat(change["changed_at"])).delete()
        end_every_session(user_id=user.id, reason="email_change_undone")
        _send_password_reset_link(user=user)
    return user


def verify_email(*, key: str) -> None:
    """Apply the key from a verification email (the API twin of allauth's confirm page)."""
    confirmation = EmailConfirmationHMAC.from_key(key)
    if confirmation is None:
        raise ValidationFailed(fields={"key": ["This confirmation link is invalid, expired or already used."]})
    if not confirm_email_address(email_address=confirmation.email_address):
        raise ValidationFailed(fields={"key": ["This email address is already used by another account."]})


def resend_verification_email(*, user) -> None:
    """Send the verification email again (the pending new address first, else the current one)."""
    row = get_user(user_id=user.id)
    ratelimits.hit(scope="verify_resend_account", key=str(row.id))
    email = row.pending_email or row.email
    address, _ = EmailAddress.objects.get_or_create(
        user=row, email=email, defaults={"primary": email == row.email, "verified": False}
    )
    if not address.verified:
        address.send_confirmation(None, signup=False)


# --- Registration, login, tokens ------------------------------------------------------------


def _validate_password(password: str, *, user: User, field: str) -> None:
    try:
        password_validation.validate_password(password, user=user)
    except DjangoValidationError as error:
        raise ValidationFailed(fields={field: list(error.messages)}) from error


def register_user(*, email: str, password: str, name: str = "", ip: str = "") -> None:
    """Create an account and send its verification email; an existing email gets a notice instead.

    The caller answers the same in both cases, so registration reveals nothing about who has an account.
    """
    ratelimits.hit(scope="register_ip", key=ip)
    email = _new_address(email, field="email")
    ratelimits.hit(scope="register_email", key=email)
    _validate_password(password, user=User(email=email, name=name), field="password")
    existing = User.objects.filter(email=email).first()
    if existing is None:
        try:
            with transaction.atomic():
                user = User.objects.create_user(email=email, password=password, name=name)
                Preferences.objects.create(user=user)
                address = EmailAddress.objects.create(user=user, email=email, primary=True, verified=False)
                address.send_confirmation(None, signup=True)
        except IntegrityError:  # a concurrent registration of the same address won
            existing = User.objects.filter(email=email).first()
        else:
            metrics.SIGNUPS.labels(method="password").inc()
            return
    make_password(password)  # the same hashing work as a new account, so timing tells nothing either
    get_adapter().send_mail("account/email/account_already_exists", existing.email, {"user": existing})


def login_user(*, email: str, password: str, device_name: str = "", user_agent: str = "", ip: str = ""):
    """Check the password and start a session; returns (user, access, refresh)."""
    user = authenticate_password(email=email, password=password, ip=ip)
    access, refresh = start_session(user=user, device_name=device_name, user_agent=user_agent, ip=ip)
    metrics.LOGINS.labels(method="password", outcome="success").inc()
    return user, access, refresh


def authenticate_password(*, email: str, password: str, ip: str = "") -> User:
    """The active user with this email and password, under the login limits (the API's and the admin's).

    The same InvalidCredentials for an unknown email and a wrong password. Failures count per
    account; past the limit even the right password is refused until the window ends.
    """
    email = canonical_email(email)
    check_login_allowed(email=email, ip=ip)
    # ModelBackend hashes the password even for unknown emails (same timing) and upgrades old hashes.
    user = ModelBackend().authenticate(None, email=email, password=password)
    if user is None:
        record_login_failure(email=email)
        metrics.LOGINS.labels(method="password", outcome="failure").inc()
        raise InvalidCredentials()
    clear_login_failures(email=email)
    return user


def check_login_allowed(*, email: str, ip: str) -> None:
    """Count a login attempt from `ip`; RateLimited past the per-IP or per-account limit.

    The API and the hosted pages share these counters, keyed by the canonical address, so no door
    or spelling of an address gets attempts of its own.
    """
    try:
        ratelimits.hit(scope="login_ip", key=ip)
        ratelimits.check(scope="login_failures_account", key=canonical_email(email))
    except RateLimited:
        metrics.LOGINS.labels(method="password", outcome="rate_limited").inc()
        raise


def record_login_failure(*, email: str) -> None:
    ratelimits.record(scope="login_failures_account", key=canonical_email(email))


def clear_login_failures(*, email: str) -> None:
    ratelimits.clear(scope="login_failures_account", key=canonical_email(email))


def start_session(*, user: User, device_name: str, user_agent: str, ip: str, method: str = "password"):
    """Record the login and issue a token pair; returns (access, refresh)."""
    update_last_login(None, user)
    access, refresh, _ = issue_session_tokens(
        user=user, device_name=device_name, user_agent=user_agent, ip=ip, method=method
    )
    return access, refresh


def login_with_oauth_code(
    *, code: str, redirect_uri: str | None = None, device_name: str = "", user_agent: str = "", ip: str = ""
):
    """Exchange the one-time code of an extension OAuth login for a session; returns (user, access, refresh)."""
    grant = redeem_oauth_code(code=code, redirect_uri=redirect_uri)
    user = User.objects.filter(id=grant["user_id"], is_active=True).first()
    if user is None:
        raise ValidationFailed(fields={"code": ["This account no longer exists."]})
    access, refresh = start_session(
        user=user, device_name=device_name, user_agent=user_agent, ip=ip, method=grant["provider"]
    )
    metrics.LOGINS.labels(method=grant["provider"], outcome="success").inc()
    return user, access, refresh


def refresh_tokens(*, refresh: str) -> tuple[str, str]:
    """Rotate a refresh token (see accounts.sessions); returns the new (access, refresh)."""
    payload = decode_refresh_token(refresh)
    ratelimits.hit(scope="refresh_session", key=str(payload[SESSION_CLAIM]))
    access, new_refresh, _ = rotate_refresh_token(refresh=refresh)
    return access, new_refresh


def logout_session(*, refresh: str) -> None:
    """End the session the refresh token belongs to (idempotent)."""
    payload = decode_refresh_token(refresh)
    revoke_session_by_id(session_id=payload[SESSION_CLAIM], reason="logout")


def list_sessions(*, user) -> QuerySet[Session]:
    """The user's live sessions, newest first."""
    return Session.objects.filter(
        user_id=user.id, revoked_at__isnull=True, refresh_expires_at__gt=timezone.now()
    ).order_by("-created_at")


def revoke_session(*, user, session_id) -> None:
    """Sign one of the user's own sessions out; its tokens stop working at once."""
    if not Session.objects.filter(id=session_id, user_id=user.id, revoked_at__isnull=True).exists():
        raise NotFound("No such session.")
    revoke_session_by_id(session_id=session_id, reason="revoked")


# --- Passwords ------------------------------------------------------------------------------


def _confirm_identity(*, user, row: User, password: str | None, field: str) -> None:
    """The password when the account has one, else a login within RECENT_LOGIN (OAuth-only accounts).

    `user` may be the API's token user: then the login is the one that started its session.
    """
    if row.has_usable_password():
        ratelimits.check(scope="login_failures_account", key=row.email)
        if not password or not row.check_password(password):
            ratelimits.record(scope="login_failures_account", key=row.email)
            raise ValidationFailed(fields={field: ["Your password is incorrect."]})
        return
    session_id = getattr(user, "session_id", None)
    if session_id is not None:
        logged_in_at = Session.objects.filter(id=session_id).values_list("created_at", flat=True).first()
    else:
        logged_in_at = row.last_login
    if logged_in_at is None or timezone.now() - logged_in_at > RECENT_LOGIN:
        raise PermissionDenied("For your security, log in again first (this needs a login from the last 10 minutes).")


def end_every_session(*, user_id, reason: str) -> int:
    """Sign the user out everywhere; returns how many API sessions ended.

    API sessions: their access tokens fail at once and refreshes are refused. Hosted pages: a new
    session_salt changes the session hash django.contrib.auth checks on every request, so each browser
    is logged out on its next page, whatever the session backend (no scan of other users' sessions).
    """
    with transaction.atomic():
        User.objects.filter(id=user_id).update(session_salt=get_random_string(32))
        return revoke_sessions(user_id=user_id, reason=reason)


def set_user_password(*, user: User, password: str, keep_session_id=None) -> None:
    """Store a new password and sign out every session (but the one given)."""
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password", "updated_at"])
        revoke_sessions(user_id=user.id, reason="password_change", except_session_id=keep_session_id)


def change_password(*, user, current_password: str | None, new_password: str) -> None:
    """Change the password; every other session is signed out."""
    row = get_user(user_id=user.id)
    _confirm_identity(user=user, row=row, password=current_password, field="current_password")
    _validate_password(new_password, user=row, field="new_password")
    set_user_password(user=row, password=new_password, keep_session_id=getattr(user, "session_id", None))


def request_password_reset(*, email: str, ip: str = "") -> None:
    """Queue a reset link for this address: the request does the same work whether an account uses it or not.

    Looking the account up here made the known path slower (it alone queued an email), so accounts could be
    enumerated by timing. The lookup happens in the worker.
    """
    from accounts.tasks import send_password_reset_task

    email = count_password_reset_request(email=email, ip=ip)
    try:
        send_password_reset_task.delay(email=email)
    except BrokerUnavailable as error:
        logger.warning("Celery broker unreachable, looking up the password reset in process: %s", error)
        send_password_reset(email=email)


def count_password_reset_request(*, email: str, ip: str) -> str:
    """Count a reset request (API and hosted page alike); returns the canonical address, RateLimited past a limit."""
    email = canonical_email(email)
    ratelimits.hit(scope="forgot_ip", key=ip)
    ratelimits.hit(scope="forgot_email", key=email)
    return email


def send_password_reset(*, email: str) -> None:
    """The reset email for a counted request (count_password_reset_request); nothing if no account uses the address."""
    user = User.objects.filter(email=canonical_email(email), is_active=True).first()
    if user is not None:
        _send_password_reset_link(user=user)


def _send_password_reset_link(*, user: User) -> None:
    adapter = get_adapter()
    temp_key = default_token_generator.make_token(user)
    token = f"{user_pk_to_url_str(user)}-{temp_key}"
    context = {"user": user, "password_reset_url": adapter.get_reset_password_from_key_url(token)}
    adapter.send_password_reset_mail(user, user.email, context)


def reset_password(*, token: str, password: str) -> None:
    """Set a new password from a reset token; all sessions end and the email counts as verified."""
    user = _user_for_reset_token(token)
    _validate_password(password, user=user, field="password")
    complete_password_reset(user=user, password=password)


def complete_password_reset(*, user: User, password: str) -> None:
    """A reset link was opened (API or hosted page): new password, every session ends, the address is proven.

    A first proof also disconnects the providers connected before it (see _end_access_from_before_proof).
    """
    with transaction.atomic():
        user = User.objects.select_for_update().get(id=user.id)
        first_proof = not EmailAddress.objects.filter(user=user, verified=True).exists()
        set_user_password(user=user, password=password)
        has_primary = EmailAddress.objects.filter(user=user, primary=True).exists()
        address, _ = EmailAddress.objects.get_or_create(
            user=user, email=user.email, defaults={"primary": not has_primary, "verified": True}
        )
        if not address.verified:
            address.verified = True
            address.save(update_fields=["verified"])
        if first_proof:
            _end_access_from_before_proof(user_id=user.id)
    clear_login_failures(email=user.email)


def _user_for_reset_token(token: str) -> User:
    invalid = ValidationFailed(
        fields={"token": ["This reset link is invalid, expired or already used. Ask for a new one."]}
    )
    match = RESET_TOKEN.fullmatch(token or "")
    if match is None:
        raise invalid
    try:
        user = User.objects.filter(pk=url_str_to_user_pk(match.group(1)), is_active=True).first()
    except (DjangoValidationError, ValueError):
        user = None
    if user is None or not default_token_generator.check_token(user, match.group(2)):
        raise invalid
    return user


# --- Export and deletion --------------------------------------------------------------------


def _account_row(user_id) -> User:
    """The user row, active or not (staff export and delete deactivated accounts too)."""
    row = User.objects.filter(id=user_id).first()
    if row is None:
        raise NotFound("This account no longer exists.")
    return row


def export_user_data(*, user) -> dict:
    """Everything stored about the user: accounts' own rows, then each registered app's section."""
    row = _account_row(user.id)
    preferences = Preferences.objects.filter(user_id=row.id).first() or Preferences(user_id=row.id)
    return {
        "exported_at": timezone.now().isoformat(),
        "user": {
            "id": str(row.id),
            "email": row.email,
            "pending_email": row.pending_email or None,
            "name": row.name,
            "email_verified": is_email_verified(user=row),
            "has_password": row.has_usable_password(),
            "is_active": row.is_active,
            "date_joined": row.date_joined.isoformat(),
            "last_login": row.last_login.isoformat() if row.last_login else None,
        },
        "preferences": {name: getattr(preferences, name) for name in PREFERENCE_FIELDS},
        "email_addresses": [
            {"email": address.email, "verified": address.verified, "primary": address.primary}
            for address in EmailAddress.objects.filter(user=row).order_by("id")
        ],
        "sessions": [
            {
                "id": str(session.id),
                "device_name": session.device_name,
                "user_agent": session.user_agent,
                "ip_address": session.ip_address,
                "method": session.method,
                "created_at": session.created_at.isoformat(),
                "last_used_at": session.last_used_at.isoformat(),
                "revoked_at": session.revoked_at.isoformat() if session.revoked_at else None,
            }
            for session in Session.objects.filter(user=row).order_by("created_at")
        ],
        "social_accounts": [
            {
                "provider": account.provider,
                "uid": account.uid,
                "date_joined": account.date_joined.isoformat(),
                "last_login": account.last_login.isoformat(),
                "extra_data": account.extra_data,
            }
            for account in SocialAccount.objects.filter(user=row).order_by("date_joined")
        ],
        # Which second factors exist, never their secrets or recovery codes.
        "second_factors": [
            {
                "type": authenticator.type,
                "created_at": authenticator.created_at.isoformat(),
                "last_used_at": authenticator.last_used_at.isoformat() if authenticator.last_used_at else None,
            }
            for authenticator in Authenticator.objects.filter(user=row).order_by("created_at")
        ],
        **{section.key: section.export(user=row) for section in personal_data.registered()},
    }


def describe_erasure(*, user) -> dict[str, list[str]]:
    """What delete_account would erase, per section title, in words staff can check before confirming."""
    row = _account_row(user.id)
    account = [
        f"The account {row.email} with its profile, preferences and email addresses",
        f"{Session.objects.filter(user=row).count()} session(s) and their tokens, signed out at once",
        f"{SocialAccount.objects.filter(user=row).count()} connected login provider(s)",
    ]
    return {"Account": account, **{section.title: section.describe(user=row) for section in personal_data.registered()}}


def delete_account(*, user, password: str | None = None, staff=None) -> None:
    """Erase every app's data about the user (Stripe first), sessions, tokens, then the user; a goodbye email follows.

    The user confirms with their password (or a recent login); staff deleting from the admin pass `staff` instead.
    """
    row = _account_row(user.id)
    if staff is None:
        _confirm_identity(user=user, row=row, password=password, field="password")
    email, name = row.email, row.name
    with transaction.atomic():
        # Registered in erasure order: if the payment provider fails, nothing else is erased and it can be retried.
        for section in personal_data.registered():
            section.erase(user=row)
        forget_session_states(list(Session.objects.filter(user=row).values_list("id", flat=True)))
        # simplejwt keeps token records when a user goes (SET_NULL): remove them with the account.
        OutstandingToken.objects.filter(user=row).delete()
        # The admin's history of this account stays, without the address it names it by.
        LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(User), object_id=str(row.id)).update(
            object_repr=f"Deleted user {row.id}"
        )
        row.delete()  # cascades to sessions, preferences, email addresses, social accounts
        cache.delete(OPT_IN_CACHE_KEY.format(user_id=user.id))
        send_templated_email(to=email, template="goodbye", context={"name": name})


# --- Staff support -----------------------------------------------------------------------------


def sign_out_all_sessions(*, user, reason: str = "staff") -> int:
    """End every session of the user (see end_every_session); returns how many API sessions ended."""
    return end_every_session(user_id=user.id, reason=reason)


def set_user_active(*, user, active: bool) -> None:
    """Deactivate (every session signed out in the same transaction) or reactivate an account."""
    with transaction.atomic():
        row = User.objects.select_for_update().get(id=user.id)
        if row.is_active != active:
            row.is_active = active
            row.save(update_fields=["is_active", "updated_at"])
        if not active:
            end_every_session(user_id=row.id, reason="deactivated")
