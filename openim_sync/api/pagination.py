"""Cursor pagination: stable pages under concurrent writes, no COUNT(*) over big tables."""

from rest_framework.pagination import CursorPagination

from openim_sync.conf import app_settings


class MirrorCursorPagination(CursorPagination):
    ordering = "id"
    page_size_query_param = "page_size"

    def get_page_size(self, request):
        self.page_size = app_settings.API_PAGE_SIZE
        self.max_page_size = app_settings.API_MAX_PAGE_SIZE
        return super().get_page_size(request)


class EventCursorPagination(MirrorCursorPagination):
    ordering = "-id"
