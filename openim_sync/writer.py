"""Apply lists of :class:`~openim_sync.changes.Change` to the mirror: versioned, idempotent, batched.

The writer is a small engine that knows rows, keys and versions, nothing about groups or users.
:func:`apply_units` applies many units (one per event, or one per REST read) in order, inside the
caller's transaction:

1. PostgreSQL: one statement takes a transaction advisory lock per affected row key, in
   ascending order, so that writers of the same rows queue instead of deadlocking (``SELECT ...
   FOR UPDATE`` cannot lock a row that does not exist yet). SQLite's IMMEDIATE transactions
   already run one at a time.
2. One read per model of every affected row (plus the present children of parents being removed).
3. In memory, unit by unit: each field is written only where the unit's stamp ``(version,
   event id)`` is at least as new as the stamp that last wrote it (``versions[field]``); the same
   stamp bringing the same value changes nothing, so a replay is a no-op. A unit that raises is
   set aside with its error; the others go on.
4. One ``INSERT ... ON CONFLICT DO UPDATE`` per model for the rows that changed.

Relations are declared on the models (``mirror_parent``, see :class:`~openim_sync.models.base.Parent`):
a change to a child implies its parent exists, a parent's newer tombstone bounds its children, and
a parent's removal removes its present children.
"""

import hashlib
import traceback
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.utils import timezone

from openim_sync import sql
from openim_sync.changes import PRESENT, Change, Merge, Previous, Stamp
from openim_sync.models import (
    BlockedUser,
    Friend,
    GroupMember,
    ImGroup,
    ImUser,
    OnlineSession,
    RemovableMirrorRow,
)

#: Models in the order their statements run (parents before children).
MODEL_ORDER = (ImUser, ImGroup, GroupMember, Friend, BlockedUser, OnlineSession)
UNKNOWN = object()


@dataclass
class Unit:
    """One event's (or one REST read's) changes, applied at ``stamp``."""

    changes: list
    stamp: Stamp
    event_id: int | None = None
    run_id: int | None = None
    #: When a removal happened (the event's receipt time); default: now.
    removed_at: datetime | None = None
    written: list = field(default_factory=list)
    error: BaseException | None = None
    traceback: str = ""
    _plan: list = field(default_factory=list, repr=False)


def apply(changes, *, version, event=None, run=None):
    """Apply ``changes`` at ``version`` and return the rows written (model instances).

    Callbacks pass their ``event`` (the stamp is ``(version, event id)``); a REST reconcile passes
    its ``run`` instead (stamp ``(version, 0)``: the time its request was sent). Must run inside
    ``transaction.atomic()``. Raises what the changes raised.
    """
    unit = Unit(
        list(changes),
        Stamp(version, event.pk if event is not None else 0),
        event_id=event.pk if event is not None else None,
        run_id=run.pk if run is not None else None,
        removed_at=event.received_at if event is not None else None,
    )
    state = apply_units([unit])
    if unit.error is not None:
        raise unit.error
    return state.instances(unit)


def apply_units(units, *, locked=False):
    """Apply ``units`` in order; failed units keep their ``error`` and change nothing.

    ``locked``: the caller already took :func:`lock_ids` (e.g. in the event's INSERT).
    """
    state = State()
    for unit in units:
        if not unit._plan and unit.error is None:
            _plan(unit)
    state.load(units, locked=locked)
    for unit in units:
        if unit.error is None:
            state.run(unit)
    state.save()
    return state


def lock_ids(units):
    """The advisory lock ids that applying ``units`` takes (PostgreSQL), planning them first."""
    for unit in units:
        if not unit._plan and unit.error is None:
            _plan(unit)
    wanted, _ = _wanted(units)
    return {lock_id((m, k)) for m, keys in wanted.items() for k in keys}


def _wanted(units):
    """Every row key ``units`` touch, per model, and the parents they remove."""
    wanted, removed_parents = {}, {}
    for unit in units:
        if unit.error is not None:
            continue
        for ident, change in unit._plan:
            wanted.setdefault(ident[0], set()).add(ident[1])
            for value in change.values.values():
                if isinstance(value, Previous):
                    model = value.model
                    wanted.setdefault(model, set()).add(_key_tuple(model, value.key))
            if change.present is False and children_of(ident[0]):
                removed_parents.setdefault(ident[0], set()).add(ident[1])
    return wanted, removed_parents


def _plan(unit):
    """Keys, implied parents and a stable order for the unit's changes."""
    try:
        planned, seen = [], set()
        for change in unit.changes:
            ident = (change.model, _key_tuple(change.model, change.key))
            planned.append((ident, change))
            seen.add(ident)
        for ident, _change in list(planned):
            parent = parent_ident(ident)
            if parent is not None and parent not in seen:
                seen.add(parent)
                key = dict(zip(parent[0].natural_key_fields, parent[1], strict=True))
                planned.append((parent, Change(parent[0], key)))
        planned.sort(key=lambda item: (MODEL_ORDER.index(item[0][0]), _sortable(item[0][1])))
        unit._plan = planned
    except Exception as exc:
        fail(unit, exc)


