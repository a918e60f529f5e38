"""The mirror admins' "Re-sync selected" action: reconcile the selected rows from the REST API."""

from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured
from django.utils.html import format_html

from openim_sync.reconcile import RestError
from openim_sync.reconcile.resync import resync

from .mixins import admin_url

#: More than this is a job for ``manage.py openim_reconcile`` (a web request should stay short).
MAX_RESYNC = 200


@admin.action(description="Re-sync selected from the IM server", permissions=["view"])
def resync_selected(modeladmin, request, queryset):
    count = queryset.count()
    if count > MAX_RESYNC:
        modeladmin.message_user(
            request,
            f"{count} rows selected: re-sync at most {MAX_RESYNC} here, or run "
            "`manage.py openim_reconcile --ids ...`.",
            messages.ERROR,
        )
        return
    try:
        runs = resync(queryset)
    except (ImproperlyConfigured, ValueError, RestError) as exc:
        modeladmin.message_user(request, f"Re-sync failed: {exc}", messages.ERROR)
        return
    for run in runs:
        changed = sum(c.get("changed", 0) for k, c in run.counts.items() if k != "requests")
        failed = sum(c.get("failed", 0) for k, c in run.counts.items() if k != "requests")
        url = admin_url(type(run), "change", run.pk)
        text = format_html(
            '<a href="{}">Reconcile #{}</a> ({}): {} row(s) changed, {} failed.',
            url,
            run.pk,
            run.protocol,
            changed,
            failed,
        )
        level = messages.SUCCESS if run.status == "succeeded" else messages.ERROR
        modeladmin.message_user(request, text, level)
