"""Apply a handler's changes to the mirror: versioned, idempotent, safe under concurrency.

A handler describes what an event says as a list of :class:`Change` objects. :func:`apply` then

1. locks every affected row (``SELECT ... FOR UPDATE``) in one global order, so two deliveries
   touching the same rows never deadlock;
2. resolves values that depend on the rows' previous state (see :class:`Previous`);
3. writes each field only where the event is at least as new as the event that last wrote that
   field (``versions[field] = [version, event_id]``), inserting missing rows; a concurrent insert of
   the same row is caught inside a savepoint and merged instead.

It must run inside ``transaction.atomic()``; the caller owns the transaction.
"""

import hashlib

from django.db import IntegrityError, transaction
from django.utils import timezone

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

#: Rows are always locked in this model order, then by natural key.
MODEL_ORDER = (ImUser, ImGroup, GroupMember, Friend, BlockedUser, OnlineSession)

#: Columns every write of an existing row updates besides the fields it changed.
BOOKKEEPING_FIELDS = {"versions", "version", "last_event", "last_run", "updated_at"}


def _sort_key(change):
    key = tuple(str(change.key.get(name, "")) for name in change.model.natural_key_fields)
    return (MODEL_ORDER.index(change.model), change.every_row, key)


def apply(changes, *, version, event=None, run=None):
    """Apply ``changes`` at ``version``; return the rows that were written.

    Callbacks pass their ``event`` (the stamp is ``(version, event id)``); a REST reconcile
    passes its ``run`` instead (stamp ``(version, 0)``: the time its request was sent).
    """
    stamp = Stamp(version, event.pk if event is not None else 0)
    changes = _with_parent_groups(changes)
    changes.sort(key=_sort_key)
    _serialize_keys(changes)

    locked = {}
    for change in changes:
        if change.every_row:
            for row in _lock_every(change):
                locked.setdefault((change.model, row.natural_key()), row)
        else:
            ident = (change.model, _key_tuple(change.model, change.key))
            if ident not in locked:
                locked[ident] = _lock_one(change.model, change.key)

    previous = {ident: _snapshot(row) for ident, row in locked.items()}
    for change in changes:
        resolved = {name: _resolve(value, previous, stamp) for name, value in change.values.items()}
        change.values = {name: value for name, value in resolved.items() if value is not UNKNOWN}

    written = {}
    for change in changes:
        targets = (
            [
                row
                for (model, _), row in locked.items()
                if model is change.model and row is not None and _matches(row, change.key)
            ]
            if change.every_row
            else [locked[(change.model, _key_tuple(change.model, change.key))]]
        )
        for row in targets:
            row = _write(change, row, stamp, event, run, locked)
            if row is not None:
                locked[(change.model, row.natural_key())] = row
                written[(change.model, row.natural_key())] = row
    return list(written.values())


def _with_parent_groups(changes):
    """Lock (or create) a member's group before the member.

    A membership implies its group, and every transaction touching a group's members holds the
    group row first, so member rows of one group are never locked in conflicting orders.
    """
    changes = list(changes)
    groups = {c.key["group_id"] for c in changes if c.model is ImGroup and not c.every_row}
    for change in list(changes):
        if change.model is GroupMember and not change.every_row:
            group_id = change.key["group_id"]
            if group_id not in groups:
                groups.add(group_id)
                changes.append(Change(ImGroup, {"group_id": group_id}, present=None))
    return changes


#: The first key of PostgreSQL's two-key advisory lock space, reserved for mirror rows.
ADVISORY_LOCK_CLASS = 0x6F696D73  # "oims"


def _serialize_keys(changes):
    """PostgreSQL: hold a transaction advisory lock per affected row key, all in one order.

    ``SELECT ... FOR UPDATE`` cannot lock a row that does not exist yet, and under READ COMMITTED
    a row committed meanwhile is visible to the next statement: a transaction could find no group
    but then lock its new member, and deadlock with one that holds the group and wants the member.
    Taking the key locks first, in ascending numeric order (so even a hash collision cannot invert
    the order), makes every writer of a row queue on that row's key before touching any row.
    SQLite needs none of this: its IMMEDIATE transactions already run one at a time.
    """
    connection = transaction.get_connection()
    if connection.vendor != "postgresql":
        return
    lock_ids = sorted({_lock_id(change) for change in changes})
    with connection.cursor() as cursor:
        for lock_id in lock_ids:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ADVISORY_LOCK_CLASS, lock_id])


