"""The sync status page (``<admin>/openim_sync/callbackevent/status/``) and its JSON twin: is the
sync healthy right now?

Five queries whatever the table holds, each bounded by time on the ``received_at`` index or by
status on the ``(status, id)`` index: the last 24 h grouped by protocol, status and command; the
last 3 h per minute and status; the newest failures and rejections; the deferred backlog; the
newest reconcile run.
"""

import base64
import binascii
from datetime import timedelta

from django.contrib.auth import authenticate
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Min
from django.db.models.functions import Trunc
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince
from django.views.decorators.cache import never_cache

from openim_sync.models import CallbackEvent, EventStatus, Protocol, ReconcileRun, RunStatus
from openim_sync.replay import STALE_RECEIVED_MINUTES

from .mixins import admin_url, changelist_url

CHART_MINUTES = 180
DAY = timedelta(hours=24)
HOUR = timedelta(hours=1)
RECENT_FAILURES = 10
#: Stacking order (bottom first) and colours of the chart's bars.
CHART_STATUSES = (
    (EventStatus.PROCESSED, "#5b9a68"),
    (EventStatus.IGNORED, "#9bbf9f"),
    (EventStatus.RECEIVED, "#8c9bab"),
    (EventStatus.REJECTED, "#d9a400"),
    (EventStatus.FAILED, "#ba2121"),
)
STATUS_ORDER = [status for status, _ in CHART_STATUSES]


def url(site_name="admin"):
    return reverse(f"{site_name}:openim_sync_status")


def json_url(site_name="admin"):
    return reverse(f"{site_name}:openim_sync_status_json")


def _since_param(moment):
    return moment.replace(microsecond=0).isoformat()


def events_url(since=None, **filters):
    """The event list filtered by ``filters`` and received at or after ``since``."""
    if since is not None:
        filters["received_at__gte"] = _since_param(since)
    return changelist_url(CallbackEvent, **filters)


def figures(now=None):
    """Everything the page and the JSON show, as plain data (datetimes, numbers, URLs)."""
    now = now or timezone.now()
    day_ago = now - DAY
    hour_ago = now - HOUR
    first_minute = now.replace(second=0, microsecond=0) - timedelta(minutes=CHART_MINUTES - 1)
    events = CallbackEvent.objects.order_by()

    # 1. The last 24 h by protocol, status and command (a few hundred groups at most).
    groups = list(
        events.filter(received_at__gte=day_ago)
        .values("protocol", "status", "command")
        .annotate(count=Count("id"), last_id=Max("id"), last_at=Max("received_at"))
    )
    by_status = dict.fromkeys(STATUS_ORDER, 0)
    newest = {protocol: None for protocol in Protocol.values}
    problems_by_command = {}
    for group in groups:
        by_status[group["status"]] = by_status.get(group["status"], 0) + group["count"]
        current = newest.get(group["protocol"])
        if current is None or group["last_id"] > current["id"]:
            newest[group["protocol"]] = {"id": group["last_id"], "received_at": group["last_at"]}
        if group["status"] in (EventStatus.FAILED, EventStatus.REJECTED):
            key = (group["status"], group["command"])
            problems_by_command[key] = problems_by_command.get(key, 0) + group["count"]

    # 2. Deliveries per minute over the last 3 h, by status.
    minutes = {
        first_minute + timedelta(minutes=index): dict.fromkeys(STATUS_ORDER, 0)
        for index in range(CHART_MINUTES)
    }
    per_minute_rows = (
        events.filter(received_at__gte=first_minute)
        .annotate(minute=Trunc("received_at", "minute"))
        .values("minute", "status")
        .annotate(count=Count("id"))
    )
    for row in per_minute_rows:
        minute = row["minute"]
        if minute in minutes:
            minutes[minute][row["status"]] = minutes[minute].get(row["status"], 0) + row["count"]
    per_minute = [
        {"minute": minute, "total": sum(counts.values()), "by_status": counts}
        for minute, counts in minutes.items()
    ]
    last_hour = dict.fromkeys(STATUS_ORDER, 0)
    for entry in per_minute:
        if entry["minute"] >= hour_ago.replace(second=0, microsecond=0):
            for status, count in entry["by_status"].items():
                last_hour[status] += count

    # 3. The newest failures and rejections of the last 24 h.
    recent = [
        {
            "id": event.pk,
            "status": event.status,
            "protocol": event.protocol,
            "command": event.command,
            "reason": event.reason[:300],
            "received_at": event.received_at,
            "url": admin_url(CallbackEvent, "change", event.pk),
        }
        for event in events.filter(
            received_at__gte=day_ago, status__in=[EventStatus.FAILED, EventStatus.REJECTED]
        )
        .order_by("-id")
        .only("id", "status", "protocol", "command", "reason", "received_at")[:RECENT_FAILURES]
    ]

    # 4. The deferred backlog: events stored as received and not yet processed.
    backlog = events.filter(status=EventStatus.RECEIVED).aggregate(
        count=Count("id"), oldest=Min("received_at")
    )
    oldest = backlog["oldest"]
    backlog_figures = {
        "count": backlog["count"],
        "oldest_received_at": oldest,
        "oldest_age_seconds": int((now - oldest).total_seconds()) if oldest else None,
        "url": events_url(status__exact=EventStatus.RECEIVED),
    }

    # 5. The newest reconcile run.
    run = ReconcileRun.objects.order_by("-id").first()
    run_figures = None
    if run is not None:
        run_figures = {
            "id": run.pk,
            "protocol": run.protocol,
            "status": run.status,
            "dry_run": run.dry_run,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "counts": run.counts,
            "errors": len(run.errors or []),
            "url": admin_url(ReconcileRun, "change", run.pk),
        }

    for protocol, entry in newest.items():
        if entry is not None:
            entry["age_seconds"] = int((now - entry["received_at"]).total_seconds())
            entry["url"] = admin_url(CallbackEvent, "change", entry["id"])
            entry["list_url"] = events_url(protocol__exact=protocol)

    result = {
        "generated_at": now,
        "last_24h": {
            "since": day_ago,
            "total": sum(by_status.values()),
            "by_status": by_status,
            "urls": {s: events_url(day_ago, status__exact=s) for s in STATUS_ORDER},
        },
        "last_hour": {"since": hour_ago, "total": sum(last_hour.values()), "by_status": last_hour},
        "failures_24h": [
            {
                "status": status,
                "command": command,
                "count": count,
                "url": events_url(day_ago, status__exact=status, command=command),
            }
            for (status, command), count in sorted(
                problems_by_command.items(), key=lambda item: (-item[1], item[0])
            )
        ],
        "recent_failures": recent,
        "backlog": backlog_figures,
        "newest_per_protocol": newest,
        "last_reconcile_run": run_figures,
        "per_minute": per_minute,
    }
    result["health"] = health(result)
    return result


