"""Admin actions on callback events. Each confirms before acting, records itself in the admin
history and reports what happened, one message per outcome at its level."""

from collections import Counter

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse

from openim_sync import replay
from openim_sync.exceptions import DatabaseUnavailable
from openim_sync.models import EventStatus

from .mixins import admin_url

#: More than this is a job for ``manage.py openim_replay`` (a web request should stay short).
MAX_REPLAY = 1000
LISTED = 100
#: Event ids named in a message at most.
NAMED = 20
#: What replaying an event of each status does, for the confirmation page.
WHAT_HAPPENS = {
    EventStatus.RECEIVED: "processed now (they wait for a worker, or one stopped)",
    EventStatus.FAILED: "applied again: processed if the cause (database, code) is fixed",
    EventStatus.PROCESSED: (
        "applied again: nothing changes where the mirror already holds their state (same "
        "version); useful after a handler was fixed"
    ),
    EventStatus.IGNORED: "looked up again: still ignored unless the command is now handled",
    EventStatus.REJECTED: (
        "validated again: rejected again unless the code changed (the payload does not)"
    ),
}


def _ids(pks):
    shown = ", ".join(f"#{pk}" for pk in pks[:NAMED])
    return shown + (f" and {len(pks) - NAMED} more" if len(pks) > NAMED else "")


def _report(modeladmin, request, outcomes, report, skipped):
    """One message per outcome: success for processed, warning for rejected and ignored,
    error for failed; info for rejected events left out."""
    by_status = {}
    for pk, status in outcomes.items():
        by_status.setdefault(status, []).append(pk)
    processed = by_status.get(EventStatus.PROCESSED, [])
    if processed:
        modeladmin.message_user(
            request,
            f"{len(processed)} event(s) replayed and processed; "
            f"{report.rows_written} mirror row(s) written.",
            messages.SUCCESS,
        )
    rejected = by_status.get(EventStatus.REJECTED, [])
    if rejected:
        modeladmin.message_user(
            request,
            f"{len(rejected)} event(s) rejected again: {_ids(rejected)}. The same code rejects "
            "the same payload; see each event's reason.",
            messages.WARNING,
        )
    ignored = by_status.get(EventStatus.IGNORED, [])
    if ignored:
        modeladmin.message_user(
            request,
            f"{len(ignored)} event(s) ignored: {_ids(ignored)}. Their commands are stored "
            "without being applied.",
            messages.WARNING,
        )
    failed = by_status.get(EventStatus.FAILED, [])
    if failed:
        modeladmin.message_user(
            request,
            f"{len(failed)} event(s) failed again: {_ids(failed)}. Still failing; see each "
            "event's reason and traceback.",
            messages.ERROR,
        )
    if skipped:
        modeladmin.message_user(
            request,
            f'{skipped} rejected event(s) skipped (tick "replay rejected events too" to '
            "replay them).",
            messages.INFO,
        )
    if not outcomes and not skipped:
        modeladmin.message_user(request, "Nothing was replayed.", messages.INFO)


def _log(request, events, before, outcomes):
    """One admin history entry per replayed event: "Replayed from admin: failed → processed."."""
    groups = {}
    for event in events:
        change = (before.get(event.pk, "?"), outcomes[event.pk])
        groups.setdefault(change, []).append(event)
    for (was, now), group in groups.items():
        LogEntry.objects.log_actions(
            user_id=request.user.pk,
            queryset=group,
            action_flag=CHANGE,
            change_message=f"Replayed from admin: {was} → {now}.",
        )


@admin.action(description="Replay selected events", permissions=["replay"])
def replay_selected(modeladmin, request, queryset):
    opts = modeladmin.model._meta
    statuses = Counter(
        {
            row["status"]: row["n"]
            for row in queryset.order_by().values("status").annotate(n=Count("id"))
        }
    )
    count = sum(statuses.values())
    if count > MAX_REPLAY:
        modeladmin.message_user(
            request,
            f"{count} events selected: the admin replays at most {MAX_REPLAY} at a time. Narrow "
            "the selection, or run `manage.py openim_replay` (e.g. --from-id/--to-id, --status, "
            "--command).",
            messages.ERROR,
        )
        return None
    single = count == 1 and request.POST.get("return_to") == "change"

    if request.POST.get("post") == "yes":
        include_rejected = request.POST.get("include_rejected") == "1"
        selection = queryset if include_rejected else queryset.exclude(status=EventStatus.REJECTED)
        skipped = 0 if include_rejected else statuses.get(EventStatus.REJECTED, 0)
        before = dict(selection.values_list("pk", "status"))
        outcomes, events = {}, []

        def on_outcome(event, outcome):
            outcomes[event.pk] = outcome.status
            events.append(event)

        try:
            # The list view defers the body; the replay reads it.
            report = replay.replay(selection.defer(None), on_outcome=on_outcome)
        except DatabaseUnavailable as exc:
            modeladmin.message_user(request, f"Replay stopped: {exc}", messages.ERROR)
            report = None
        if events:
            _log(request, events, before, outcomes)
        if report is not None:
            _report(modeladmin, request, outcomes, report, skipped)
        if single:
            pk = next(iter(before), None) or queryset.values_list("pk", flat=True).first()
            return HttpResponseRedirect(admin_url(modeladmin.model, "change", pk))
        return None  # back to the change list

    events = queryset.order_by("pk").defer("body", "payload", "headers", "query", "traceback")
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Replay callback events?",
        "opts": opts,
        "count": count,
        "statuses": [
            (status, n, WHAT_HAPPENS.get(status, "")) for status, n in sorted(statuses.items())
        ],
        "rejected": statuses.get(EventStatus.REJECTED, 0),
        "replayed_by_default": count - statuses.get(EventStatus.REJECTED, 0),
        "listed": events[:LISTED],
        "more": max(count - LISTED, 0),
        "selected_ids": list(queryset.values_list("pk", flat=True)),
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "action_name": "replay_selected",
        "return_to": "change" if single else "",
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
