"""One path for every delivery, live or stored.

``receive(delivery)`` (the views) decides everything it can in memory first: the command, the
registry entry and "ignored"; inline, also the payload's validation and the handler's changes.
Then:

* inline: one transaction INSERTs the event as ``processed`` (the same statement takes the row
  locks) and writes its changes; if writing fails, the transaction rolls back and the event is
  INSERTed ``failed`` with its traceback;
* deferred: one INSERT of the event as ``received``; ``openim_worker`` validates and applies it;
* rejected, ignored, or a handler that raised: one INSERT with the final status.

``process_events(events)`` applies stored events (the worker, replays, the admin action) in one
batch: one writer pass for all of them and one UPDATE per distinct outcome. A bad event fails
alone.
"""

import logging
import traceback
from dataclasses import dataclass, field
from datetime import UTC

from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework.serializers import as_serializer_error

from openim_sync import signals, sql, writer
from openim_sync.callbacks import registry
from openim_sync.changes import Stamp
from openim_sync.conf import app_settings
from openim_sync.exceptions import BadDelivery, DatabaseUnavailable
from openim_sync.models import CallbackEvent, EventStatus, IgnoredEventCount
from openim_sync.protocols import adapter_for
from openim_sync.protocols.base import decode_body, storable
from openim_sync.subjects import subjects

logger = logging.getLogger(__name__)
COMMAND_LENGTH = CallbackEvent._meta.get_field("command").max_length
HTTP_STATUS = {EventStatus.REJECTED: 400, EventStatus.FAILED: 500}
DATABASE_DOWN = (OperationalError, InterfaceError)


@dataclass
class Outcome:
    event: CallbackEvent
    status: str
    reason: str = ""
    changed: list = field(default_factory=list)
    http_status: int = 0
    rows_written: int = 0
    traceback: str = ""
    #: Stored events: the writer unit still to apply, and whether the stored row needs more than
    #: its outcome updated (payload parsed from the body, command or subjects changed).
    unit: object = None
    reparsed: bool = False

    def __post_init__(self):
        self.http_status = self.http_status or HTTP_STATUS.get(self.status, 200)


@dataclass
class Prepared:
    """An event whose changes are known and only need writing."""

    changes: list
    version: int


# -- live deliveries ------------------------------------------------------------------------


def receive(delivery):
    """Store an authenticated delivery as an event and apply it (or leave it for the worker)."""
    try:
        return _receive(delivery)
    except DATABASE_DOWN as exc:
        raise _unavailable(exc, f"receiving a {delivery.protocol} callback") from exc


def _receive(delivery):
    event = CallbackEvent(
        protocol=delivery.protocol,
        url_command=_command_column(delivery.url_command),
        command=_command_column(delivery.url_command),
        headers=delivery.headers,
        query=delivery.query,
        remote_addr=delivery.remote_addr,
        operation_id=delivery.operation_id,
        received_at=delivery.received_at,
        body=delivery.body,
        attempts=1,
    )
    if delivery.body_error is not None:
        exc = delivery.body_error
        return _store_final(
            Outcome(event, EventStatus.REJECTED, exc.message, http_status=exc.status)
        )
    spec = _classify(event, url_command=delivery.url_command)
    if isinstance(spec, Outcome):
        return _store_final(spec)
    if app_settings.PROCESSING == "deferred":
        # One INSERT and nothing else: the worker validates and applies.
        event.attempts = 0
        sql.insert_event(event)
        _on_commit(signals.event_received, event=event)
        return Outcome(event, EventStatus.RECEIVED, "Queued for processing.")
    prepared = _changes(event, spec)
    if isinstance(prepared, Outcome):
        return _store_final(prepared)
    return _apply_inline(event, prepared)


def _apply_inline(event, prepared):
    _mark(event, EventStatus.PROCESSED, "")
    unit = writer.Unit(prepared.changes, None, removed_at=event.received_at)
    try:
        with transaction.atomic():
            sql.insert_event(event, writer.lock_ids([unit]))
            unit.stamp, unit.event_id = Stamp(prepared.version, event.pk), event.pk
            state = writer.apply_units([unit], locked=True)
            if unit.error is not None:
                raise unit.error
            changed = _changed(state, unit)
            _on_commit(signals.event_received, event=event)
            _on_commit(signals.event_processed, event=event, changed=changed)
    except DATABASE_DOWN:
        raise
    except Exception as exc:
        tb = unit.traceback or traceback.format_exc()
        event.pk = event.id = None
        event._state.adding = True
        return _store_final(_failure(event, exc, tb))
    return Outcome(event, EventStatus.PROCESSED, changed=changed, rows_written=len(unit.written))


