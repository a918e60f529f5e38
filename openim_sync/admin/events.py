from django.contrib import admin

from openim_sync.models import CallbackEvent

from .actions import replay_selected
from .mixins import ReadOnlyAdminMixin, pretty_json


@admin.register(CallbackEvent)
class CallbackEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "received_at", "protocol", "command", "status", "short_reason")
    list_filter = ("status", "protocol", "command", "received_at")
    search_fields = ("=id", "command", "operation_id", "reason")
    date_hierarchy = "received_at"
    list_per_page = 50
    show_full_result_count = False
    actions = [replay_selected]
    fields = (
        "id",
        "protocol",
        "command",
        "url_command",
        "status",
        "reason",
        "received_at",
        "processed_at",
        "attempts",
        "operation_id",
        "remote_addr",
        "payload_display",
        "body_display",
        "headers_display",
        "query_display",
        "traceback",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.defer("body", "payload", "headers", "query", "traceback")
        return queryset

    def has_delete_permission(self, request, obj=None):
        # Deleting deliveries is openim_prune's job; admins may still remove single events.
        return request.user.is_superuser

    def has_replay_permission(self, request):
        # The admin never edits events, but replaying one is a change: same permission.
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    @admin.display(description="reason")
    def short_reason(self, obj):
        return obj.reason if len(obj.reason) <= 80 else obj.reason[:79] + "…"

    @admin.display(description="payload")
    def payload_display(self, obj):
        return pretty_json(obj.payload)

    @admin.display(description="raw body")
    def body_display(self, obj):
        body = bytes(obj.body or b"")
        return body.decode("utf-8", errors="replace") if body else "—"

    @admin.display(description="headers")
    def headers_display(self, obj):
        return pretty_json(obj.headers)

    @admin.display(description="query")
    def query_display(self, obj):
        return pretty_json(obj.query)
