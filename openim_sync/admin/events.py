"""Callback events: the list an operator searches by user or group, and each delivery's page with
the rows it changed, the reply it got and a Replay button."""

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import Q
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from openim_sync.callbacks import registry
from openim_sync.models import CallbackEvent, EventStatus, ImGroup, ImUser, Protocol
from openim_sync.protocols import adapter_for

from . import display, status
from .actions import replay_selected
from .changed import changed_rows
from .filters import (
    AREAS,
    AreaFilter,
    CommandFilter,
    area_of,
    breakable,
    exact_filter,
    short_command,
)
from .mixins import ReadOnlyAdminMixin, change_link, changelist_url, event_link, link, pretty_json

BIG_FIELDS = ("body", "payload", "headers", "query", "traceback")
#: The reply each stored status got (a rejected unreadable body may have had 411 or 413).
HTTP_STATUS = {
    EventStatus.RECEIVED: 200,
    EventStatus.PROCESSED: 200,
    EventStatus.IGNORED: 200,
    EventStatus.REJECTED: 400,
    EventStatus.FAILED: 500,
}
PROTOCOL_SHORT = {Protocol.OPENIM: "OpenIM", Protocol.TENCENT: "Tencent"}
#: Which mirror model a subject column's id names, and the column.
SUBJECT_MODELS = {"user": (ImUser, "user_id"), "group": (ImGroup, "group_id")}


def status_badge(value):
    label = EventStatus(value).label if value in EventStatus.values else value
    return format_html('<span class="oims-status oims-status-{}">{}</span>', value, label)


