"""What every ModelAdmin of the app shares: read-only, links between pages.

The stylesheet is a template (``openim_sync/admin.css``, inlined by ``openim_sync/style.html``
from the app's admin templates), so that it ships with the package's templates."""

import json
from urllib.parse import urlencode

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from openim_sync.models import CallbackEvent, ReconcileRun


class ReadOnlyAdminMixin:
    """The mirror is written by callbacks (and reconcile runs) only: admin shows it and never
    edits it."""

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
    return format_html('<pre class="oims-json">{}</pre>', text)


def admin_url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def changelist_url(model, **filters):
    """The change list of ``model`` filtered by ``filters`` (values URL-encoded: a Tencent group
    id such as ``@TGS#2C5SZEAEF`` must not start a fragment)."""
    url = admin_url(model, "changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def link(url, label, title=""):
    if title:
        return format_html('<a href="{}" title="{}">{}</a>', url, title, label)
    return format_html('<a href="{}">{}</a>', url, label)


def event_link(event_id, label=None):
    if not event_id:
        return "—"
    return link(admin_url(CallbackEvent, "change", event_id), label or f"event #{event_id}")


def run_link(run_id, label=None):
    if not run_id:
        return "—"
    return link(admin_url(ReconcileRun, "change", run_id), label or f"reconcile run #{run_id}")


def change_link(obj, label=None):
    """A link to ``obj``'s change page (or "—" for ``None``)."""
    if obj is None:
        return "—"
    return link(admin_url(type(obj), "change", obj.pk), label if label is not None else str(obj))


def ago_text(value, now=None):
    """``3 minutes ago``, ``just now``, ``in 2 hours``."""
    now = now or timezone.now()
    if value > now:
        return f"in {timesince(now, value, depth=1)}"
    if (now - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value, now, depth=1)} ago"


class LinkedRowsMixin:
    """``last_event`` and ``last_run``: what last changed a mirror row, linked."""

    @admin.display(description="last changed", ordering="updated_at")
    def last_change_link(self, obj):
        """What last changed the row (event or reconcile run), and how long ago."""
        if obj.last_event_id:
            source = event_link(obj.last_event_id)
        elif obj.last_run_id:
            source = run_link(obj.last_run_id, f"run #{obj.last_run_id}")
        else:
            source = "—"
        if obj.updated_at is None:
            return source
        return format_html(
            '{}<br><time class="oims-when" datetime="{}" title="{}">{}</time>',
            source,
            obj.updated_at.isoformat(),
            obj.updated_at.isoformat(),
            ago_text(obj.updated_at),
        )

    @admin.display(description="last event", ordering="last_event")
    def last_event_link(self, obj):
        return event_link(obj.last_event_id)

    @admin.display(description="last reconcile run", ordering="last_run")
    def last_run_link(self, obj):
        return run_link(obj.last_run_id)