def fail(unit, exc):
    """Set ``unit`` aside as failed with ``exc`` and its traceback."""
    unit.error = exc
    unit.traceback = "".join(traceback.format_exception(exc))
    unit.written = []


def _key_tuple(model, key):
    try:
        return tuple(key[name] for name in model.natural_key_fields)
    except KeyError as exc:
        raise ValueError(f"{model.__name__} change without its key field {exc}") from None


def _sortable(key):
    return tuple(str(part) for part in key)


def parent_ident(ident):
    model, key = ident
    parent = getattr(model, "mirror_parent", None)
    if parent is None:
        return None
    values = dict(zip(model.natural_key_fields, key, strict=True))
    return (parent.model, tuple(values[column] for column in parent.columns))


def children_of(model):
    return [
        m
        for m in MODEL_ORDER
        if getattr(m, "mirror_parent", None) and m.mirror_parent.model is model
    ]


def lock_id(ident):
    model, key = ident
    digest = hashlib.blake2b(repr((model._meta.label, key)).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def _prepared(table, name, value):
    if isinstance(value, Merge):
        table.prepared(name, None)  # the column must exist
        return value
    return table.prepared(name, value)


def _removable(model):
    return issubclass(model, RemovableMirrorRow)


def _newer(row, name, stamp, differs=True):
    """Whether ``stamp`` may write ``name``: it is newer, or it is the same event (a replay)
    bringing a different value (e.g. after a handler fix). The same event bringing the same value
    again changes nothing, not even ``last_event``."""
    current = row["versions"].get(name)
    if current is None:
        return True
    stamp = stamp.as_list()
    return stamp > current or (stamp == current and differs)


class State:
    """The affected rows as plain dicts: ``rows[(model, key)]`` (None: the row does not exist)."""

    def __init__(self):
        self.rows = {}
        self.new = set()
        self.dirty = set()
        self.now = timezone.now()

    # -- reading -------------------------------------------------------------------------------

    def load(self, units, *, locked=False):
        wanted, removed_parents = _wanted(units)
        if connection.vendor == "postgresql" and not locked:
            sql.lock_keys({lock_id((m, k)) for m, keys in wanted.items() for k in keys})
        for model in MODEL_ORDER:
            keys = wanted.get(model)
            if keys:
                found = sql.select_rows(model, keys)
                for key in keys:
                    self.rows[(model, key)] = found.get(key)
        for parent_model, keys in removed_parents.items():
            for child in children_of(parent_model):
                columns = child.mirror_parent.columns
                if len(columns) != 1:
                    raise NotImplementedError("parents keyed by more than one column")
                found = sql.select_where(
                    child, columns[0], [key[0] for key in keys], " AND removed_at IS NULL"
                )
                for key, row in found.items():
                    self.rows.setdefault((child, key), row)

    # -- merging -------------------------------------------------------------------------------

    def run(self, unit):
        self.pending = {}
        try:
            previous = {}
            for ident, change in unit._plan:
                for name, value in change.values.items():
                    if isinstance(value, Previous):
                        previous[(ident, name)] = self._previous(value, unit.stamp)
            for ident, change in unit._plan:
                values = {
                    name: previous.get((ident, name), value)
                    for name, value in change.values.items()
                }
                values = {name: value for name, value in values.items() if value is not UNKNOWN}
                self._write(unit, ident, change, values)
        except Exception as exc:
            fail(unit, exc)
            return
        for ident, row in self.pending.items():
            self.rows[ident] = row
            self.dirty.add(ident)
            if ident not in unit.written:
                unit.written.append(ident)

    def _current(self, ident):
        if ident in self.pending:
            return self.pending[ident]
        return self.rows.get(ident)

    def _previous(self, value, stamp):
        row = self.rows.get((value.model, _key_tuple(value.model, value.key)))
        written = row and (row["versions"] or {}).get(value.field)
        if written and written >= stamp.as_list():
            # This event (replayed) or a newer one wrote the field: its earlier value is lost.
            return UNKNOWN
        if row is None or row.get(value.field) is None:
            return value.default
        return row[value.field]

    def _write(self, unit, ident, change, values):
        model, key = ident
        row = self._current(ident)
        is_new = row is None
        if is_new:
            if change.present is None and not values and not children_of(model):
                return  # nothing to say about a row that does not exist
            row = sql.table(model).new_row(key)
            row["versions"] = {}
            row["created_at"] = self.now
            candidate = row
        else:
            candidate = dict(row)
            candidate["versions"] = dict(row["versions"] or {})
        table = sql.table(model)
        values = {name: _prepared(table, name, value) for name, value in values.items()}
        touched = self._merge_values(candidate, values, unit.stamp)
        presence = _removable(model) and self._merge_presence(
            candidate, ident, change, unit, is_new=is_new
        )
        if not (touched or presence or is_new):
            return
        self._stamp(candidate, unit)
        self.pending[ident] = candidate
        if is_new:
            self.new.add(ident)
        if presence and candidate["removed_at"] is not None:
            self._cascade(ident, candidate, unit)

    def _merge_values(self, row, values, stamp):
        touched = False
        for name, value in values.items():
            if isinstance(value, Merge):
                merged = dict(row[name] or {})
                for sub, sub_value in value.items():
                    differs = sub not in merged or merged[sub] != sub_value
                    if _newer(row, f"{name}.{sub}", stamp, differs):
                        merged[sub] = sub_value
                        row["versions"][f"{name}.{sub}"] = stamp.as_list()
                        touched = True
                row[name] = merged
            elif _newer(row, name, stamp, row[name] != value):
                row[name] = value
                row["versions"][name] = stamp.as_list()
                touched = True
        return touched

    def _merge_presence(self, row, ident, change, unit, *, is_new):
        present, reason, stamp = change.present, change.removed_reason, unit.stamp
        if present is None and is_new:
            present = True  # a row first seen through an update exists on the server
        if present:
            bound = self._parent_tombstone(ident)
            if bound is not None and bound[0] > stamp:
                # The parent was removed after this change: the row is gone with it.
                stamp, reason = bound
                present = False
        if present is None:
            return False
        return self._set_presence(row, present, reason, stamp, unit)

    def _set_presence(self, row, present, reason, stamp, unit):
        differs = (row["removed_at"] is None) != present or (
            not present and row["removed_reason"] != reason
        )
        if not _newer(row, PRESENT, stamp, differs):
            return False
        row["versions"][PRESENT] = stamp.as_list()
        if present:
            row["removed_at"], row["removed_reason"] = None, ""
        else:
            row["removed_at"] = row["removed_at"] or unit.removed_at or self.now
            row["removed_reason"] = reason
        return True

    def _parent_tombstone(self, ident):
        parent = parent_ident(ident)
        row = self._current(parent) if parent is not None else None
        if row is None or row["removed_at"] is None:
            return None
        written = row["versions"].get(PRESENT)
        return (Stamp(*written), row["removed_reason"]) if written else None

    def _cascade(self, parent, parent_row, unit):
        """A removed parent removes its present children, at the parent's stamp and reason."""
        stamp = Stamp(*parent_row["versions"][PRESENT])
        for child_model in children_of(parent[0]):
            idents = {i for i in (*self.rows, *self.pending) if i[0] is child_model}
            for ident in sorted(idents, key=lambda i: _sortable(i[1])):
                if parent_ident(ident) != parent:
                    continue
                current = self._current(ident)
                if current is None or current["removed_at"] is not None:
                    continue
                row = dict(current)
                row["versions"] = dict(current["versions"] or {})
                if self._set_presence(row, False, parent_row["removed_reason"], stamp, unit):
                    self._stamp(row, unit)
                    self.pending[ident] = row

    def _stamp(self, row, unit):
        row["version"] = max(row["version"] or 0, unit.stamp.version)
        row["last_event_id"] = unit.event_id
        row["last_run_id"] = unit.run_id
        row["updated_at"] = self.now

    # -- writing -------------------------------------------------------------------------------

    def save(self):
        for model in MODEL_ORDER:
            rows = [self.rows[i] for i in self.dirty if i[0] is model]
            rows.sort(
                key=lambda row, m=model: _sortable(tuple(row[c] for c in m.natural_key_fields))
            )
            sql.upsert(model, rows)

    def instances(self, unit):
        """The rows ``unit`` wrote, as model instances (for signals and callers)."""
        result = []
        for model, key in unit.written:
            row = self.rows[(model, key)]
            instance = model(**row)
            instance._state.adding = False
            instance._state.db = connection.alias
            result.append(instance)
        return result


def apply_many(batches, *, run=None):
    """Apply ``(changes, version)`` batches (REST reads) in order, at stamps ``(version, 0)``.

    Must run inside ``transaction.atomic()``. A batch that raises changes nothing and the others
    go on: returns ``[(rows written, error or None)]`` in the order given.
    """
    run_id = run.pk if run is not None else None
    units = [Unit(list(changes), Stamp(version, 0), run_id=run_id) for changes, version in batches]
    state = apply_units(units)
    return [(state.instances(u) if u.error is None else [], u.error) for u in units]
