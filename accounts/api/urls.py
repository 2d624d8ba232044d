from django.urls import path

from accounts.api import views

urlpatterns = [
    path("auth/register", views.RegisterView.as_view(), name="auth-register"),
    path("auth/login", views.LoginView.as_view(), name="auth-login"),
    path("auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("auth/refresh", views.RefreshView.as_view(), name="auth-refresh"),
    path("auth/forgot-password", views.ForgotPasswordView.as_view(), name="auth-forgot-password"),
    path("auth/reset-password", views.ResetPasswordView.as_view(), name="auth-reset-password"),
    path("auth/verify-email", views.VerifyEmailView.as_view(), name="auth-verify-email"),
    path("auth/verify-email/resend", views.ResendVerificationView.as_view(), name="auth-verify-email-resend"),
    path("auth/change-password", views.ChangePasswordView.as_view(), name="auth-change-password"),
    path("auth/oauth/complete", views.OAuthCompleteView.as_view(), name="auth-oauth-complete"),
    path("auth/oauth/token", views.OAuthTokenView.as_view(), name="auth-oauth-token"),
    path("auth/oauth/<str:provider>", views.OAuthStartView.as_view(), name="auth-oauth-start"),
    path("auth/sessions", views.SessionListView.as_view(), name="auth-sessions"),
    path("auth/sessions/<uuid:session_id>", views.SessionDetailView.as_view(), name="auth-session"),
    path("users/me", views.MeView.as_view(), name="users-me"),
    path("users/me/export", views.ExportView.as_view(), name="users-me-export"),
    path("users/me/settings", views.PreferencesView.as_view(), name="users-me-settings"),
]
