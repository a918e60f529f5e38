"""Deferred processing: the event table is the queue.

With ``PROCESSING = "deferred"`` receiving is one INSERT of the event as ``received``. A worker
(:func:`run`, behind ``manage.py openim_worker``) claims the oldest ``received`` events in batches
and applies each batch with :func:`pipeline.process_events`, in the transaction that claimed it.
On PostgreSQL the claim is ``SELECT ... FOR UPDATE SKIP LOCKED``, so workers on several machines
share one backlog without overlap; on SQLite run one worker.
"""

import logging
import signal
import time
from dataclasses import dataclass, field

from django.db import connection, transaction

from openim_sync import pipeline
from openim_sync.models import CallbackEvent, EventStatus

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
POLL_SECONDS = 0.2
LOG_EVERY_SECONDS = 10.0


def claim_and_process(batch_size=BATCH_SIZE, after=0):
    """Apply one batch of the backlog (events with ids above ``after``); return its outcomes
    (empty: nothing was waiting)."""
    with transaction.atomic():
        events = CallbackEvent.objects.filter(status=EventStatus.RECEIVED, pk__gt=after)
        if connection.features.has_select_for_update_skip_locked:
            events = events.select_for_update(skip_locked=True)
        batch = list(events.order_by("pk").defer("body", "headers")[:batch_size])
        if not batch:
            return []
        return pipeline.process_events(batch)


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    events: int = 0
    batches: int = 0
    failed: int = 0
    logged_at: float = field(default_factory=time.monotonic)
    logged_events: int = 0

    def add(self, outcomes):
        self.events += len(outcomes)
        self.batches += 1
        self.failed += sum(1 for o in outcomes if o.status == EventStatus.FAILED)

    def rate_line(self, now):
        span = max(now - self.logged_at, 1e-9)
        rate = (self.events - self.logged_events) / span
        self.logged_at, self.logged_events = now, self.events
        return f"{self.events} event(s) applied ({self.failed} failed), {rate:.0f} events/s"


class Worker:
    """Claims and applies batches until stopped (SIGTERM/SIGINT: finish the batch, then stop)."""

    def __init__(self, *, batch_size=BATCH_SIZE, poll=POLL_SECONDS, once=False, log=None):
        self.batch_size, self.poll, self.once = batch_size, poll, once
        self.log = log or logger.info
        self.stopping = False
        self.stats = Stats()

    def stop(self, *_args):
        if not self.stopping:
            self.log("Stopping after the current batch.")
        self.stopping = True

    def run(self):
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._loop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.stats

    def _loop(self):
        # While batches come back full, the next claim starts after the last id claimed: the
        # index entries of events already applied (dead until VACUUM) are not walked again on
        # every claim. A short batch means the backlog's end: start again from the first id,
        # where events committed late with lower ids (or skipped while locked) wait.
        log_every = LOG_EVERY_SECONDS
        after = 0
        while not self.stopping:
            outcomes = claim_and_process(self.batch_size, after)
            if outcomes:
                self.stats.add(outcomes)
            now = time.monotonic()
            if outcomes and now - self.stats.logged_at >= log_every:
                self.log(self.stats.rate_line(now))
            if len(outcomes) == self.batch_size:
                after = outcomes[-1].event.pk
                continue
            if after:
                after = 0
                continue
            if not outcomes:
                if self.once:
                    break
                time.sleep(self.poll)
        if self.stats.events:
            self.log(self.stats.rate_line(time.monotonic()))
