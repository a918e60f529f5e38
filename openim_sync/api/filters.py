"""Query-string filters, declared per view as :class:`Param` lists and documented in the schema.

``?user=u1&group=g1`` narrow by natural ids (exact match), ``?present=true|false`` keeps live rows
or tombstones, ``?online=true`` keeps sessions online now (``OnlineSession.objects.online()``),
``?updated_since=2026-12-01T00:00:00Z`` keeps rows changed at or after that time. Every filter
narrows one indexed column; an invalid value is a 400 naming the parameter.
"""

from dataclasses import dataclass
from typing import Any

from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.filters import BaseFilterBackend

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def boolean(name, value):
    value = value.lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValidationError({name: f"{value!r} is not a boolean (use true or false)."})


def timestamp(name, value):
    parsed = parse_datetime(value)
    if parsed is None:
        raise ValidationError({name: f"{value!r} is not an ISO 8601 date-time."})
    if parsed.tzinfo is None:
        raise ValidationError({name: "give a time zone, e.g. 2026-12-01T00:00:00Z."})
    return parsed


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    #: ``lookup`` (a field lookup such as "user_id" or "updated_at__gte") or ``apply(qs, value)``.
    lookup: str | None = None
    apply: Any = None
    type: Any = OpenApiTypes.STR
    parse: Any = None
    enum: tuple = ()

    def filter(self, queryset, raw):
        value = self.parse(self.name, raw) if self.parse else raw
        if self.enum and value not in self.enum:
            raise ValidationError({self.name: f"{raw!r} is not one of {', '.join(self.enum)}."})
        if self.apply is not None:
            return self.apply(queryset, value)
        return queryset.filter(**{self.lookup: value})

    def openapi(self):
        return OpenApiParameter(
            self.name,
            self.type,
            OpenApiParameter.QUERY,
            description=self.description,
            enum=list(self.enum) or None,
        )


def exact(name, field, what):
    return Param(name, f"Only {what} (exact match).", lookup=field)


def present_param():
    def apply(queryset, value):
        return queryset.present() if value else queryset.removed()

    return Param(
        "present",
        "true: only rows present on the IM server; false: only tombstones (quit, kicked, "
        "deleted, dismissed). Default: both.",
        apply=apply,
        type=OpenApiTypes.BOOL,
        parse=boolean,
    )


def updated_since_param():
    return Param(
        "updated_since",
        "Only rows changed at or after this ISO 8601 date-time (with a time zone).",
        lookup="updated_at__gte",
        type=OpenApiTypes.DATETIME,
        parse=timestamp,
    )


class ParamFilterBackend(BaseFilterBackend):
    """Applies the view's ``filter_params``; unknown query parameters are left alone."""

    def filter_queryset(self, request, queryset, view):
        for param in getattr(view, "filter_params", ()):
            raw = request.query_params.get(param.name)
            if raw not in (None, ""):
                queryset = param.filter(queryset, raw)
        return queryset

    def get_schema_operation_parameters(self, view):
        return []  # drf-spectacular reads the parameters from the views' extend_schema instead


def schema_parameters(params):
    return [param.openapi() for param in params]
