"""Reconcile runs, read-only: what each ``openim_reconcile`` run read and changed."""

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.utils.html import format_html, format_html_join

from openim_sync.models import ReconcileRun, RunStatus

from . import display
from .mixins import ReadOnlyAdminMixin, pretty_json

#: Count columns in this order first; any other key a run records follows.
COUNT_KEYS = ("read", "changed", "removed", "failed")


def count_columns(counts):
    keys = []
    for value in counts.values():
        if isinstance(value, dict):
            keys.extend(k for k in value if k not in keys)
    return [k for k in COUNT_KEYS if k in keys] + [k for k in keys if k not in COUNT_KEYS]


def per_kind(counts):
    """``{kind: {read: n, ...}}`` (or flat ``{read: n, ...}``) as ``(columns, rows)``."""
    if not isinstance(counts, dict) or not counts:
        return [], []
    if not any(isinstance(value, dict) for value in counts.values()):
        counts = {"all": counts}
    columns = count_columns(counts)
    rows = [
        (kind, [value.get(column, 0) if isinstance(value, dict) else "" for column in columns])
        for kind, value in counts.items()
    ]
    return columns, rows


def run_status_badge(value):
    label = RunStatus(value).label if value in RunStatus.values else value
    return format_html('<span class="oims-status oims-run-{}">{}</span>', value, label)


@admin.register(ReconcileRun)
class ReconcileRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "protocol",
        "status_display",
        "started_at",
        "finished_at",
        "duration",
        "counts_summary",
    )
    list_filter = ("status", "protocol", "dry_run", "started_at")
    list_per_page = 50
    show_full_result_count = False
    actions = []
    fieldsets = (
        (
            "Run",
            {
                "fields": (
                    ("id", "protocol", "dry_run"),
                    "status_display",
                    ("started_full", "finished_full", "duration"),
                )
            },
        ),
        ("What it synced", {"fields": ("scope_display", "options_display")}),
        ("Counts", {"fields": ("counts_table",)}),
        ("Errors", {"fields": ("errors_display",)}),
        ("Resuming", {"fields": ("resume_state_display",), "classes": ["collapse"]}),
    )
    readonly_fields = flatten_fieldsets(fieldsets)

    @admin.display(description="status", ordering="status")
    def status_display(self, obj):
        return run_status_badge(obj.status)

    @admin.display(description="duration")
    def duration(self, obj):
        return display.duration(obj.started_at, obj.finished_at)

    @admin.display(description="started")
    def started_full(self, obj):
        return display.when(obj.started_at)

    @admin.display(description="finished")
    def finished_full(self, obj):
        return display.when(obj.finished_at)

    @admin.display(description="counts")
    def counts_summary(self, obj):
        columns, rows = per_kind(obj.counts)
        if not rows:
            return "—"
        parts = []
        for kind, values in rows:
            shown = ", ".join(
                f"{value} {column}" for column, value in zip(columns, values, strict=True) if value
            )
            parts.append(format_html("<strong>{}</strong>: {}", kind, shown or "nothing"))
        return format_html_join("; ", "{}", ((part,) for part in parts))

    @admin.display(description="counts per kind")
    def counts_table(self, obj):
        columns, rows = per_kind(obj.counts)
        if not rows:
            return "—"
        head = format_html_join("", "<th>{}</th>", ((c,) for c in columns))
        body = format_html_join(
            "",
            "<tr><th>{}</th>{}</tr>",
            (
                (kind, format_html_join("", "<td>{}</td>", ((v,) for v in values)))
                for kind, values in rows
            ),
        )
        return format_html(
            '<table class="oims-table oims-counts"><thead><tr><th>kind</th>{}</tr></thead>'
            "<tbody>{}</tbody></table>",
            head,
            body,
        )

    @admin.display(description="scope")
    def scope_display(self, obj):
        if isinstance(obj.scope, list):
            return ", ".join(str(kind) for kind in obj.scope) or "—"
        return pretty_json(obj.scope)

    @admin.display(description="options")
    def options_display(self, obj):
        return pretty_json(obj.options)

    @admin.display(description="errors")
    def errors_display(self, obj):
        errors = obj.errors or []
        if not errors:
            return "None."
        items = format_html_join(
            "",
            "<li>{}</li>",
            ((error if isinstance(error, str) else pretty_json(error),) for error in errors[:200]),
        )
        more = f"… and {len(errors) - 200} more." if len(errors) > 200 else ""
        return format_html('<ol class="oims-errors">{}</ol>{}', items, more)

    @admin.display(description="resume state")
    def resume_state_display(self, obj):
        return pretty_json(obj.resume_state)
