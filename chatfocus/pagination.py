"""List pagination for every API list (kept apart from api.py: DRF imports it while loading)."""

from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    """Opaque `?cursor=` pages; `limit` defaults to 50, at most 200 (DESIGN.md section 2)."""

    page_size = 50
    max_page_size = 200
    page_size_query_param = "limit"
    ordering = "-created_at"
