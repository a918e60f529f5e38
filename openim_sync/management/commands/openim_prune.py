"""Delete old callback events in bounded batches, keeping the ones that still matter.

How long an event is kept depends on its status: ``EVENT_RETENTION_BY_STATUS`` (days, or None for
ever), else ``EVENT_RETENTION_DAYS`` (``--days`` for one run); failed, rejected and still
``received`` events that the first does not list are kept unless ``--include-failed``. Events still
referenced as the last writer (``last_event``) of a mirror row are kept whatever their age. The
ignored-event counters (``IGNORED_EVENTS = "count"``) follow the ``ignored`` retention.

The walk is a keyset over the primary key, from the oldest event to the newest old enough for
any status: each batch is ``--batch-size`` consecutive ids, one short transaction that runs one
DELETE over that id range (no row outside the range is locked, new deliveries insert at the top),
after one index range scan per referencing table for the ids in the range that must stay.
"""

import time
from datetime import timedelta

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import F, Max
from django.utils import timezone

from openim_sync import sql
from openim_sync.conf import app_settings
from openim_sync.management.base import AppCommand
from openim_sync.models import CallbackEvent, EventStatus, IgnoredEventCount

UNFINISHED = (EventStatus.FAILED, EventStatus.REJECTED, EventStatus.RECEIVED)
BATCH_SIZE = 2000
#: SQLite takes at most 32,766 parameters per statement; a batch's kept ids are parameters.
MAX_BATCH_SIZE = 30000
#: Exit status when --max-seconds stopped the run before the end (run it again).
STOPPED_EARLY = 3
PROGRESS_EVERY_SECONDS = 1.0
#: How much later than its ``received_at`` an event may be inserted (a slow request), at most.
DISORDER = timedelta(minutes=10)


def referencing_fields():
    """``(model, column)`` of every foreign key to CallbackEvent (the mirror's ``last_event``,
    and any model a host or a later version adds): the ids they name are never deleted."""
    found = []
    for relation in CallbackEvent._meta.get_fields(include_hidden=True):
        if relation.auto_created and (relation.one_to_many or relation.one_to_one):
            field = relation.field
            if field.concrete and field.model._meta.managed and not field.model._meta.proxy:
                found.append((field.model, field.attname))
    return found


def retention_days(include_failed=False, days=None):
    """``{status: days or None}``: the effective retention of every status."""
    default = app_settings.EVENT_RETENTION_DAYS if days is None else days
    by_status = app_settings.EVENT_RETENTION_BY_STATUS or {}
    plan = {}
    for status in EventStatus.values:
        if status in by_status:
            plan[status] = by_status[status]
        elif status in UNFINISHED and not include_failed:
            plan[status] = None
        else:
            plan[status] = default
    return plan


