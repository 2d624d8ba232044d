"""The Prometheus scrape endpoint (not part of the JSON API, so a plain Django view)."""

import hmac

from django.conf import settings
from django.views.decorators.http import require_safe
from django_prometheus.exports import ExportToDjangoView

from chatfocus.exceptions import error_response
from chatfocus.monitoring import operations_metrics


@require_safe
def metrics(request):
    """Prometheus metrics of every worker (multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set)."""
    expected = f"Bearer {settings.METRICS_TOKEN}".encode()
    given = request.META.get("HTTP_AUTHORIZATION", "").encode()
    # Without a configured token nobody may scrape: metrics reveal traffic and business numbers.
    if not settings.METRICS_TOKEN or not hmac.compare_digest(given, expected):
        response = error_response(
            request,
            code="not_authenticated",
            message="Send Authorization: Bearer <METRICS_TOKEN>.",
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    response = ExportToDjangoView(request)
    response.content += operations_metrics()
    return response
