"""How values read: times as dates with the raw number beside, codes by name, versions as a table."""

from datetime import UTC, datetime

from django.utils import timezone
from django.utils.html import format_html, format_html_join

from openim_sync.callbacks.fields import OPENIM_PLATFORMS

from .mixins import ago_text, event_link

#: A version (or an ``*_ms`` field) in this range is a time in milliseconds (1973 to 5138); below
#: it, a sequence number (OpenIM's ``seq``) or a small counter.
MS_RANGE = (10**11, 10**14)

ROLES = {20: "Member", 60: "Administrator", 100: "Owner"}
#: OpenIM group status (constant.GroupOk, GroupBanChat, GroupStatusDismissed, GroupStatusMuted).
GROUP_STATUSES = {0: "Normal", 1: "Banned", 2: "Dismissed", 3: "Muted"}
#: OpenIM groupType (Tencent names its types, stored as they are).
GROUP_TYPES = {"0": "Normal", "1": "Super group", "2": "Working group"}
#: OpenIM needVerification.
VERIFICATION = {
    0: "Invited join directly, applications need approval",
    1: "Everyone needs approval",
    2: "Anyone joins directly",
}
ALLOWED = {0: "Allowed", 1: "Not allowed"}
JOIN_SOURCES = {2: "Invited", 3: "Searched", 4: "QR code"}
RECV_MSG_OPTS = {0: "Receive and notify", 1: "Do not receive", 2: "Receive, no notification"}
#: Tencent tag value prefixes dropped for display (the stored value is shown beside).
TENCENT_PREFIXES = ("Gender_Type_", "AllowType_Type_", "AdminForbid_Type_")


def named(value, names):
    """``Owner (100)``: a code's name with the stored value beside; the value alone when the code
    has no name, "—" when empty."""
    if value is None or value == "":
        return "—"
    name = names.get(value)
    if name is None:
        return str(value)
    return format_html('{} <span class="oims-raw">{}</span>', name, value)


def role(value):
    return named(value, ROLES)


def platform_id(value):
    return named(value, OPENIM_PLATFORMS)


def tag_name(value):
    """``Gender_Type_Female`` → ``Female`` (other values unchanged)."""
    for prefix in TENCENT_PREFIXES:
        if value and value.startswith(prefix):
            return value[len(prefix) :]
    return value


def tencent_tag(value):
    if not value:
        return "—"
    name = tag_name(value)
    if name == value:
        return value
    return format_html('{} <span class="oims-raw">{}</span>', name, value)


def is_ms(value):
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and MS_RANGE[0] <= value < MS_RANGE[1]
    )


def ms_datetime(value):
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def when(value, *, raw=None, ago=True):
    """A datetime as ``2024-05-01 12:03:04 UTC`` (the current time zone), with how long ago and
    ``raw`` (the stored number) beside."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    if local.microsecond:
        text += f".{local.microsecond // 1000:03d}"
    text += f" {local.tzname() or ''}".rstrip()
    parts = [format_html('<time datetime="{}">{}</time>', value.isoformat(), text)]
    if ago:
        parts.append(format_html('<span class="oims-ago">{}</span>', ago_text(value)))
    if raw is not None:
        parts.append(format_html('<span class="oims-raw">{}</span>', raw))
    return format_html_join(" ", "{}", ((part,) for part in parts))


def epoch_ms(value):
    """An ``*_ms`` field: the date, with the milliseconds beside."""
    if value is None:
        return "—"
    if not is_ms(value):
        return str(value)
    return when(ms_datetime(value), raw=value, ago=False)


def version(value):
    """A row or field version: a time in ms (event time or receipt time) or a sequence number."""
    if value is None:
        return "—"
    if is_ms(value):
        return when(ms_datetime(value), raw=value, ago=False)
    return f"seq {value}"


def versions_table(versions):
    """``versions`` (``{field: [version, event id]}``) as a table: field, version, written by."""
    if not versions:
        return "—"
    names = sorted(versions, key=lambda name: (name != "present", name))
    rows = []
    for name in names:
        entry = versions[name]
        try:
            stamp, event_id = entry[0], entry[1]
        except (TypeError, IndexError, KeyError):
            rows.append((name, str(entry), "—"))
            continue
        writer = event_link(event_id) if event_id else "a reconcile run"
        rows.append((name, version(stamp), writer))
    body = format_html_join("", "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>", rows)
    return format_html(
        '<table class="oims-table oims-versions"><thead><tr><th>field</th><th>version</th>'
        "<th>written by</th></tr></thead><tbody>{}</tbody></table>",
        body,
    )


def duration(start, end):
    if start is None or end is None:
        return "—"
    seconds = (end - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