class Command(AppCommand):
    help = (
        "Delete callback events older than their status's retention (EVENT_RETENTION_BY_STATUS, "
        "else EVENT_RETENTION_DAYS) in short batches by id, and ignored-event counts older than "
        "the 'ignored' retention. Keeps events that are the last writer of a mirror row and, "
        "unless --include-failed or EVENT_RETENTION_BY_STATUS says otherwise, failed, rejected "
        f"and unprocessed ones. Exit status: 0 done, {STOPPED_EARLY} stopped by --max-seconds "
        "(run again), 1 error."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            type=int,
            help="Retention in days for this run, instead of EVENT_RETENTION_DAYS (statuses "
            "listed in EVENT_RETENTION_BY_STATUS keep theirs).",
        )
        parser.add_argument(
            "--include-failed",
            action="store_true",
            help="Also delete old failed, rejected and never-processed (received) events "
            "(unless EVENT_RETENTION_BY_STATUS lists them).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=BATCH_SIZE,
            help=f"Consecutive event ids per batch, one transaction each (default: {BATCH_SIZE}).",
        )
        parser.add_argument(
            "--max-seconds",
            type=float,
            help=f"Stop after the batch that passes this many seconds; exit {STOPPED_EARLY} if "
            "old events may remain (the next run continues).",
        )
        parser.add_argument(
            "--pause",
            type=float,
            default=0.0,
            help="Seconds to sleep between batches, to leave the database to the receivers.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )

    def handle(self, *args, **options):
        days, batch_size = options["days"], options["batch_size"]
        if days is not None and days < 0:
            raise CommandError("--days must be a number of days >= 0.")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be from 1 to {MAX_BATCH_SIZE}.")
        if options["max_seconds"] is not None and options["max_seconds"] <= 0:
            raise CommandError("--max-seconds must be positive.")
        if options["pause"] < 0:
            raise CommandError("--pause must be >= 0.")
        self.verbosity = options["verbosity"]
        self.dry_run = options["dry_run"]
        self.now = timezone.now()
        plan = retention_days(options["include_failed"], days)
        for status, value in plan.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise CommandError(f"The retention of {status!r} is {value!r}, not a number.")
        self.cutoffs = {
            status: self.now - timedelta(days=value)
            for status, value in plan.items()
            if value is not None
        }
        if self.verbosity >= 2:
            self.stdout.write(self.describe(plan))

        self.started = time.monotonic()
        self.deadline = (
            None if options["max_seconds"] is None else self.started + options["max_seconds"]
        )
        self.interactive = self.stderr.isatty()
        self.show_progress = self.verbosity >= 2 or (self.verbosity >= 1 and self.interactive)
        self.progress_line = False
        self.progress_at = 0.0
        self.deleted, self.kept, self.batches = {}, 0, 0
        self.counts_deleted = 0
        stopped = False
        try:
            self.counts_deleted = self.prune_counts(plan[EventStatus.IGNORED])
            stopped = self.prune_events(batch_size, options["pause"])
        except KeyboardInterrupt:
            self.end_progress()
            raise CommandError(f"Interrupted. {self.summary()}", returncode=130) from None
        self.end_progress()
        if self.verbosity >= 1:
            self.stdout.write(self.summary())
        if stopped:
            raise CommandError(
                f"Stopped after --max-seconds ({options['max_seconds']:g}) with old events "
                "possibly left; run it again to continue.",
                returncode=STOPPED_EARLY,
            )

    # -- what to delete ---------------------------------------------------------------------

    def describe(self, plan):
        parts = []
        for status, value in plan.items():
            if value is None:
                parts.append(f"{status} kept")
            else:
                parts.append(
                    f"{status} {value} day(s) (before {self.cutoffs[status]:%Y-%m-%d %H:%M})"
                )
        return "Retention: " + "; ".join(parts) + "."

    def condition(self):
        """SQL and parameters: an event is old enough for its status."""
        ops = connections[DEFAULT_DB_ALIAS].ops
        parts, params = [], []
        for status, cutoff in sorted(self.cutoffs.items()):
            parts.append("(status = %s AND received_at < %s)")
            params += [status, ops.adapt_datetimefield_value(cutoff)]
        return "(" + " OR ".join(parts) + ")", params

    def upper_bound(self):
        """The highest id of an event old enough for some status (None: nothing to walk).

        Ids follow ``received_at`` (set when the request arrives, a moment before the INSERT), so
        the highest old id is among the events received within :data:`DISORDER` before the
        newest old one: two index range scans on ``received_at``, however large the table.
        """
        if not self.cutoffs:
            return None
        newest = max(self.cutoffs.values())
        old = CallbackEvent.objects.filter(received_at__lt=newest)
        latest = old.order_by("-received_at").values_list("received_at", flat=True).first()
        if latest is None:
            return None
        # pk + 0: not an index column, so no backward walk of the primary key through the
        # fresh events to the first old one.
        window = old.filter(received_at__gte=latest - DISORDER)
        return window.aggregate(top=Max(F("pk") + 0))["top"]

    def prune_counts(self, days):
        """The ignored-event counters whose whole hour is older than the ignored retention."""
        if days is None:
            return 0
        old = IgnoredEventCount.objects.filter(
            hour__lte=self.now - timedelta(days=days) - timedelta(hours=1)
        )
        if self.dry_run:
            return old.count()
        with transaction.atomic():
            return old.delete()[0]

    # -- the walk -----------------------------------------------------------------------------

    def prune_events(self, batch_size, pause):
        """Walk the ids in batches; returns True when stopped by --max-seconds before the end."""
        upper = self.upper_bound()
        if upper is None:
            return False
        first = CallbackEvent.objects.order_by("pk").values_list("pk", flat=True).first() or 1
        self.upper, self.first = upper, first
        last = first - 1
        condition, params = self.condition()
        fields = referencing_fields()
        while last < upper:
            ids = CallbackEvent.objects.filter(pk__gt=last, pk__lte=upper).order_by("pk")
            nth = list(ids.values_list("pk", flat=True)[batch_size - 1 : batch_size])
            hi = nth[0] if nth else upper
            for attempt in range(3):
                try:
                    self.batch(last, hi, condition, params, fields)
                    break
                except IntegrityError:
                    # A mirror row started referencing an event of this batch while it ran
                    # (the foreign key refused the DELETE): read the kept ids again.
                    if attempt == 2:
                        raise
            last = hi
            self.batches += 1
            self.progress(last)
            if self.deadline is not None and time.monotonic() >= self.deadline and last < upper:
                return True
            if pause:
                time.sleep(pause)
        return False

    def batch(self, lo, hi, condition, params, fields):
        """One transaction: delete the old events with ids in (lo, hi] that nothing references."""
        connection = connections[DEFAULT_DB_ALIAS]
        postgres = connection.vendor == "postgresql"
        table = sql.quote(CallbackEvent._meta.db_table)
        with transaction.atomic():
            sql.commit_without_flush()  # a lost batch is only events that are still there
            keep = set()
            for model, column in fields:
                keep.update(
                    model._base_manager.filter(
                        **{f"{column}__gt": lo, f"{column}__lte": hi}
                    ).values_list(column, flat=True)
                )
            keep = sorted(keep)
            where = f"id > %s AND id <= %s AND {condition}"
            where_params = [lo, hi, *params]
            with connection.cursor() as cursor:
                if keep:
                    if postgres:  # one array parameter: the same statement whatever the count
                        among, keep_params = "id = ANY(%s::bigint[])", [keep]
                    else:
                        among, keep_params = f"id IN ({', '.join(['%s'] * len(keep))})", keep
                    cursor.execute(
                        f"SELECT count(*) FROM {table} WHERE {where} AND {among}",
                        [*where_params, *keep_params],
                    )
                    self.kept += cursor.fetchone()[0]
                    where += f" AND NOT ({among})"
                    where_params += keep_params
                if self.dry_run:
                    cursor.execute(
                        f"SELECT status, count(*) FROM {table} WHERE {where} GROUP BY status",
                        where_params,
                    )
                    rows = cursor.fetchall()
                else:
                    cursor.execute(
                        f"DELETE FROM {table} WHERE {where} RETURNING status", where_params
                    )
                    rows = [(status, 1) for (status,) in cursor.fetchall()]
        for status, count in rows:
            self.deleted[status] = self.deleted.get(status, 0) + count

    # -- output -------------------------------------------------------------------------------

    def rate(self):
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return elapsed, sum(self.deleted.values()) / elapsed

    def progress(self, last):
        if not self.show_progress:
            return
        now = time.monotonic()
        every = 0.2 if self.interactive else PROGRESS_EVERY_SECONDS
        if self.verbosity < 3 and now - self.progress_at < every and last < self.upper:
            return
        self.progress_at = now
        span = max(self.upper - self.first + 1, 1)
        share = 100 * (last - self.first + 1) / span
        _, rate = self.rate()
        verb = "would delete" if self.dry_run else "deleted"
        line = (
            f"openim_prune: {verb} {sum(self.deleted.values()):,} event(s), kept "
            f"{self.kept:,} referenced, at id {last:,} of {self.upper:,} ({share:.0f}%), "
            f"{rate:,.0f} events/s"
        )
        if self.interactive:
            self.stderr.write("\r" + line, ending="")
            self.stderr.flush()
            self.progress_line = True
        else:
            self.stderr.write(line)

    def end_progress(self):
        if self.progress_line:
            self.stderr.write("")
            self.progress_line = False

    def summary(self):
        total = sum(self.deleted.values())
        by_status = ", ".join(f"{s} {n}" for s, n in sorted(self.deleted.items()) if n)
        elapsed, rate = self.rate()
        head = "Dry run: would delete" if self.dry_run else "Deleted"
        text = f"{head} {total} event(s)"
        if by_status:
            text += f" ({by_status})"
        text += f" and {self.counts_deleted} ignored-event count row(s)"
        text += f" in {elapsed:.1f}s"
        if total:
            text += f" ({rate:,.0f} events/s, {self.batches} batch(es))"
        text += f"; kept {self.kept} old event(s) that mirror rows reference."
        return text