def _lock_id(change):
    if change.every_row:
        # Rows of one group are all covered by the group's key (see _with_parent_groups).
        model, key = ImGroup, (change.key.get("group_id", ""),)
    else:
        model, key = change.model, _key_tuple(change.model, change.key)
    digest = hashlib.blake2b(repr((model._meta.label, key)).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def _key_tuple(model, key):
    return tuple(key[name] for name in model.natural_key_fields)


def _matches(row, key):
    return all(getattr(row, name) == value for name, value in key.items())


def _lock_one(model, key):
    # ``key`` is the row's unique natural key: no ORDER BY needed (``first()`` would add one).
    return next(iter(model.objects.select_for_update().filter(**key).order_by()[:1]), None)


def _lock_every(change):
    names = change.model.natural_key_fields
    return list(change.model.objects.select_for_update().filter(**change.key).order_by(*names))


def _snapshot(row):
    if row is None:
        return None
    return {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields}


UNKNOWN = object()


def _resolve(value, previous, stamp):
    if not isinstance(value, Previous):
        return value
    snapshot = previous.get((value.model, _key_tuple(value.model, value.key)))
    written = snapshot and (snapshot.get("versions") or {}).get(value.field)
    if written and written >= stamp.as_list():
        # This event (replayed) or a newer one wrote the field: its earlier value is lost.
        return UNKNOWN
    if snapshot is None or snapshot.get(value.field) is None:
        return value.default
    return snapshot[value.field]


def _newer(row, name, stamp, differs=True):
    """Whether ``stamp`` may write ``name``: it is newer, or it is the same event (a replay)
    bringing a different value (e.g. after a handler fix). The same event bringing the same value
    again changes nothing, not even ``last_event``."""
    current = row.versions.get(name)
    if current is None:
        return True
    stamp = stamp.as_list()
    return stamp > current or (stamp == current and differs)


def _write(change, row, stamp, event, run, locked):
    """Merge ``change`` into ``row`` (inserting it if ``row`` is None); None if nothing changed."""
    is_new = row is None
    if is_new:
        if change.present is None and change.model is not ImGroup and not change.values:
            return None
        row = change.model(**change.key)
        row.versions = {}

    touched = _merge(change, row, stamp, event, locked, is_new=is_new)
    if not touched and not is_new:
        return None

    _stamp_row(row, stamp, event, run)
    if is_new:
        try:
            with transaction.atomic():
                row.save(force_insert=True)
            return row
        except IntegrityError:
            # Another delivery inserted the same row meanwhile: merge into theirs.
            row = _lock_one(change.model, change.key)
            touched = _merge(change, row, stamp, event, locked, is_new=False)
            if not touched:
                return None
            _stamp_row(row, stamp, event, run)
    row.save(update_fields=touched | BOOKKEEPING_FIELDS)
    return row


def _stamp_row(row, stamp, event, run):
    row.version = max(row.version or 0, stamp.version)
    row.last_event_id = event.pk if event is not None else None
    row.last_run_id = run.pk if run is not None else None


def _merge(change, row, stamp, event, locked, *, is_new):
    """Write the fields ``stamp`` may write; return their names (empty: nothing changed)."""
    touched = set()
    for name, value in change.values.items():
        if isinstance(value, Merge):
            merged = dict(getattr(row, name) or {})
            for sub, sub_value in value.items():
                differs = sub not in merged or merged[sub] != sub_value
                if _newer(row, f"{name}.{sub}", stamp, differs):
                    merged[sub] = sub_value
                    row.versions[f"{name}.{sub}"] = stamp.as_list()
                    touched.add(name)
            setattr(row, name, merged)
        elif _newer(row, name, stamp, getattr(row, name) != value):
            setattr(row, name, value)
            row.versions[name] = stamp.as_list()
            touched.add(name)

    if isinstance(row, RemovableMirrorRow) and _merge_presence(
        change, row, stamp, event, locked, is_new=is_new
    ):
        touched |= {"removed_at", "removed_reason"}
    return touched


def _merge_presence(change, row, stamp, event, locked, *, is_new):
    present, reason, present_stamp = change.present, change.removed_reason, stamp
    if present is None and is_new:
        present = True  # a row first seen through an update exists on the server
    if present and isinstance(row, GroupMember):
        group = locked.get((ImGroup, (row.group_id,)))
        if group is not None and group.removed_at is not None:
            group_stamp = group.versions.get(PRESENT)
            if group_stamp and group_stamp > stamp.as_list():
                # The group was dismissed after this event: the member is gone with it.
                present, reason, present_stamp = False, group.removed_reason, Stamp(*group_stamp)
    if present is None:
        return False
    differs = (row.removed_at is None) != present or (not present and row.removed_reason != reason)
    if not _newer(row, PRESENT, present_stamp, differs):
        return False
    row.versions[PRESENT] = present_stamp.as_list()
    if present:
        row.removed_at, row.removed_reason = None, ""
    else:
        row.removed_at = row.removed_at or (event and event.received_at) or timezone.now()
        row.removed_reason = reason
    return True
