"""Change list filters: exact ids (shown when set, so a cross-link says what it filters by),
present rows by default, presence, protocol, and commands grouped by area."""

import re

from django.contrib import admin
from django.db.models import Q
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from openim_sync.callbacks import registry
from openim_sync.models import OnlineSession, Protocol

#: A filter choice's label with its facet count: ``value (12)``.
FACET = re.compile(r"^(.*?)( \(\d+\))?$", re.DOTALL)


class ExactFilter(admin.SimpleListFilter):
    """``?<field>=<value>``: an exact match on an (indexed) id column. Listed in the sidebar only
    while set, with "All" to clear it. Subclass with :func:`exact_filter`."""

    field_name = ""

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, value)] if value else []

    def queryset(self, request, queryset):
        value = self.value()
        if value:
            return queryset.filter(**{self.field_name: value})
        return queryset


def exact_filter(field_name, title, parameter_name=None):
    return type(
        f"ExactFilter_{parameter_name or field_name}",
        (ExactFilter,),
        {"field_name": field_name, "title": title, "parameter_name": parameter_name or field_name},
    )


class RemovedFilter(admin.SimpleListFilter):
    """Present rows by default: a tombstone (a row the IM server removed) shows only on request."""

    title = "removed rows"
    parameter_name = "state"
    DEFAULT = "present"
    CHOICES = (
        ("present", "Hidden (present rows only)"),
        ("removed", "Removed rows only"),
        ("all", "Shown (all rows)"),
    )

    def lookups(self, request, model_admin):
        return self.CHOICES

    def value(self):
        value = super().value()
        return value if value in dict(self.CHOICES) else self.DEFAULT

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value()
        if value == "present":
            return queryset.filter(removed_at__isnull=True)
        if value == "removed":
            return queryset.filter(removed_at__isnull=False)
        return queryset


class OnlineFilter(admin.SimpleListFilter):
    title = "presence"
    parameter_name = "presence"

    def lookups(self, request, model_admin):
        return [
            ("online", "Online now"),
            ("expired", "Expired (reported online, not refreshed)"),
            ("offline", "Offline or expired"),
        ]

    def queryset(self, request, queryset):
        online = OnlineSession.objects.online().values("pk")
        if self.value() == "online":
            return queryset.filter(pk__in=online)
        if self.value() == "expired":
            return queryset.filter(online=True).exclude(pk__in=online)
        if self.value() == "offline":
            return queryset.exclude(pk__in=online)
        return queryset


class MirrorProtocolFilter(admin.SimpleListFilter):
    """A mirror row's protocol: that of the event (or reconcile run) that last changed it."""

    title = "protocol"
    parameter_name = "protocol"

    def lookups(self, request, model_admin):
        return Protocol.choices

    def queryset(self, request, queryset):
        value = self.value()
        if value:
            return queryset.filter(
                Q(last_event__protocol=value) | Q(last_event__isnull=True, last_run__protocol=value)
            )
        return queryset


class ChoicesFilter(admin.SimpleListFilter):
    """An exact filter on a coded column, its choices by name (``role_level``: Owner...)."""

    field_name = ""
    names = {}

    def lookups(self, request, model_admin):
        return [(str(code), name) for code, name in self.names.items()]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        try:
            return queryset.filter(**{self.field_name: int(value)})
        except ValueError:
            return queryset.none()


def choices_filter(field_name, title, names):
    return type(
        f"ChoicesFilter_{field_name}",
        (ChoicesFilter,),
        {"field_name": field_name, "title": title, "parameter_name": field_name, "names": names},
    )


class NamedValuesFilter(admin.AllValuesFieldListFilter):
    """The column's distinct values (Django's default filter), each shown by its name
    (``Gender_Type_Female`` → ``Female``, OpenIM group type ``2`` → ``Working group``)."""

    naming = staticmethod(lambda value: value)

    def choices(self, changelist):
        for choice in super().choices(changelist):
            display = str(choice["display"])
            value, count = FACET.match(display).groups()
            if value:
                choice["display"] = f"{self.naming(value)}{count or ''}"
            yield choice


