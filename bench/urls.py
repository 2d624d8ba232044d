"""The app's URLs plus a bare Django JSON view: the baseline every scenario's throughput is compared to.

It lives under /api/ so the whole middleware stack treats it like an API endpoint (request log, body
limits, CORS, error middleware); it only skips DRF, authentication and the database.
"""

from django.http import JsonResponse
from django.urls import path

from chatfocus.urls import handler400, handler403, handler404, handler500
from chatfocus.urls import urlpatterns as app_urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]


def baseline(request):
    return JsonResponse({"ok": True})


urlpatterns = [path("api/bench/baseline", baseline), *app_urlpatterns]