def _store_final(outcome):
    """Store a delivery whose outcome is known before storing, in its one INSERT (an ignored
    one as ``IGNORED_EVENTS`` says: in full, as a summary row, or as +1 on a counter)."""
    event = outcome.event
    _mark(event, outcome.status, outcome.reason)
    event.traceback = storable(outcome.traceback)
    mode = app_settings.IGNORED_EVENTS if outcome.status == EventStatus.IGNORED else "full"
    if mode == "count":
        # No row: the event stays unsaved (pk None); the signals still carry it in memory.
        sql.count_ignored(
            IgnoredEventCount,
            event.protocol,
            event.command,
            _hour(event.received_at),
            event.received_at,
        )
    else:
        sql.insert_event(event, stored=SUMMARY if mode == "summary" else None)
    _on_commit(signals.event_received, event=event)
    _on_commit(signals.event_processed, event=event, changed=[])
    return outcome


#: What a summary row of an ignored delivery stores instead of the delivery's values.
SUMMARY = {"body": b"", "payload": None, "headers": {}, "query": {}, "url_command": ""}


def _hour(moment):
    """The start of ``moment``'s hour, in UTC when it is aware."""
    if timezone.is_aware(moment):
        moment = moment.astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


# -- what a payload means, decided in memory ---------------------------------------------------


def _prepare(event, payload=None, url_command=None):
    """Resolve, look up, validate and run the handler: a :class:`Prepared`, or the final
    :class:`Outcome` (rejected, ignored, failed) when there is nothing to write."""
    spec = _classify(event, payload, url_command)
    if isinstance(spec, Outcome):
        return spec
    return _changes(event, spec)


def _classify(event, payload=None, url_command=None):
    """The command's registry entry, or the final outcome (rejected, ignored) without one."""
    adapter = adapter_for(event.protocol)
    try:
        if payload is None:
            payload = decode_body(bytes(event.body or b""))
            if connection.vendor == "postgresql":
                event.payload_text = bytes(event.body).decode("utf-8")  # jsonb normalizes it
        command = adapter.resolve_command(
            event.url_command if url_command is None else url_command, payload
        )
    except BadDelivery as exc:
        return Outcome(event, EventStatus.REJECTED, exc.message, http_status=exc.status)
    reparsed = payload is not event.payload
    event.payload, event.command = payload, _command_column(command)
    if reparsed or not (event.subject_user_id or event.subject_group_id or event.subject_peer_id):
        event.subject_user_id, event.subject_group_id, event.subject_peer_id = subjects(payload)

    spec = registry.lookup(event.protocol, command)
    if spec is None:
        reason = f"Unknown {event.protocol} command {command!r}: stored, nothing applied."
        return Outcome(event, EventStatus.IGNORED, reason)
    if spec.ignored:
        return Outcome(event, EventStatus.IGNORED, spec.ignored_reason)
    return spec


def _changes(event, spec):
    """Validate the payload and run the handler."""
    try:
        data = registry.validate(spec, event.payload)
    except ValidationError as exc:
        return Outcome(event, EventStatus.REJECTED, describe_errors(as_serializer_error(exc)))
    except Exception as exc:
        return _failure(event, exc, traceback.format_exc())
    version = data.get(spec.version_field) if spec.version_field else None
    if version is None:
        version = event.received_ms
    context = registry.Context(event=event, version=version, command=event.command)
    try:
        changes = list(spec.handler(data, context))
    except Exception as exc:
        return _failure(event, exc, traceback.format_exc())
    return Prepared(changes, version)


def _failure(event, exc, tb):
    return Outcome(event, EventStatus.FAILED, f"{type(exc).__name__}: {exc}", traceback=tb)


def _unit(event, prepared):
    return writer.Unit(
        prepared.changes,
        Stamp(prepared.version, event.pk),
        event_id=event.pk,
        removed_at=event.received_at,
    )


# -- stored events ------------------------------------------------------------------------------


def process(event):
    """Apply one stored event and record the outcome on it."""
    return process_events([event])[0]


def process_events(events):
    """Apply stored ``events`` (in the order given, id order for replays) in one transaction."""
    try:
        with transaction.atomic():
            sql.commit_without_flush()
            return _process_events(events)
    except DATABASE_DOWN as exc:
        first = events[0].pk if events else None
        raise _unavailable(exc, f"processing events from #{first}") from exc


def _process_events(events):
    outcomes, units = [], []
    for event in events:
        if event.is_summary:
            # Its body was not kept: nothing to parse or apply, it stays ignored.
            outcomes.append(Outcome(event, EventStatus.IGNORED, event.reason))
            continue
        before = _stored_fields(event)
        result = _prepare(event, event.payload)
        if isinstance(result, Outcome):
            outcome = result
        else:
            outcome = Outcome(event, EventStatus.PROCESSED, unit=_unit(event, result))
            units.append(outcome.unit)
        outcome.reparsed = before != _stored_fields(event)
        outcomes.append(outcome)

    states = _apply_batch(units)
    for outcome in outcomes:
        unit = outcome.unit
        if unit is None:
            continue
        if unit.error is not None:
            outcome.status = EventStatus.FAILED
            outcome.reason = f"{type(unit.error).__name__}: {unit.error}"
            outcome.traceback = unit.traceback
            outcome.http_status = HTTP_STATUS[EventStatus.FAILED]
        else:
            outcome.rows_written = len(unit.written)
            outcome.changed = _changed(states[id(unit)], unit)
    _record(outcomes)
    return outcomes


