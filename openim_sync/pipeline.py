"""One path for every delivery.

``receive`` (the views) stores the request as a :class:`CallbackEvent` first, then ``process``
applies it; replays, admin actions and deferred tasks call ``process`` on stored events.
"""

import logging
import traceback
from dataclasses import dataclass, field

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from openim_sync import signals, writer
from openim_sync.callbacks import registry
from openim_sync.conf import app_settings
from openim_sync.exceptions import BadDelivery, DatabaseUnavailable
from openim_sync.models import CallbackEvent, EventStatus
from openim_sync.protocols import adapter_for
from openim_sync.protocols.base import decode_body, storable

logger = logging.getLogger(__name__)
COMMAND_LENGTH = CallbackEvent._meta.get_field("command").max_length
HTTP_STATUS = {EventStatus.REJECTED: 400, EventStatus.FAILED: 500}
DATABASE_DOWN = (OperationalError, InterfaceError)
STATUS_FIELDS = ["status", "reason", "traceback", "processed_at", "attempts"]


@dataclass
class Outcome:
    event: CallbackEvent
    status: str
    reason: str = ""
    changed: list = field(default_factory=list)
    http_status: int = 0

    def __post_init__(self):
        self.http_status = self.http_status or HTTP_STATUS.get(self.status, 200)


def receive(delivery):
    """Store an authenticated delivery as an event, then apply it (or queue it)."""
    try:
        return _receive(delivery)
    except DATABASE_DOWN as exc:
        raise _unavailable(exc, f"receiving a {delivery.protocol} callback") from exc


def _receive(delivery):
    adapter = adapter_for(delivery.protocol)
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
    )
    if delivery.body_error is not None:
        exc = delivery.body_error
        return _store_final(event, EventStatus.REJECTED, exc.message, http_status=exc.status)
    try:
        event.payload = decode_body(event.body)
        command = adapter.resolve_command(delivery.url_command, event.payload)
        event.command = _command_column(command)
    except BadDelivery as exc:
        return _store_final(event, EventStatus.REJECTED, exc.message, http_status=exc.status)

    ignored = _ignored_reason(adapter, command, registry.lookup(adapter.name, command))
    if ignored is not None:
        # Nothing to apply: one INSERT of the row process() would leave (no UPDATE, no task).
        # Messages are most of OpenIM's traffic.
        event.attempts = 1
        return _store_final(event, EventStatus.IGNORED, ignored)

    event.save(force_insert=True)
    _on_commit(signals.event_received, event=event)
    if app_settings.PROCESSING == "deferred":
        from openim_sync.tasks import enqueue

        enqueue(event)
        return Outcome(event, EventStatus.RECEIVED, "Queued for processing.")
    return process(event)


def process(event):
    """Apply a stored event to the mirror and record the outcome on it."""
    try:
        return _process(event)
    except DATABASE_DOWN as exc:
        raise _unavailable(exc, f"processing event #{event.pk}") from exc


def _unavailable(exc, doing):
    # The reply names only the error class; the log keeps the database's own message.
    logger.warning("Database unavailable while %s: %s: %s", doing, type(exc).__name__, exc)
    return DatabaseUnavailable(f"The database is unavailable ({type(exc).__name__}).")


def _process(event):
    adapter = adapter_for(event.protocol)
    event.attempts += 1
    try:
        payload = event.payload
        if payload is None:
            payload = decode_body(bytes(event.body or b""))
        command = adapter.resolve_command(event.url_command, payload)
    except BadDelivery as exc:
        return _finish(event, EventStatus.REJECTED, exc.message, STATUS_FIELDS)
    reparsed = event.payload is None or event.command != command
    event.payload, event.command = payload, _command_column(command)
    save_fields = STATUS_FIELDS + (["payload", "command"] if reparsed else [])

    spec = registry.lookup(event.protocol, command)
    ignored = _ignored_reason(adapter, command, spec)
    if ignored is not None:
        return _finish(event, EventStatus.IGNORED, ignored, save_fields)

    serializer = spec.serializer(data=payload)
    if not serializer.is_valid():
        return _finish(event, EventStatus.REJECTED, describe_errors(serializer.errors), save_fields)
    data = serializer.validated_data
    version = data.get(spec.version_field) if spec.version_field else None
    if version is None:
        version = event.received_ms
    context = registry.Context(event=event, version=version, command=command)

    try:
        with transaction.atomic():
            changed = writer.apply(spec.handler(data, context), event=event, version=version)
            _mark(event, EventStatus.PROCESSED, "")
            event.traceback = ""  # a replay that succeeds drops the old failure
            event.save(update_fields=save_fields)
            _on_commit(signals.event_processed, event=event, changed=changed)
    except DATABASE_DOWN:
        raise
    except Exception as exc:
        event.traceback = storable(traceback.format_exc())
        return _finish(event, EventStatus.FAILED, f"{type(exc).__name__}: {exc}", save_fields)
    return Outcome(event, EventStatus.PROCESSED, changed=changed)


def _ignored_reason(adapter, command, spec):
    """Why ``command`` changes nothing in the mirror; None when it has a handler."""
    if spec is None:
        return f"Unknown {adapter.name} command {command!r}: stored, nothing applied."
    return spec.ignored_reason if spec.ignored else None


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


def _store_final(event, status, reason, http_status=0):
    """Store a delivery whose outcome is already known, in its one INSERT."""
    _mark(event, status, reason)
    event.save(force_insert=True)
    _on_commit(signals.event_received, event=event)
    _on_commit(signals.event_processed, event=event, changed=[])
    return Outcome(event, status, reason, http_status=http_status)


def _finish(event, status, reason, save_fields):
    _mark(event, status, reason)
    if status != EventStatus.FAILED:
        event.traceback = ""
    event.save(update_fields=save_fields)
    _on_commit(signals.event_processed, event=event, changed=[])
    return Outcome(event, status, reason)


def _mark(event, status, reason):
    # Reasons may quote the input; PostgreSQL refuses NUL characters in text columns.
    event.status, event.reason, event.processed_at = status, storable(reason), timezone.now()


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
    # One failing host receiver must neither hide the others nor disturb the stored event.
    for receiver, result in signal.send_robust(sender=CallbackEvent, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "openim_sync signal receiver %r failed for event #%s",
                receiver,
                kwargs["event"].pk,
                exc_info=result,
            )
