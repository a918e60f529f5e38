"""Admin actions on callback events. Each confirms before acting and reports what happened."""

from django.contrib import admin, messages
from django.template.response import TemplateResponse

from openim_sync import replay
from openim_sync.exceptions import DatabaseUnavailable

#: More than this is a job for ``manage.py openim_replay`` (a web request should stay short).
MAX_REPLAY = 1000
LISTED = 100


@admin.action(description="Replay selected events", permissions=["replay"])
def replay_selected(modeladmin, request, queryset):
    opts = modeladmin.model._meta
    count = queryset.count()
    if count > MAX_REPLAY:
        modeladmin.message_user(
            request,
            f"{count} events selected: the admin replays at most {MAX_REPLAY} at a time. Narrow "
            "the selection, or run `manage.py openim_replay` (e.g. --from-id/--to-id, --status, "
            "--command).",
            messages.ERROR,
        )
        return None

    if request.POST.get("post") == "yes":
        try:
            report = replay.replay(queryset.defer(None))  # the list view defers the body
        except DatabaseUnavailable as exc:
            modeladmin.message_user(request, f"Replay stopped: {exc}", messages.ERROR)
            return None
        level = messages.WARNING if report.failed_ids else messages.SUCCESS
        text = report.summary()
        if report.failed_ids:
            shown = ", ".join(f"#{pk}" for pk in report.failed_ids[:20])
            text += f" Still failing: {shown}. See each event's reason and traceback."
        modeladmin.message_user(request, text, level)
        return None  # back to the change list

    events = queryset.order_by("pk").defer("body", "payload", "headers", "query", "traceback")
    statuses = {}
    for status in queryset.values_list("status", flat=True):
        statuses[status] = statuses.get(status, 0) + 1
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Replay callback events?",
        "opts": opts,
        "count": count,
        "statuses": sorted(statuses.items()),
        "listed": events[:LISTED],
        "more": max(count - LISTED, 0),
        "selected_ids": list(queryset.values_list("pk", flat=True)),
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "action_name": "replay_selected",
        "media": modeladmin.media,
    }
    return TemplateResponse(
        request,
        [
            f"admin/{opts.app_label}/{opts.model_name}/replay_confirmation.html",
            f"admin/{opts.app_label}/replay_confirmation.html",
        ],
        context,
    )
