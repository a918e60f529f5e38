"""The few statements the writer needs, for PostgreSQL and SQLite, on plain row dicts.

Rows are dicts keyed by column (``attname``). Reads convert database values to what the ORM
would give (aware datetimes, bools, decoded JSON) so that the writer compares like with like;
writes adapt them back. Every statement is chunked below the backend's parameter limit.
"""

import json
from datetime import UTC, datetime
from functools import cache

from django.conf import settings
from django.db import connection, models

#: Parameters per statement: SQLite allows 32,766, PostgreSQL 65,535.
MAX_PARAMS = {"sqlite": 32000, "postgresql": 60000}
#: The first key of PostgreSQL's two-key advisory lock space, reserved for mirror rows.
ADVISORY_LOCK_CLASS = 0x6F696D73  # "oims"


class Table:
    """What the writer needs to know about one mirror model's table."""

    def __init__(self, model):
        self.model = model
        meta = model._meta
        self.name = meta.db_table
        self.fields = [f for f in meta.concrete_fields if not f.primary_key]
        self.columns = [f.attname for f in self.fields]
        self.key = tuple(getattr(model, "natural_key_fields", ()))
        self.json_columns = {f.attname for f in self.fields if isinstance(f, models.JSONField)}
        self.datetime_columns = {
            f.attname for f in self.fields if isinstance(f, models.DateTimeField)
        }
        self.bool_columns = {f.attname for f in self.fields if isinstance(f, models.BooleanField)}
        self.defaults = {f.attname: f.get_default() for f in self.fields}
        self.prepare = {
            f.attname: f.get_prep_value
            for f in self.fields
            if not isinstance(f, models.JSONField | models.DateTimeField)
        }
        self.update_columns = [c for c in self.columns if c not in self.key and c != "created_at"]

    def array_types(self, columns):
        """PostgreSQL: ``%s::type[]`` placeholders that carry each column's values as one array."""
        by_column = {f.attname: f for f in self.fields}
        return [f"%s::{by_column[c].db_type(connection)}[]" for c in columns]

    def prepared(self, column, value):
        """``value`` as the column stores it; a clear error for a value it cannot hold."""
        if column not in self.defaults:
            raise ValueError(f"{self.model.__name__} has no field {column!r}")
        if value is None or column not in self.prepare:
            return value
        return self.prepare[column](value)

    def new_row(self, key):
        row = {column: _fresh(value) for column, value in self.defaults.items()}
        row.update(zip(self.key, key, strict=True))
        return row


def _fresh(value):
    return dict(value) if isinstance(value, dict) else value


@cache
def table(model):
    return Table(model)


def quote(name):
    return connection.ops.quote_name(name)


