"""Test-only routes that exercise the error contract (a crash, a JSON echo)."""

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from chatfocus.urls import urlpatterns as project_urlpatterns


class EchoView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def post(self, request):
        return Response({"received": request.data})


class CrashView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("boom: secret internals")


def plain_crash(request):
    raise RuntimeError("boom outside DRF")


urlpatterns = [
    path("api/test/echo", EchoView.as_view()),
    path("api/test/crash", CrashView.as_view()),
    path("api/test/plain-crash", plain_crash),
    *project_urlpatterns,
]

handler400 = "chatfocus.views.bad_request"
handler403 = "chatfocus.views.permission_denied"
handler404 = "chatfocus.views.page_not_found"
handler500 = "chatfocus.views.server_error"
