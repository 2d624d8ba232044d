from django.conf import settings
from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path, re_path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from analytics import views as analytics_views
from chatfocus.api import HealthView, ReadinessView, api_not_found


class DocsView(SpectacularSwaggerSplitView):
    """The Swagger UI page; the split view serves its start-up script as a file (no inline script under the CSP)."""

    def options(self, request, *args, **kwargs):
        # DRF renders OPTIONS metadata with the view's HTML renderer, which has no template for it (a 500).
        return HttpResponse(headers={"Allow": ", ".join(self.allowed_methods)})


urlpatterns = [
    path("healthz", HealthView.as_view(), name="healthz"),
    path("readyz", ReadinessView.as_view(), name="readyz"),
    path("metrics", analytics_views.metrics, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", DocsView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("accounts.api.urls")),
    path("api/", include("billing.api.urls")),
    path("api/", include("syncsettings.api.urls")),
    path("api/", include("analytics.api.urls")),
    re_path(r"^api(?:/.*)?$", api_not_found),
    path(settings.ADMIN_URL, admin.site.urls),
    path("account/", include("accounts.pages_urls")),
    path("account/", include("allauth.urls")),
    path("", TemplateView.as_view(template_name="landing.html"), name="landing"),
]

handler400 = "chatfocus.views.bad_request"
handler403 = "chatfocus.views.permission_denied"
handler404 = "chatfocus.views.page_not_found"
handler500 = "chatfocus.views.server_error"
