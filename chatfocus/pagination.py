"""List pagination for every API list (kept apart from api.py: DRF imports it while loading)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import pagination
from rest_framework.exceptions import NotFound

from chatfocus.exceptions import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def parse_limit(raw: str | None, *, default: int, maximum: int, field: str = "limit") -> int:
    """The `limit` rule of every list: absent → default; a positive integer in ASCII digits, clamped to maximum.

    Anything else (`abc`, `0`, `-1`, `1.5`, ` 5`, `٣`) is a 400 naming the parameter, never silently the default.
    """
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) == 0:
        raise ValidationFailed(fields={field: ["A positive integer is required."]})
    return min(int(raw), maximum)


class CursorPagination(pagination.CursorPagination):
    """Opaque `?cursor=` pages; `limit` defaults to 50, at most 200 (larger is clamped) (DESIGN.md section 2).

    A cursor the server did not hand out is 400 `validation_error` on `cursor`: DRF answers 404 for one it
    cannot decode, and a decodable one whose position does not fit the ordering field would fail the query.
    """

    page_size = DEFAULT_LIMIT
    max_page_size = MAX_LIMIT
    page_size_query_param = "limit"
    ordering = "-created_at"

    def get_page_size(self, request):
        return parse_limit(
            request.query_params.get(self.page_size_query_param), default=self.page_size, maximum=self.max_page_size
        )

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except (NotFound, DjangoValidationError, ValueError) as error:
            if request.query_params.get(self.cursor_query_param) is None:
                raise
            raise ValidationFailed(fields={self.cursor_query_param: [self.invalid_cursor_message]}) from error

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "default": self.page_size}
                parameter["description"] = (
                    f"Results per page, {self.page_size} by default; above {self.max_page_size} is clamped."
                )
        return parameters


def paginated_response(view, request, queryset, serializer_class, **serializer_kwargs):
    """One page of `queryset` by the view's `pagination_class`, serialized: `{next, previous, results}`."""
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True, **serializer_kwargs).data)