@admin.register(CallbackEvent)
class CallbackEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("event", "status_display", "command_display", "subject", "reason_short")
    list_display_links = ("event",)
    list_filter = (
        "status",
        "protocol",
        AreaFilter,
        CommandFilter,
        "received_at",
        exact_filter("subject_user_id", "user"),
        exact_filter("subject_group_id", "group"),
        exact_filter("subject_peer_id", "peer"),
    )
    # The search box matches ids exactly (see get_search_results); the names only make it show.
    search_fields = ("=subject_user_id", "=subject_group_id", "=subject_peer_id", "=command")
    search_help_text = (
        "An exact user, group or peer id (user123, @TGS#2C5SZEAEF), a command name, an event id "
        "(#123), or op:<operationID>."
    )
    list_per_page = 50
    show_full_result_count = False
    actions = [replay_selected]
    fieldsets = (
        (
            "Delivery",
            {
                "fields": (
                    ("id", "protocol", "attempts"),
                    "command_full",
                    ("url_command", "operation_id", "remote_addr"),
                    ("received_full", "processed_full"),
                )
            },
        ),
        ("What it is about", {"fields": ("subject_links",)}),
        (
            "Outcome",
            {"fields": ("status_display", "reason", "reply_display", "traceback")},
        ),
        ("Mirror rows", {"fields": ("changed_rows_display",)}),
        ("Payload", {"fields": ("payload_display",)}),
        (
            "Request",
            {
                "fields": ("headers_display", "query_display", "body_display"),
                "classes": ["collapse"],
            },
        ),
    )
    readonly_fields = flatten_fieldsets(fieldsets)

    def get_urls(self):
        views = status.StatusViews(self)
        return [
            path("status/", views.page, name="openim_sync_status"),
            path("status.json", views.json, name="openim_sync_status_json"),
            *super().get_urls(),
        ]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.defer(*BIG_FIELDS)
        return queryset

    def get_search_results(self, request, queryset, search_term):
        """Exact matches on indexed columns only: the subject ids, the command, the id (``123``
        or ``#123``); ``op:<id>`` matches the operationID (not indexed: a scan)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.lower().startswith("op:"):
            return queryset.filter(operation_id=term[3:].strip()), False
        condition = (
            Q(subject_user_id=term)
            | Q(subject_group_id=term)
            | Q(subject_peer_id=term)
            | Q(command=term)
        )
        number = term[1:] if term.startswith("#") else term
        if number.isdigit() and len(number) < 19:
            condition |= Q(pk=int(number))
        return queryset.filter(condition), False

    def has_delete_permission(self, request, obj=None):
        # Deleting deliveries is openim_prune's job; admins may still remove single events.
        return request.user.is_superuser

    def has_replay_permission(self, request):
        # The admin never edits events, but replaying one is a change: same permission.
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "status_url": status.url()}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_replay": self.has_replay_permission(request),
            "replay_action": "replay_selected",
            "status_url": status.url(),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # -- list columns ---------------------------------------------------------------------

    @admin.display(description="event", ordering="id")
    def event(self, obj):
        local = timezone.localtime(obj.received_at)
        return format_html(
            '<strong>#{}</strong> <time datetime="{}" title="received {} ({} ms)">{}<br>{}</time>',
            obj.pk,
            obj.received_at.isoformat(),
            local.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            obj.received_ms,
            local.strftime("%Y-%m-%d"),
            local.strftime("%H:%M:%S"),
        )

    @admin.display(description="status", ordering="status")
    def status_display(self, obj):
        return status_badge(obj.status)

    @admin.display(description="command", ordering="command")
    def command_display(self, obj):
        return format_html(
            '<span class="oims-command" title="{}">{}</span><span class="oims-protocol">{}</span>',
            obj.command,
            breakable(short_command(obj.command)) if obj.command else "(no command)",
            PROTOCOL_SHORT.get(obj.protocol, obj.protocol),
        )

    @admin.display(description="about")
    def subject(self, obj):
        parts = []
        for column, label in (
            ("subject_user_id", "user"),
            ("subject_group_id", "group"),
            ("subject_peer_id", "peer"),
        ):
            value = getattr(obj, column)
            if value:
                url = changelist_url(CallbackEvent, **{column: value})
                parts.append(
                    format_html(
                        '<span class="oims-subject"><span class="oims-label">{}</span> {}</span>',
                        label,
                        link(url, value, title=f"Events with {label} {value}"),
                    )
                )
        return format_html_join("", "{}", ((part,) for part in parts)) if parts else "—"

    @admin.display(description="reason")
    def reason_short(self, obj):
        if not obj.reason:
            return ""
        text = obj.reason if len(obj.reason) <= 300 else obj.reason[:299] + "…"
        return format_html('<span class="oims-reason" title="{}">{}</span>', obj.reason, text)

    # -- the detail page ------------------------------------------------------------------

    @admin.display(description="command")
    def command_full(self, obj):
        spec = registry.lookup(obj.protocol, obj.command)
        area = AREAS[area_of(spec)] if spec else "not registered (stored as ignored)"
        events = changelist_url(CallbackEvent, command=obj.command)
        return format_html(
            '<code>{}</code> <span class="oims-raw">{}</span> · {}',
            obj.command or "(none)",
            area,
            link(events, "events with this command"),
        )

    @admin.display(description="received")
    def received_full(self, obj):
        return display.when(obj.received_at, raw=f"{obj.received_ms} ms")

    @admin.display(description="processed")
    def processed_full(self, obj):
        return display.when(obj.processed_at)

    @admin.display(description="IDs")
    def subject_links(self, obj):
        rows = []
        for column, label in (
            ("subject_user_id", "user"),
            ("subject_group_id", "group"),
            ("subject_peer_id", "peer"),
        ):
            value = getattr(obj, column)
            if not value:
                continue
            model, key = SUBJECT_MODELS.get(label, (ImUser, "user_id"))
            row = model.objects.filter(**{key: value}).only("pk", key).first()
            mirror = (
                change_link(row, f"{model._meta.verbose_name} {value}")
                if row
                else mark_safe('<span class="oims-raw">not in the mirror</span>')
            )
            events = link(changelist_url(CallbackEvent, **{column: value}), "events")
            rows.append((label, value, mirror, events))
        if not rows:
            return "The payload names no user or group."
        return format_html(
            '<table class="oims-table"><tbody>{}</tbody></table>',
            format_html_join(
                "",
                "<tr><th>{}</th><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                rows,
            ),
        )

    @admin.display(description="reply")
    def reply_display(self, obj):
        code = HTTP_STATUS.get(obj.status, 200)
        adapter = adapter_for(obj.protocol)
        body = adapter.success_body() if code == 200 else adapter.error_body(code, obj.reason)
        return format_html(
            "HTTP {} {}"
            '<p class="oims-help">The reply for the event\'s current status (after a replay it '
            "may differ from the first delivery's).</p>",
            code,
            pretty_json(body),
        )

    @admin.display(description="rows")
    def changed_rows_display(self, obj):
        rows, more = changed_rows(obj)
        if not rows:
            if obj.status == EventStatus.PROCESSED:
                return "This event changed no mirror row."
            return f"None: the event is {obj.status}, nothing of it was applied."
        lines = []
        for row in rows:
            kind = row.model._meta.verbose_name
            key = " / ".join(str(part) for part in row.key)
            if row.obj is None:
                target = format_html("{} <code>{}</code>", kind, key)
                state = mark_safe('<span class="oims-raw">not in the mirror</span>')
            else:
                target = change_link(row.obj, format_html("{} <code>{}</code>", kind, key))
                if row.obj.last_event_id == obj.pk:
                    state = "last changed by this event"
                elif row.holds:
                    state = (
                        format_html("later changed by {}", event_link(row.obj.last_event_id))
                        if row.obj.last_event_id
                        else "later changed by a reconcile run"
                    )
                else:
                    state = "holds nothing from this event (newer state, or not written)"
                if row.removed:
                    state = format_html("{} · <strong>removed</strong>", state)
            fields = ", ".join(row.fields) if row.fields else "—"
            lines.append((target, fields, state))
        table = format_html(
            '<table class="oims-table oims-changed"><thead><tr><th>row</th>'
            "<th>fields holding this event's value</th><th>state</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", lines),
        )
        if more:
            table = format_html("{}<p>… and {} more rows named by the event.</p>", table, more)
        return table

    @admin.display(description="payload")
    def payload_display(self, obj):
        return pretty_json(obj.payload)

    @admin.display(description="raw body")
    def body_display(self, obj):
        body = bytes(obj.body or b"")
        if not body:
            return "—"
        return format_html('<pre class="oims-json">{}</pre>', body.decode("utf-8", "replace"))

    @admin.display(description="headers")
    def headers_display(self, obj):
        return pretty_json(obj.headers)

    @admin.display(description="query")
    def query_display(self, obj):
        return pretty_json(obj.query)
