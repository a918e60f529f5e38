import json

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html


class ReadOnlyAdminMixin:
    """The mirror is written by callbacks only: admin shows it and never edits it."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def pretty_json(value):
    if value in (None, "", {}, []):
        return "—"
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return format_html('<pre style="margin:0;white-space:pre-wrap">{}</pre>', text)


def event_link(event_id, label=None):
    if not event_id:
        return "—"
    url = reverse("admin:openim_sync_callbackevent_change", args=[event_id])
    return format_html('<a href="{}">{}</a>', url, label or f"#{event_id}")


class LastEventMixin:
    @admin.display(description="last changed by", ordering="last_event")
    def last_event_link(self, obj):
        return event_link(obj.last_event_id)

    @admin.display(description="field versions")
    def versions_display(self, obj):
        return pretty_json(obj.versions)
