"""Serializer fields shared by the command serializers.

Strings are never trimmed (the IM server's value is the truth) and must be JSON strings; lengths
and integer ranges come from the model columns, so a value the column cannot hold is a clear 400,
never a database error.
"""

from django.db.backends.base.operations import BaseDatabaseOperations
from rest_framework import serializers

from openim_sync.models.mirror import ID_LENGTH

INTEGER_RANGES = BaseDatabaseOperations.integer_field_ranges
BIGINT_MIN, BIGINT_MAX = INTEGER_RANGES["BigIntegerField"]


def max_length(model, field_name):
    return model._meta.get_field(field_name).max_length


def column_range(model, field_name):
    """The integers ``model.field_name`` holds on every supported database (PostgreSQL's range:
    SQLite's columns would hold more)."""
    return INTEGER_RANGES[model._meta.get_field(field_name).get_internal_type()]


class StringField(serializers.CharField):
    """A CharField that takes only strings: DRF's also takes numbers (``12`` becomes ``"12"``)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def string(**kwargs):
    return StringField(trim_whitespace=False, **kwargs)


def im_id(**kwargs):
    """A required, non-empty user or group ID."""
    return string(max_length=ID_LENGTH, **kwargs)


def text(max_length=None, **kwargs):
    """A string that may be empty; ``null`` or absent means "unchanged"."""
    kwargs.setdefault("required", False)
    kwargs.setdefault("allow_null", True)
    return string(max_length=max_length, allow_blank=True, **kwargs)


def integer(model=None, field_name=None, **kwargs):
    """An integer that fits the column ``model.field_name`` (without one: a 64-bit column);
    ``null`` or absent means "unchanged"."""
    low, high = column_range(model, field_name) if model else (BIGINT_MIN, BIGINT_MAX)
    kwargs.setdefault("required", False)
    kwargs.setdefault("allow_null", True)
    kwargs.setdefault("min_value", low)
    kwargs.setdefault("max_value", high)
    return serializers.IntegerField(**kwargs)


def id_list(**kwargs):
    kwargs.setdefault("required", False)
    kwargs.setdefault("allow_null", True)
    return serializers.ListField(child=im_id(), **kwargs)


def many(serializer_class, **kwargs):
    """A list of objects. Unlike ``serializer_class(many=True, allow_null=True)``, which lets
    the items be null too, ``allow_null`` here is about the list only."""
    return serializers.ListSerializer(child=serializer_class(), **kwargs)


def event_time():
    """Tencent ``EventTime`` (ms): an integer, or a numeric string as in the group doc samples."""
    return serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=BIGINT_MAX
    )


def given(data, *names, blank_is_unchanged=False):
    """The entries of ``data`` that carry information: not absent, not null (nor "" if asked)."""
    values = {}
    for name in names:
        value = data.get(name)
        if value is None or (blank_is_unchanged and value == ""):
            continue
        values[name] = value
    return values


def renamed(values, mapping):
    return {mapping[name]: value for name, value in values.items()}


PLATFORM_NAMES = {
    name.lower(): name
    for name in (
        "iOS",
        "Android",
        "Windows",
        "macOS",
        "Web",
        "MiniWeb",
        "Linux",
        "APad",
        "iPad",
        "Admin",
        "HarmonyOS",
        "RESTAPI",
        "Unknown",
    )
}
PLATFORM_NAMES |= {"mac": "macOS", "osx": "macOS"}

#: OpenIM platform IDs (openimsdk/protocol constant/platform_id_to_name.go).
OPENIM_PLATFORMS = {
    1: "iOS",
    2: "Android",
    3: "Windows",
    4: "macOS",
    5: "Web",
    6: "MiniWeb",
    7: "Linux",
    8: "APad",
    9: "iPad",
    10: "Admin",
    11: "HarmonyOS",
}


def platform_name(name=None, platform_id=None):
    """One spelling per platform: OpenIM's ``IOS`` and Tencent's ``IOS``/``iOS`` are both ``iOS``."""
    if name:
        return PLATFORM_NAMES.get(name.lower(), name)
    return OPENIM_PLATFORMS.get(platform_id, "Unknown")


def query_value(ctx, name):
    """One query-string parameter of the delivery (the last one if repeated), or ""."""
    value = ctx.query.get(name, "")
    if isinstance(value, list):
        value = value[-1] if value else ""
    return value
