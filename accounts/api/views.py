"""Accounts API: each view parses input, calls one service, shapes the result."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.api.serializers import SessionSerializer
from chatfocus.pagination import CursorPagination


class SessionListView(APIView):
    @extend_schema(
        operation_id="auth_sessions_list",
        summary="List your active sessions",
        description="Every device signed in to the account (newest first); `current` marks this one.",
        responses={200: SessionSerializer(many=True)},
        tags=["auth"],
    )
    def get(self, request):
        paginator = CursorPagination()
        page = paginator.paginate_queryset(services.list_sessions(user=request.user), request, view=self)
        return paginator.get_paginated_response(SessionSerializer(page, many=True, context={"request": request}).data)


class SessionDetailView(APIView):
    @extend_schema(
        operation_id="auth_sessions_revoke",
        summary="Sign out one of your sessions",
        description="Its access and refresh tokens stop working immediately. Unknown or foreign ids → 404.",
        responses={204: OpenApiResponse(description="Signed out.")},
        tags=["auth"],
    )
    def delete(self, request, session_id):
        services.revoke_session(user=request.user, session_id=session_id)
        return Response(status=204)
