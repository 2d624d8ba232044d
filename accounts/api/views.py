"""Accounts API: each view parses input, calls one service, shapes the result."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.api import serializers as s
from accounts.oauth import PROVIDERS, finish_oauth_login, start_oauth_login
from accounts.ratelimits import client_ip
from chatfocus.api import error_responses, represent
from chatfocus.pagination import CursorPagination, paginated_response

NO_CONTENT = {204: OpenApiResponse(description="Done.")}


def user_agent(request) -> str:
    return request.META.get("HTTP_USER_AGENT", "")


def parse(serializer_class, request, **kwargs):
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def parse_query(serializer_class, request):
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class PublicView(APIView):
    """Endpoints used before there is a session: a stale Authorization header must not block them."""

    authentication_classes: list = []
    permission_classes = [AllowAny]


def token_response(user, access: str, refresh: str) -> Response:
    return Response(
        s.LoginResultSerializer({"user": services.get_profile(user=user), "access": access, "refresh": refresh}).data
    )


class RegisterView(PublicView):
    @extend_schema(
        operation_id="auth_register",
        summary="Create an account",
        description=(
            "Always 201 with the same body, whether the email is new or already has an account (no "
            "enumeration). A new address gets a verification email, an existing one a notice. No tokens: "
            "log in next. The password must pass the password rules (length ≥ 10, not common, not only "
            "digits, not like the email). Rate limited per IP and per email, alike for new and taken addresses."
        ),
        request=s.RegisterSerializer,
        responses={201: s.DetailSerializer, **error_responses(429)},
        tags=["auth"],
    )
    def post(self, request):
        data = parse(s.RegisterSerializer, request)
        services.register_user(**data, ip=client_ip(request))
        return Response(
            {"detail": "Check your inbox: we sent you an email to finish signing up. Then log in."}, status=201
        )


class LoginView(PublicView):
    @extend_schema(
        operation_id="auth_login",
        summary="Log in with email and password",
        description=(
            "Starts a session (listed under /api/auth/sessions) and returns its token pair. Unknown email "
            "and wrong password answer the same 401 `invalid_credentials`. Rate limited per IP and per "
            "account (failures); 429 carries Retry-After. Works before the email is verified."
        ),
        request=s.LoginSerializer,
        responses={200: s.LoginResultSerializer, **error_responses(401, 429)},
        examples=s.LOGIN_EXAMPLES,
        tags=["auth"],
    )
    def post(self, request):
        data = parse(s.LoginSerializer, request)
        user, access, refresh = services.login_user(**data, user_agent=user_agent(request), ip=client_ip(request))
        return token_response(user, access, refresh)


class RefreshView(PublicView):
    @extend_schema(
        operation_id="auth_refresh",
        summary="Exchange a refresh token for a new token pair",
        description=(
            "Rotation: the refresh token sent is used up. Sent again within JWT_REFRESH_REUSE_SECONDS "
            "(10 s) of its rotation it returns the session's current pair (two contexts refreshing at "
            "once both stay signed in). Later it is treated as theft: 401 `token_reused` and the whole "
            "session (every token it issued) is signed out; other sessions are untouched. An invalid, "
            "expired or signed-out token is 401 `token_invalid`."
        ),
        request=s.RefreshSerializer,
        responses={200: s.TokenPairSerializer, **error_responses(401, 429)},
        tags=["auth"],
    )
    def post(self, request):
        data = parse(s.RefreshSerializer, request)
        access, refresh = services.refresh_tokens(refresh=data["refresh"])
        return Response(s.TokenPairSerializer({"access": access, "refresh": refresh}).data)


class LogoutView(PublicView):
    @extend_schema(
        operation_id="auth_logout",
        summary="End the session of a refresh token",
        description="Every token of that session stops working at once. Idempotent.",
        request=s.RefreshSerializer,
        responses={**NO_CONTENT, **error_responses(401)},
        tags=["auth"],
    )
    def post(self, request):
        data = parse(s.RefreshSerializer, request)
        services.logout_session(refresh=data["refresh"])
        return Response(status=204)


class ForgotPasswordView(PublicView):
    @extend_schema(
        operation_id="auth_forgot_password",
        summary="Email a password reset link",
        description=(
            "Always 202 (no enumeration). If the account exists it gets a single-use link that expires "
            "(PASSWORD_RESET_TIMEOUT, 1 hour by default). Rate limited per email and per IP."
        ),
        request=s.ForgotPasswordSerializer,
        responses={202: s.DetailSerializer, **error_responses(429)},
        tags=["auth"],
    )
    def post(self, request):
        data = parse(s.ForgotPasswordSerializer, request)
        services.request_password_reset(email=data["email"], ip=client_ip(request))
        return Response(
            {"detail": "If an account uses this address, we sent it a link to reset the password."}, status=202
        )


class ResetPasswordView(PublicView):
    @extend_schema(
        operation_id="auth_reset_password",
        summary="Set a new password with the token from the reset email",
        description=(
            "`token` is the last part of the reset link (or the whole link). Single use. Every session of "
            "the account is signed out; the email address counts as verified."
        ),
        request=s.ResetPasswordSerializer,
        responses=NO_CONTENT,
        tags=["auth"],
    )
    def post(self, request):
        data = parse(s.ResetPasswordSerializer, request)
        services.reset_password(token=data["token"], password=data["password"])
        return Response(status=204)


class VerifyEmailView(PublicView):
    @extend_schema(
        operation_id="auth_verify_email",
        summary="Confirm an email address with the key from the verification email",
        description=(
            "`key` is the last part of the confirmation link (or the whole link). A confirmed pending "
            "address (email change) becomes the account's email."
        ),
        request=s.VerifyEmailSerializer,
        responses=NO_CONTENT,
        tags=["auth"],
    )
    def post(self, request):
        data = parse(s.VerifyEmailSerializer, request)
        services.verify_email(key=data["key"])
        return Response(status=204)


class ResendVerificationView(APIView):
    @extend_schema(
        operation_id="auth_verify_email_resend",
        summary="Send the verification email again",
        description="To the pending new address if there is one, else to the account's address (if unverified).",
        request=None,
        responses={**NO_CONTENT, **error_responses(429)},
        tags=["auth"],
    )
    def post(self, request):
        services.resend_verification_email(user=request.user)
        return Response(status=204)


class ChangePasswordView(APIView):
    @extend_schema(
        operation_id="auth_change_password",
        summary="Change your password",
        description=(
            "Every other session is signed out; this one stays. A wrong `current_password` is 400 "
            "`validation_error` (and counts as a failed login). Accounts without a password (OAuth only) "
            "need a login from the last 10 minutes instead (else 403)."
        ),
        request=s.ChangePasswordSerializer,
        responses={**NO_CONTENT, **error_responses(403, 429)},
        tags=["auth"],
    )
    def post(self, request):
        data = parse(s.ChangePasswordSerializer, request)
        services.change_password(
            user=request.user, current_password=data.get("current_password"), new_password=data["new_password"]
        )
        return Response(status=204)


class OAuthStartView(PublicView):
    @extend_schema(
        operation_id="auth_oauth_start",
        summary="Log in with Google or GitHub (browser redirect)",
        description=(
            "Open in the browser (e.g. `chrome.identity.launchWebAuthFlow`). 302 to the provider; after "
            "the provider, the browser lands on `redirect_uri?code=<one-time code, 60 s>` (exchange it at "
            "/api/auth/oauth/token) or `redirect_uri?error=<code>`: `access_denied`, `state_mismatch`, "
            "`provider_error`, `email_not_verified`, `account_not_linkable` (an account with this email "
            "exists but never verified it), `login_failed`. `redirect_uri` must be allow-listed "
            "(OAUTH_REDIRECT_URIS). Uses a short-lived session cookie for the state."
        ),
        parameters=[
            OpenApiParameter("provider", str, OpenApiParameter.PATH, enum=list(PROVIDERS)),
            s.OAuthStartSerializer,
        ],
        responses={
            302: OpenApiResponse(description="Redirect to the provider."),
            **error_responses(400, 404, 503),
        },
        tags=["auth"],
    )
    def get(self, request, provider):
        data = parse_query(s.OAuthStartSerializer, request)
        return start_oauth_login(request=request._request, provider_id=provider, redirect_uri=data["redirect_uri"])


class OAuthCompleteView(PublicView):
    # The only API view that reads the browser session: allauth logged the browser in there.
    authentication_classes = [SessionAuthentication]

    @extend_schema(
        operation_id="auth_oauth_complete",
        summary="Last hop of the OAuth redirect flow (internal)",
        description=(
            "allauth sends the browser here after the provider; it redirects to the extension's "
            "`redirect_uri` with `code` or `error`. Not called by clients directly."
        ),
        responses={302: OpenApiResponse(description="Redirect to the extension."), **error_responses(400)},
        tags=["auth"],
    )
    def get(self, request):
        return finish_oauth_login(request=request._request)


class OAuthTokenView(PublicView):
    @extend_schema(
        operation_id="auth_oauth_token",
        summary="Exchange the one-time OAuth code for a token pair",
        description="The code works once and for 60 seconds; a used, expired or unknown code is 400.",
        request=s.OAuthTokenSerializer,
        responses={200: s.LoginResultSerializer},
        tags=["auth"],
    )
    def post(self, request):
        data = parse(s.OAuthTokenSerializer, request)
        user, access, refresh = services.login_with_oauth_code(
            **data, user_agent=user_agent(request), ip=client_ip(request)
        )
        return token_response(user, access, refresh)


class SessionListView(APIView):
    # Declared on the view, not only used in get(), so the schema shows the paginated shape and its parameters.
    pagination_class = CursorPagination

    @extend_schema(
        operation_id="auth_sessions_list",
        summary="List your active sessions",
        description="Every device signed in to the account (newest first); `current` marks this one.",
        responses={200: s.SessionSerializer(many=True)},
        tags=["auth"],
    )
    def get(self, request):
        sessions = services.list_sessions(user=request.user)
        return paginated_response(self, request, sessions, s.SessionSerializer, context={"request": request})


class SessionDetailView(APIView):
    @extend_schema(
        operation_id="auth_sessions_revoke",
        summary="Sign out one of your sessions",
        description="Its access and refresh tokens stop working immediately. Unknown or foreign ids → 404.",
        request=None,
        responses=NO_CONTENT,
        tags=["auth"],
    )
    def delete(self, request, session_id):
        services.revoke_session(user=request.user, session_id=session_id)
        return Response(status=204)


class MeView(APIView):
    def cache_keys_for(self, request, *, user_id) -> list[str]:
        return services.profile_cache_keys(user_id=user_id) if request.method == "GET" else []

    @extend_schema(
        operation_id="users_me", summary="Your account", responses={200: s.ProfileSerializer}, tags=["users"]
    )
    def get(self, request):
        profile = services.get_profile(user=request.user, prefetched=request.user.prefetched)
        return Response(represent(s.ProfileSerializer, profile))

    def _update(self, request, *, partial: bool):
        data = parse(s.ProfileUpdateSerializer, request, partial=partial)
        services.update_profile(user=request.user, **data)
        return Response(s.ProfileSerializer(services.get_profile(user=request.user)).data)

    @extend_schema(
        operation_id="users_me_update",
        summary="Replace your profile (name, email, locale, timezone)",
        description=(
            "All four fields. A new email needs `current_password` (accounts without a password: a login in "
            "the last 10 minutes), else 403; it is applied once confirmed (see `pending_email`), and the old "
            "address gets a link that undoes the change. Unknown keys → 400."
        ),
        request=s.ProfileUpdateSerializer,
        responses={200: s.ProfileSerializer, **error_responses(403, 429)},
        tags=["users"],
    )
    def put(self, request):
        return self._update(request, partial=False)

    @extend_schema(
        operation_id="users_me_partial_update",
        summary="Change some profile fields",
        description=(
            "Any of name, email, locale, timezone. A new email needs `current_password` (else 403) and is "
            "applied once confirmed. Unknown keys → 400."
        ),
        request=s.ProfileUpdateSerializer(partial=True),
        responses={200: s.ProfileSerializer, **error_responses(403, 429)},
        tags=["users"],
    )
    def patch(self, request):
        return self._update(request, partial=True)

    @extend_schema(
        operation_id="users_me_delete",
        summary="Delete your account and its data",
        description=(
            "Needs `password` (400 if wrong), or for accounts without one a login from the last 10 minutes "
            "(else 403). Cancels any subscription (502 `upstream_error` if the payment provider fails; "
            "then nothing is deleted), erases synced settings, usage events, sessions and tokens, then the "
            "account. A goodbye email follows."
        ),
        request=s.DeleteAccountSerializer,
        responses={**NO_CONTENT, **error_responses(400, 403, 429, 502)},
        tags=["users"],
    )
    def delete(self, request):
        data = parse(s.DeleteAccountSerializer, request)
        services.delete_account(user=request.user, password=data.get("password"))
        return Response(status=204)


class ExportView(APIView):
    @extend_schema(
        operation_id="users_me_export",
        summary="Export everything stored about you (JSON)",
        description=(
            "Account, preferences, email addresses, sessions, social accounts, synced settings, usage "
            "events and billing."
        ),
        responses={200: OpenApiResponse(description="The export document.", response={"type": "object"})},
        tags=["users"],
    )
    def get(self, request):
        return Response(services.export_user_data(user=request.user))


class PreferencesView(APIView):
    @extend_schema(
        operation_id="users_me_settings",
        summary="Your account preferences",
        responses={200: s.PreferencesSerializer},
        tags=["users"],
    )
    def get(self, request):
        return Response(s.PreferencesSerializer(services.get_preferences(user=request.user)).data)

    def _update(self, request, *, partial: bool):
        data = parse(s.PreferencesSerializer, request, partial=partial)
        return Response(s.PreferencesSerializer(services.update_preferences(user=request.user, **data)).data)

    @extend_schema(
        operation_id="users_me_settings_update",
        summary="Replace your preferences",
        description="All five fields; unknown keys → 400.",
        request=s.PreferencesSerializer,
        responses={200: s.PreferencesSerializer},
        tags=["users"],
    )
    def put(self, request):
        return self._update(request, partial=False)

    @extend_schema(
        operation_id="users_me_settings_partial_update",
        summary="Change some preferences",
        description="Any subset of the fields; unknown keys → 400.",
        request=s.PreferencesSerializer(partial=True),
        responses={200: s.PreferencesSerializer},
        tags=["users"],
    )
    def patch(self, request):
        return self._update(request, partial=True)
