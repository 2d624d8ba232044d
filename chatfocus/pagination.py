"""List pagination for every API list (kept apart from api.py: DRF imports it while loading)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import pagination
from rest_framework.exceptions import NotFound

from chatfocus.exceptions import ValidationFailed


class CursorPagination(pagination.CursorPagination):
    """Opaque `?cursor=` pages; `limit` defaults to 50, at most 200 (DESIGN.md section 2).

    A cursor the server did not hand out is 400 `validation_error` on `cursor`: DRF answers 404 for one it
    cannot decode, and a decodable one whose position does not fit the ordering field would fail the query.
    """

    page_size = 50
    max_page_size = 200
    page_size_query_param = "limit"
    ordering = "-created_at"

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except (NotFound, DjangoValidationError, ValueError) as error:
            if request.query_params.get(self.cursor_query_param) is None:
                raise
            raise ValidationFailed(fields={self.cursor_query_param: [self.invalid_cursor_message]}) from error