def health(data):
    """``{"status": healthy|warning|problem, "problems": [...], "warnings": [...]}``."""
    problems, warnings = [], []
    hour = data["last_hour"]["by_status"]
    if hour[EventStatus.FAILED]:
        problems.append(
            f"{hour[EventStatus.FAILED]} deliveries failed in the last hour (database or code "
            "errors): look at their tracebacks, fix the cause, then replay them."
        )
    backlog = data["backlog"]
    age = backlog["oldest_age_seconds"]
    if age is not None and age > STALE_RECEIVED_MINUTES * 60:
        problems.append(
            f"{backlog['count']} deliveries wait to be processed, the oldest for "
            f"{timesince(backlog['oldest_received_at'], data['generated_at'], depth=1)}: "
            "is openim_worker running?"
        )
    if hour[EventStatus.REJECTED]:
        warnings.append(
            f"{hour[EventStatus.REJECTED]} deliveries were rejected in the last hour (bad "
            "payloads, unknown application): a server misconfiguration or a new server version."
        )
    if not data["last_hour"]["total"]:
        warnings.append(
            "No delivery in the last hour: is the IM server sending its callbacks here?"
        )
    run = data["last_reconcile_run"]
    if run is not None and run["status"] in (RunStatus.FAILED, RunStatus.INTERRUPTED):
        warnings.append(f"The last reconcile run (#{run['id']}) {run['status']}.")
    status = "problem" if problems else "warning" if warnings else "healthy"
    return {"status": status, "problems": problems, "warnings": warnings}


# -- the chart ------------------------------------------------------------------------------

CHART = {"width": 960, "height": 210, "left": 44, "right": 8, "top": 12, "bottom": 28}