def named_values_filter(naming):
    return type("NamedValuesFilter", (NamedValuesFilter,), {"naming": staticmethod(naming)})


# -- commands, by area ----------------------------------------------------------------------

AREAS = {
    "users": "Users",
    "groups": "Groups",
    "members": "Group members",
    "friends": "Friends and blocks",
    "presence": "Presence",
    "ignored": "Stored, not applied",
}


def area_of(spec):
    if spec.ignored:
        return "ignored"
    area = spec.handler.__module__.rsplit(".", 1)[-1]
    return area if area in AREAS else "ignored"


def commands_by_area(protocol=None):
    """``{area: [command, ...]}`` of the registered commands (of ``protocol``), in AREAS order."""
    grouped = {area: [] for area in AREAS}
    for spec in registry.commands(protocol):
        grouped[area_of(spec)].append(spec.name)
    return {area: sorted(set(names)) for area, names in grouped.items() if names}


def breakable(text):
    """``text`` with a word-break opportunity before each capital and after each dot, so that a
    long command wraps between its words instead of mid-word."""
    parts, start = [], 0
    for index, char in enumerate(text):
        previous = text[index - 1] if index else ""
        if index and ((char.isupper() and previous.islower()) or previous == "."):
            parts.append(text[start:index])
            start = index
    parts.append(text[start:])
    return format_html_join(mark_safe("<wbr>"), "{}", ((part,) for part in parts))


def short_command(command):
    """``callbackAfterUpdateUserInfoCommand`` → ``AfterUpdateUserInfo``;
    ``Group.CallbackAfterNewMemberJoin`` → ``Group.AfterNewMemberJoin``."""
    prefix, dot, name = command.rpartition(".")
    for head in ("callback", "Callback"):
        if name.startswith(head) and len(name) > len(head):
            name = name[len(head) :]
    if name.endswith("Command") and len(name) > len("Command"):
        name = name[: -len("Command")]
    return f"{prefix}{dot}{name}"


class AreaFilter(admin.SimpleListFilter):
    title = "area"
    parameter_name = "area"

    def lookups(self, request, model_admin):
        return list(AREAS.items())

    def queryset(self, request, queryset):
        value = self.value()
        if value not in AREAS:
            return queryset
        names = commands_by_area().get(value, [])
        return queryset.filter(command__in=names)


class CommandFilter(admin.SimpleListFilter):
    """Every registered command, grouped by area (collapsed groups; the open one holds the
    selected command), limited to the selected protocol. ``?command=`` also takes a command the
    registry does not know (stored as ignored)."""

    title = "command"
    parameter_name = "command"
    template = "admin/openim_sync/filter_commands.html"

    def lookups(self, request, model_admin):
        protocol = request.GET.get("protocol__exact") or None
        self.groups = commands_by_area(protocol if protocol in Protocol.values else None)
        value = self.value()
        names = [name for group in self.groups.values() for name in group]
        if value and value not in names:
            self.groups = {"other": [value], **self.groups}
            names.insert(0, value)
        # Aliases differing only in case or suffix (callbackAfterSetGroupMemberInfo and
        # ...Command) keep their full names, so that no two choices read the same.
        shorts = [short_command(name) for name in names]
        self.labels = {
            name: breakable(short if shorts.count(short) == 1 else name)
            for name, short in zip(names, shorts, strict=True)
        }
        return [(name, self.labels[name]) for name in names]

    def queryset(self, request, queryset):
        value = self.value()
        if value:
            return queryset.filter(command=value)
        return queryset

    def choices(self, changelist):
        value = self.value()
        yield {
            "selected": value is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "All",
            "group": None,
        }
        for area, names in self.groups.items():
            for name in names:
                yield {
                    "selected": value == name,
                    "query_string": changelist.get_query_string({self.parameter_name: name}),
                    "display": self.labels[name],
                    "title": name,
                    "group": AREAS.get(area, "Other"),
                }