def _apply_batch(units):
    """Write all units at once; if a statement fails, write them one by one so that only the
    unit whose write fails is failed. Returns ``{id(unit): state}``."""
    if not units:
        return {}
    try:
        with transaction.atomic():
            state = writer.apply_units(units)
        return dict.fromkeys(map(id, units), state)
    except DATABASE_DOWN:
        raise
    except Exception as exc:
        if len(units) == 1:
            writer.fail(units[0], exc)
            return {}
    states = {}
    for unit in units:
        if unit.error is not None:
            continue
        unit.written = []
        states.update(_apply_batch([unit]))
    return states


def _record(outcomes):
    """One UPDATE per distinct outcome (usually one per batch), plus reparsed payloads."""
    now = timezone.now()
    groups = {}
    for outcome in outcomes:
        event = outcome.event
        _mark(event, outcome.status, outcome.reason, now)
        event.traceback = storable(outcome.traceback)
        event.attempts += 1
        if outcome.reparsed:
            CallbackEvent.objects.filter(pk=event.pk).update(
                **dict(zip(REPARSED_FIELDS, _stored_fields(event), strict=True))
            )
        key = (event.status, event.reason, event.traceback)
        groups.setdefault(key, []).append(event.pk)
    for (status, reason, tb), ids in groups.items():
        values = {"status": status, "reason": reason, "traceback": tb, "processed_at": now}
        sql.update_ids(CallbackEvent, ids, values, increment=["attempts"])
    if _listening():
        for outcome in outcomes:
            _on_commit(signals.event_processed, event=outcome.event, changed=outcome.changed)


REPARSED_FIELDS = ("payload", "command", "subject_user_id", "subject_group_id", "subject_peer_id")


def _stored_fields(event):
    return tuple(getattr(event, name) for name in REPARSED_FIELDS)


def _changed(state, unit):
    """The rows ``unit`` wrote as model instances, built only when someone listens."""
    if state is None or not _listening():
        return []
    return state.instances(unit)


def _listening():
    return signals.event_processed.has_listeners(CallbackEvent) or (
        signals.mirror_changed.has_listeners(CallbackEvent)
    )


# -- helpers ------------------------------------------------------------------------------------


def _unavailable(exc, doing):
    # The reply names only the error class; the log keeps the database's own message.
    logger.warning("Database unavailable while %s: %s: %s", doing, type(exc).__name__, exc)
    return DatabaseUnavailable(f"The database is unavailable ({type(exc).__name__}).")


def describe_errors(errors, prefix=""):
    """DRF's nested error dict as one line naming each bad field: ``roleLevel: A valid ...``."""
    parts = []
    if isinstance(errors, dict):
        for name, detail in errors.items():
            if name == "non_field_errors":
                label = prefix
            elif isinstance(name, int):  # a list serializer's errors, keyed by item index
                label = f"{prefix}[{name}]"
            else:
                label = f"{prefix}.{name}" if prefix else name
            parts.append(describe_errors(detail, label))
    elif isinstance(errors, list) and errors and not all(isinstance(e, str) for e in errors):
        for index, detail in enumerate(errors):
            if detail:
                parts.append(describe_errors(detail, f"{prefix}[{index}]"))
    else:
        messages = " ".join(str(e) for e in errors) if isinstance(errors, list) else str(errors)
        parts.append(f"{prefix}: {messages}" if prefix else messages)
    return "; ".join(part for part in parts if part)


def _mark(event, status, reason, now=None):
    # Reasons may quote the input; PostgreSQL refuses NUL characters in text columns.
    event.status, event.reason = status, storable(reason)
    event.processed_at = now or timezone.now()


def _command_column(command):
    return storable(command or "")[:COMMAND_LENGTH]


def _on_commit(signal, **kwargs):
    event = kwargs["event"]
    extra = (
        {"command": event.command, "status": event.status}
        if signal is signals.event_processed
        else {}
    )
    transaction.on_commit(lambda: _send(signal, **kwargs, **extra))


def _send(signal, **kwargs):
    if signal is signals.event_processed and kwargs.get("changed"):
        _send_robust(
            signals.mirror_changed,
            rows=kwargs["changed"],
            source="callback",
            event=kwargs["event"],
            run=None,
        )
    _send_robust(signal, **kwargs)


def _send_robust(signal, **kwargs):
    # One failing host receiver must neither hide the others nor disturb the stored event.
    for receiver, result in signal.send_robust(sender=CallbackEvent, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "openim_sync signal receiver %r failed for event #%s",
                receiver,
                kwargs["event"].pk,
                exc_info=result,
            )
