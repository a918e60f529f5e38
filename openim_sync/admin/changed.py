"""The mirror rows a stored event names, and what each still holds from it (its detail page).

The event's handler runs again in memory (validation and handler only: no write, no signal) to
know the row keys it names; rows whose ``last_event`` is the event are added (a group's dismissal
also removes its members). One query per model with rows to look up.
"""

from dataclasses import dataclass, field
from functools import reduce
from operator import or_

from django.db.models import Q

from openim_sync import writer
from openim_sync.callbacks import registry
from openim_sync.models import EventStatus

#: Keys looked up per model at most (a Tencent member list may name hundreds).
MAX_KEYS = 50


@dataclass
class ChangedRow:
    model: type
    key: tuple
    obj: object = None
    #: Fields whose current value this event wrote (``versions[field][1] == event id``).
    fields: list = field(default_factory=list)
    removed: bool = False

    @property
    def holds(self):
        return bool(self.fields)


def named_keys(event):
    """``{model: [key tuple, ...]}`` the event's handler names (implied parents included), or
    ``None`` when it has no handler, its payload does not validate, or the handler raises."""
    spec = registry.lookup(event.protocol, event.command)
    if spec is None or spec.ignored or not isinstance(event.payload, dict):
        return None
    try:
        data = registry.validate(spec, event.payload)
        version = data.get(spec.version_field) if spec.version_field else None
        if version is None:
            version = event.received_ms
        context = registry.Context(event=event, version=version, command=event.command)
        changes = list(spec.handler(data, context))
        keys = {}
        for change in changes:
            model = change.model
            key = tuple(change.key[name] for name in model.natural_key_fields)
            keys.setdefault(model, []).append(key)
            parent = writer.parent_ident((model, key))
            if parent is not None:
                keys.setdefault(parent[0], []).append(parent[1])
    except Exception:
        return None
    return {model: list(dict.fromkeys(found)) for model, found in keys.items()}


def changed_rows(event):
    """``(rows, more)``: the rows the event names or last changed, in writer order, and how many
    named keys were not looked up (over :data:`MAX_KEYS` per model)."""
    keys = named_keys(event) or {}
    rows, more = [], 0
    models = writer.MODEL_ORDER if event.status == EventStatus.PROCESSED else keys
    for model in writer.MODEL_ORDER:
        if model not in models:
            continue
        wanted = keys.get(model, [])
        more += max(len(wanted) - MAX_KEYS, 0)
        wanted = wanted[:MAX_KEYS]
        condition = Q(last_event_id=event.pk)
        if wanted:
            names = model.natural_key_fields
            condition |= reduce(or_, (Q(**dict(zip(names, key, strict=True))) for key in wanted))
        found = {
            obj.natural_key(): obj
            for obj in model.objects.filter(condition).order_by(*model.natural_key_fields)[
                : MAX_KEYS * 2
            ]
        }
        for key in [*wanted, *(k for k in found if k not in set(wanted))]:
            obj = found.get(key)
            row = ChangedRow(model, key, obj)
            if obj is not None:
                row.fields = sorted(
                    name
                    for name, entry in (obj.versions or {}).items()
                    if isinstance(entry, list) and len(entry) > 1 and entry[1] == event.pk
                )
                row.removed = getattr(obj, "removed_at", None) is not None
            rows.append(row)
    return rows, more