def chart_svg(per_minute):
    """Deliveries per minute as stacked bars (one per minute, statuses stacked), drawn here:
    an inline SVG, no script."""
    width, height = CHART["width"], CHART["height"]
    left, top = CHART["left"], CHART["top"]
    plot_width = width - left - CHART["right"]
    plot_height = height - top - CHART["bottom"]
    bottom = top + plot_height
    peak = max((entry["total"] for entry in per_minute), default=0)
    scale_max = max(peak, 1)
    slot = plot_width / max(len(per_minute), 1)
    bar = max(slot - 1, 1)

    shapes = []
    for index, entry in enumerate(per_minute):
        if not entry["total"]:
            continue
        x = left + index * slot
        y = bottom
        rects = []
        for status, colour in CHART_STATUSES:
            count = entry["by_status"].get(status, 0)
            if not count:
                continue
            h = count / scale_max * plot_height
            y -= h
            rects.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"></rect>',
                    f"{x:.1f}",
                    f"{y:.1f}",
                    f"{bar:.1f}",
                    f"{h:.1f}",
                    colour,
                )
            )
        minute = timezone.localtime(entry["minute"]).strftime("%H:%M")
        detail = ", ".join(
            f"{entry['by_status'][s]} {s}" for s in STATUS_ORDER if entry["by_status"].get(s)
        )
        shapes.append(
            format_html(
                '<g class="oims-bar"><title>{}: {} deliver{} ({})</title>{}</g>',
                minute,
                entry["total"],
                "y" if entry["total"] == 1 else "ies",
                detail,
                format_html_join("", "{}", ((rect,) for rect in rects)),
            )
        )

    axis = [
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-width="1"></line>',
            left,
            bottom,
            left + plot_width,
            bottom,
        ),
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd" stroke-width="1" '
            'stroke-dasharray="3 3"></line>',
            left,
            top,
            left + plot_width,
            top,
        ),
        format_html(
            '<text x="{}" y="{}" text-anchor="end" font-size="11" fill="#666">{}</text>',
            left - 6,
            top + 4,
            peak,
        ),
        format_html(
            '<text x="{}" y="{}" text-anchor="end" font-size="11" fill="#666">0</text>',
            left - 6,
            bottom + 4,
        ),
    ]
    for index, entry in enumerate(per_minute):
        local = timezone.localtime(entry["minute"])
        if local.minute % 30 == 0:
            x = left + index * slot
            axis.append(
                format_html(
                    '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-width="1">'
                    "</line>"
                    '<text x="{}" y="{}" text-anchor="middle" font-size="11" fill="#666">{}'
                    "</text>",
                    f"{x:.1f}",
                    bottom,
                    f"{x:.1f}",
                    bottom + 4,
                    f"{x:.1f}",
                    bottom + 17,
                    local.strftime("%H:%M"),
                )
            )
    total = sum(entry["total"] for entry in per_minute)
    label = (
        f"Deliveries per minute over the last {len(per_minute) // 60} hours: {total} in all, "
        f"at most {peak} in a minute."
    )
    return format_html(
        '<svg class="oims-chart" viewBox="0 0 {} {}" width="100%" role="img" '
        'aria-label="{}" xmlns="http://www.w3.org/2000/svg">{}{}</svg>',
        width,
        height,
        label,
        format_html_join("", "{}", ((item,) for item in axis)),
        format_html_join("", "{}", ((item,) for item in shapes)),
    )


# -- the views ------------------------------------------------------------------------------


class StatusViews:
    """The page and the JSON, bound to the event ModelAdmin (its site, its view permission)."""

    def __init__(self, model_admin):
        self.model_admin = model_admin
        self.site = model_admin.admin_site
        self.page = self.site.admin_view(self._page)
        self.json = never_cache(self._json)

    def _allowed(self, request):
        user = request.user
        return user.is_active and user.is_staff and self.model_admin.has_view_permission(request)

    def _page(self, request):
        if not self._allowed(request):
            raise PermissionDenied
        data = figures()
        context = {
            **self.site.each_context(request),
            "title": "Sync status",
            "subtitle": None,
            "opts": CallbackEvent._meta,
            "app_label": CallbackEvent._meta.app_label,
            "figures": data,
            "chart": chart_svg(data["per_minute"]),
            "statuses": [
                (
                    status,
                    EventStatus(status).label,
                    data["last_24h"]["by_status"][status],
                    data["last_24h"]["urls"][status],
                    data["last_hour"]["by_status"][status],
                )
                for status in STATUS_ORDER
            ],
            "protocols": [
                (Protocol(protocol).label, entry, events_url(protocol__exact=protocol))
                for protocol, entry in data["newest_per_protocol"].items()
            ],
            "legend": [(s, EventStatus(s).label) for s, _ in CHART_STATUSES],
            "json_url": json_url(self.site.name),
            "stale_minutes": STALE_RECEIVED_MINUTES,
            "media": self.model_admin.media,
        }
        return TemplateResponse(request, "admin/openim_sync/status.html", context)

    def _json(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header[:6].lower() == "basic ":
            user = _basic_auth_user(request, header[6:])
            if user is None:
                response = JsonResponse({"detail": "Invalid username or password."}, status=401)
                response["WWW-Authenticate"] = 'Basic realm="openim-sync status"'
                return response
            request.user = user
        elif not (request.user.is_active and request.user.is_staff):
            login = reverse(f"{self.site.name}:login")
            return redirect_to_login(request.get_full_path(), login)
        if not self._allowed(request):
            return JsonResponse(
                {"detail": "Needs a staff user with the view permission on callback events."},
                status=403,
            )
        return JsonResponse(figures())


def _basic_auth_user(request, encoded):
    try:
        username, _, password = (
            base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        return None
    return authenticate(request, username=username, password=password)