def _chunks(items, per_item):
    size = max(1, MAX_PARAMS[connection.vendor] // max(per_item, 1))
    for start in range(0, len(items), size):
        yield items[start : start + size]


@cache
def _select_sql(model, vendor, count):
    """The rows with ``count`` natural keys: on PostgreSQL one array parameter per key column
    (``count`` is ignored), elsewhere one placeholder per value."""
    t = table(model)
    columns = ", ".join(quote(c) for c in t.columns)
    key_columns = ", ".join(quote(c) for c in t.key)
    if vendor == "postgresql":
        arrays = ", ".join(t.array_types(t.key))
        if len(t.key) == 1:
            where = f"{key_columns} = ANY({arrays})"
        else:
            where = f"({key_columns}) IN (SELECT * FROM unnest({arrays}))"
    elif len(t.key) == 1:
        where = f"{key_columns} IN ({', '.join(['%s'] * count)})"
    else:
        one = "(" + ", ".join(["%s"] * len(t.key)) + ")"
        where = f"({key_columns}) IN (VALUES {', '.join([one] * count)})"
    return f"SELECT {columns} FROM {quote(t.name)} WHERE {where}"


def select_rows(model, keys):
    """``{key tuple: row}`` for the rows with these natural keys (missing keys are absent)."""
    t = table(model)
    keys = list(keys)
    if connection.vendor == "postgresql":
        columns = (
            [list(values) for values in zip(*keys, strict=True)] if keys else [[]] * len(t.key)
        )
        return _fetch(t, _select_sql(model, "postgresql", 0), columns)
    found = {}
    for chunk in _chunks(keys, len(t.key)):
        params = [value for key in chunk for value in key]
        found.update(_fetch(t, _select_sql(model, connection.vendor, len(chunk)), params))
    return found


def select_where(model, column, values, extra=""):
    """Rows whose ``column`` is one of ``values`` (e.g. the present members of some groups)."""
    t = table(model)
    found = {}
    columns = ", ".join(quote(c) for c in t.columns)
    head = f"SELECT {columns} FROM {quote(t.name)} WHERE {quote(column)}"
    if connection.vendor == "postgresql":
        (array,) = t.array_types([column])
        return _fetch(t, f"{head} = ANY({array}){extra}", [list(values)])
    for chunk in _chunks(list(values), 1):
        found.update(_fetch(t, f"{head} IN ({', '.join(['%s'] * len(chunk))}){extra}", chunk))
    return found


def _fetch(t, sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    found = {}
    # psycopg returns bools, and aware datetimes under USE_TZ; SQLite returns text and integers.
    converted = connection.vendor != "postgresql" or not settings.USE_TZ
    for values in rows:
        row = dict(zip(t.columns, values, strict=True))
        for column in t.json_columns:
            if isinstance(row[column], str):
                row[column] = json.loads(row[column])
        if converted:
            for column in t.datetime_columns:
                row[column] = _datetime(row[column])
            for column in t.bool_columns:
                if row[column] is not None:
                    row[column] = bool(row[column])
        found[tuple(row[c] for c in t.key)] = row
    return found


def _datetime(value):
    if isinstance(value, str):  # SQLite: naive UTC text
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def upsert(model, rows):
    """Insert ``rows``, or update every non-key column of the rows that exist already."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_upsert_sql(model, "postgresql", 0), [_json_rows(rows)])
        return
    t = table(model)
    ops = connection.ops
    adapt = dict.fromkeys(t.json_columns, lambda v: ops.adapt_json_value(v, None))
    adapt.update(
        dict.fromkeys(
            t.datetime_columns, lambda v: v if v is None else ops.adapt_datetimefield_value(v)
        )
    )
    for chunk in _chunks(rows, len(t.columns)):
        params = [adapt[c](row[c]) if c in adapt else row[c] for row in chunk for c in t.columns]
        with connection.cursor() as cursor:
            cursor.execute(_upsert_sql(model, connection.vendor, len(chunk)), params)


def _json_rows(rows):
    return json.dumps(rows, default=_json_default, separators=(",", ":"))


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@cache
def _upsert_sql(model, vendor, count):
    """On PostgreSQL the rows come as one JSON parameter (``json_to_recordset``: one statement
    and one C-encoded string whatever the batch size); elsewhere as VALUES."""
    t = table(model)
    columns = ", ".join(quote(c) for c in t.columns)
    conflict = ", ".join(quote(c) for c in t.key)
    updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in t.update_columns)
    if vendor == "postgresql":
        record = ", ".join(f"{quote(f.attname)} {f.db_type(connection)}" for f in t.fields)
        source = f"SELECT {columns} FROM json_to_recordset(%s::json) AS r({record})"
    else:
        one = "(" + ", ".join(["%s"] * len(t.columns)) + ")"
        source = f"VALUES {', '.join([one] * count)}"
    return (
        f"INSERT INTO {quote(t.name)} ({columns}) {source} "
        f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
    )


def update_ids(model, ids, values, increment=()):
    """``UPDATE`` the rows with primary keys ``ids``: set ``values`` (column: value) and add 1 to
    each column in ``increment``. One statement on PostgreSQL (an array of ids)."""
    if not ids:
        return
    t = table(model)
    ops = connection.ops
    assignments = [f"{quote(c)} = %s" for c in values]
    assignments += [f"{quote(c)} = {quote(c)} + 1" for c in increment]
    params = [
        ops.adapt_datetimefield_value(v) if c in t.datetime_columns and v is not None else v
        for c, v in values.items()
    ]
    head = (
        f"UPDATE {quote(t.name)} SET {', '.join(assignments)} WHERE {quote(model._meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"{head} = ANY(%s::bigint[])", [*params, list(ids)])
            return
        for chunk in _chunks(list(ids), 1):
            cursor.execute(f"{head} IN ({', '.join(['%s'] * len(chunk))})", [*params, *chunk])


LOCKS_SQL = "SELECT count(pg_advisory_xact_lock(%s, k)) FROM unnest(%s::int[]) AS k"


def insert_event(event, lock_ids=(), stored=None):
    """INSERT ``event`` in one statement and set its id; on PostgreSQL the same statement takes
    the advisory locks ``lock_ids`` (see :func:`lock_keys`). ``event.payload_text``, when set,
    is stored as the payload as it is (the body's JSON text) instead of re-encoding the dict.
    ``stored`` (column: value) replaces some of the event's values in the row only (a summary
    of an ignored delivery leaves its body out; the instance keeps it)."""
    model = type(event)
    t = table(model)
    ops = connection.ops
    params = []
    stored = stored or {}
    for f in t.fields:
        value = stored[f.attname] if f.attname in stored else getattr(event, f.attname)
        if f.attname in t.json_columns:
            text = getattr(event, "payload_text", None) if f.attname == "payload" else None
            text = None if f.attname in stored else text
            value = text if text is not None else (None if value is None else json.dumps(value))
        elif f.attname in t.datetime_columns and value is not None:
            value = ops.adapt_datetimefield_value(value)
        elif isinstance(value, memoryview):
            value = bytes(value)
        params.append(value)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and lock_ids:
            cursor.execute(
                _insert_sql(model, connection.vendor, True),
                [*params, ADVISORY_LOCK_CLASS, sorted(lock_ids)],
            )
        else:
            cursor.execute(_insert_sql(model, connection.vendor, False), params)
        event.pk = cursor.fetchone()[0]
    event._state.adding = False
    event._state.db = connection.alias
    return event


@cache
def _insert_sql(model, vendor, with_locks):
    t = table(model)
    casts = {c: "::jsonb" if vendor == "postgresql" else "" for c in t.json_columns}
    values = ", ".join(f"%s{casts.get(c, '')}" for c in t.columns)
    insert = (
        f"INSERT INTO {quote(t.name)} ({', '.join(quote(c) for c in t.columns)}) "
        f"VALUES ({values}) RETURNING {quote(model._meta.pk.column)}"
    )
    if not with_locks:
        return insert
    return f"WITH e AS ({insert}) SELECT e.id, ({LOCKS_SQL}) FROM e"


def count_ignored(model, protocol, command, hour, received_at):
    """Add 1 to the ``model`` (:class:`~openim_sync.models.IgnoredEventCount`) row of
    ``(hour, protocol, command)``, creating it at 1: one upsert statement, safe under concurrency
    (PostgreSQL takes the row lock in the statement; SQLite serialises writers)."""
    t = table(model)
    ops = connection.ops
    latest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    name, hour_, protocol_, command_, count, last = (
        quote(n) for n in (t.name, "hour", "protocol", "command", "count", "last_received_at")
    )
    statement = (
        f"INSERT INTO {name} ({hour_}, {protocol_}, {command_}, {count}, {last}) "
        f"VALUES (%s, %s, %s, 1, %s) ON CONFLICT ({hour_}, {protocol_}, {command_}) "
        f"DO UPDATE SET {count} = {name}.{count} + 1, "
        f"{last} = {latest}({name}.{last}, excluded.{last})"
    )
    params = [
        ops.adapt_datetimefield_value(hour),
        protocol,
        command,
        ops.adapt_datetimefield_value(received_at),
    ]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def commit_without_flush():
    """PostgreSQL: let this transaction's COMMIT return before its WAL reaches the disk.

    Only for work that the stored events can redo: if the server crashes right after such a
    commit, the transaction is lost as a whole (never half-applied), its events are still
    ``received`` or keep their previous outcome, and the worker or a replay applies them again.
    Transaction-scoped (``SET LOCAL``), so it is safe behind a transaction pooler.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def lock_keys(lock_ids):
    """PostgreSQL: take transaction advisory locks on ``lock_ids``, ascending, in one statement."""
    if connection.vendor != "postgresql" or not lock_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(LOCKS_SQL, [ADVISORY_LOCK_CLASS, sorted(lock_ids)])
