"""Deferred processing: with ``PROCESSING = "deferred"`` a django.tasks worker applies events.

The view stores the event (``received``), enqueues :func:`process_event` once the row is
committed, and answers at once. A worker (for example ``manage.py db_worker`` of django-tasks-db,
on as many machines as needed) then runs the event through :func:`pipeline.process`, the same
path as inline processing and replays.

A task fails exactly when its event does: the event is left ``failed`` with its reason and
traceback (visible in admin, replayable with ``openim_replay``) and the task raises, so the task
backend shows it as failed too. If the event cannot even be marked (the database is down), it
stays ``received``; ``openim_replay`` picks up such stale events.
"""

import logging
import traceback

from django.db import transaction
from django.tasks import task
from django.utils import timezone

from openim_sync.conf import app_settings

logger = logging.getLogger(__name__)


class EventFailed(Exception):
    """The event could not be applied; it is stored as ``failed``."""


@task
def process_event(event_id):
    from openim_sync import pipeline
    from openim_sync.models import CallbackEvent, EventStatus

    event = CallbackEvent.objects.filter(pk=event_id).first()
    if event is None:
        return "missing"  # pruned or deleted meanwhile
    try:
        outcome = pipeline.process(event)
    except Exception as exc:
        _mark_failed(event_id, exc)
        raise
    if outcome.status == EventStatus.FAILED:
        raise EventFailed(f"Event #{event_id} ({event.command}) failed: {outcome.reason}")
    return outcome.status


def _mark_failed(event_id, exc):
    from openim_sync.models import CallbackEvent, EventStatus
    from openim_sync.protocols.base import storable

    try:
        CallbackEvent.objects.filter(pk=event_id, status=EventStatus.RECEIVED).update(
            status=EventStatus.FAILED,
            reason=storable(f"{type(exc).__name__}: {exc}"),
            traceback=storable(traceback.format_exc()),
            processed_at=timezone.now(),
        )
    except Exception:
        logger.exception("Could not mark event #%s failed; it stays 'received'.", event_id)


def enqueue(event):
    """Queue ``event`` for a worker once the current transaction (if any) commits."""
    event_id = event.pk

    def send():
        try:
            process_event.using(backend=app_settings.TASK_BACKEND).enqueue(event_id)
        except Exception:
            # The event is stored; `openim_replay` applies it once it counts as stale.
            logger.exception("Could not enqueue event #%s; it stays 'received'.", event_id)

    transaction.on_commit(send)
