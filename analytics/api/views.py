from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.api.serializers import EVENT_EXAMPLES, EventBatchSerializer, IngestResultSerializer
from analytics.services import ingest_events


class EventIngestView(APIView):
    @extend_schema(
        operation_id="analytics_events_ingest",
        summary="Send a batch of usage events and performance metrics",
        description=(
            "At most 100 events and 64 KB. Each event is validated on its own: invalid ones are listed "
            "in `rejected` by index and the rest are stored. Stored only when the user opted in to "
            "analytics (`analytics_opt_in`); otherwise every event is counted as `dropped` and nothing "
            "is written. Idempotent by event `id`."
        ),
        request=EventBatchSerializer,
        responses={202: IngestResultSerializer},
        examples=EVENT_EXAMPLES,
        tags=["analytics"],
    )
    def post(self, request):
        serializer = EventBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = ingest_events(user=request.user, events=serializer.validated_data["events"])
        return Response(IngestResultSerializer(result).data, status=202)
