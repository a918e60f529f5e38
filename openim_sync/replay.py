"""Selecting stored events and replaying them, shared by ``openim_replay`` and the admin action.

Everything here walks the events table with keyset pagination (``id > last`` in batches), so a
replay or a prune of a million events holds one batch in memory at a time.
"""

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connections, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from openim_sync import pipeline
from openim_sync.models import CallbackEvent, EventStatus

BATCH_SIZE = 500
#: Statuses replayed when none are asked for: the ones that did not apply cleanly and may apply
#: now. Rejected events are left out: the same code rejects the same payload again.
DEFAULT_STATUSES = (EventStatus.FAILED, EventStatus.RECEIVED)
#: Events fetched per query and applied per transaction by a rebuild.
REBUILD_BATCH_SIZE = 1000
#: A ``received`` event younger than this may still be on its way (inline request running, or
#: queued for a worker); older ones were left behind by a crash or an outage.
STALE_RECEIVED_MINUTES = 10

#: Payload keys naming users (OpenIM ``userID``, ``sendID``...; Tencent ``*_Account``).
USER_KEYS = {"sendid", "recvid", "receiveid", "ownerid", "membersid", "applyid", "fromid", "toid"}


def is_user_key(key):
    key = key.lower()
    if "group" in key:
        return False
    return "userid" in key or key.endswith("_account") or key in USER_KEYS


def is_group_key(key):
    key = key.lower()
    return "group" in key and key.rstrip("s").endswith("id")


def touches(payload, *, user_id=None, group_id=None):
    """Whether ``payload`` names ``user_id`` under a user key and ``group_id`` under a group key."""
    wanted = []
    if user_id is not None:
        wanted.append((user_id, is_user_key))
    if group_id is not None:
        wanted.append((group_id, is_group_key))
    return all(_names(payload, value, predicate) for value, predicate in wanted)


def _names(payload, value, predicate):
    stack = [(payload, None)]
    while stack:
        item, key = stack.pop()
        if isinstance(item, dict):
            stack.extend((child, name) for name, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, key) for child in item)
        elif item == value and key is not None and predicate(key):
            return True
    return False


def mentioning(queryset, value):
    """Prefilter in SQL: events whose stored JSON contains ``value`` as a JSON string.

    PostgreSQL renders ``jsonb`` as text with non-ASCII characters as they are; SQLite keeps the
    text Django wrote (``json.dumps``, non-ASCII escaped). Over-matches are removed by
    :func:`touches`, which looks at the keys.
    """
    vendor = connections[queryset.db].vendor
    needle = json.dumps(value, ensure_ascii=vendor != "postgresql")
    return queryset.annotate(_payload_text=Cast("payload", TextField())).filter(
        _payload_text__contains=needle
    )


def stale_received_before(minutes=STALE_RECEIVED_MINUTES):
    return timezone.now() - timedelta(minutes=minutes)


def in_batches(queryset, size=BATCH_SIZE):
    """Yield lists of at most ``size`` objects in ascending id order (keyset pagination)."""
    queryset = queryset.order_by("pk")
    last = None
    while True:
        page = queryset if last is None else queryset.filter(pk__gt=last)
        batch = list(page[:size])
        if not batch:
            return
        yield batch
        last = batch[-1].pk


@dataclass
class ReplayReport:
    outcomes: Counter = field(default_factory=Counter)
    rows_written: int = 0
    failed_ids: list = field(default_factory=list)

    def add(self, outcome):
        self.outcomes[outcome.status] += 1
        self.rows_written += outcome.rows_written
        if outcome.status == EventStatus.FAILED:
            self.failed_ids.append(outcome.event.pk)

    @property
    def total(self):
        return sum(self.outcomes.values())

    def summary(self):
        parts = [f"{count} {status}" for status, count in sorted(self.outcomes.items())]
        text = f"Replayed {self.total} event(s)"
        if parts:
            text += ": " + ", ".join(parts)
        return text + f"; {self.rows_written} mirror row(s) written."


def replay(events, *, accept=None, batch_size=BATCH_SIZE, on_outcome=None, report=None):
    """Apply the selected events again, oldest id first, one batch (and transaction) at a time.

    ``accept(event)`` can drop events a SQL prefilter over-matched; ``on_outcome(event, outcome)``
    is called after each one (progress, listing). Pass ``report`` to keep the counts so far if
    the run is interrupted.
    """
    report = report if report is not None else ReplayReport()
    for batch in in_batches(events, batch_size):
        if accept is not None:
            batch = [event for event in batch if accept(event)]
        if not batch:
            continue
        for outcome in pipeline.process_events(batch):
            report.add(outcome)
            if on_outcome is not None:
                on_outcome(outcome.event, outcome)
    return report


def default_selection(queryset, statuses=(), stale_minutes=STALE_RECEIVED_MINUTES):
    """Events with ``statuses`` (default: failed, rejected and stale received)."""
    from django.db.models import Q

    statuses = list(statuses or DEFAULT_STATUSES)
    condition = Q(status__in=[s for s in statuses if s != EventStatus.RECEIVED])
    if EventStatus.RECEIVED in statuses:
        received = Q(status=EventStatus.RECEIVED)
        if stale_minutes:
            received &= Q(received_at__lt=stale_received_before(stale_minutes))
        condition |= received
    return queryset.filter(condition)


def all_events():
    return CallbackEvent.objects.all()


def mirror_models():
    from openim_sync.writer import MODEL_ORDER

    return MODEL_ORDER


def clear_mirror():
    """Empty every mirror table (children first); returns the number of rows deleted."""
    deleted = 0
    with transaction.atomic():
        for model in reversed(mirror_models()):
            deleted += model.objects.all().delete()[0]
    return deleted


def rebuild(*, batch_size=REBUILD_BATCH_SIZE, on_outcome=None, report=None):
    """Empty the mirror, then apply every stored event again in id order.

    Each batch commits on its own: while the rebuild runs the mirror is incomplete, and live
    deliveries applied meanwhile are kept (their events are replayed too, and versions order
    them). The result equals the mirror that live processing of the same events produced.
    """
    clear_mirror()
    events = CallbackEvent.objects.defer("body", "headers")
    return replay(events, batch_size=batch_size, on_outcome=on_outcome, report=report)
