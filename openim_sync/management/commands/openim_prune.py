"""Delete old callback events in small batches, keeping the ones that still matter.

Kept whatever their age: events still referenced as the last writer (``last_event``) of a mirror
row, and, unless ``--include-failed``, events that never applied cleanly (failed, rejected, or
still received), so they stay visible and replayable.
"""

from datetime import timedelta

from django.core.management.base import CommandError
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from openim_sync.conf import app_settings
from openim_sync.management.base import AppCommand
from openim_sync.models import (
    BlockedUser,
    CallbackEvent,
    EventStatus,
    Friend,
    GroupMember,
    ImGroup,
    ImUser,
    OnlineSession,
)

MIRROR_MODELS = (ImUser, ImGroup, GroupMember, Friend, BlockedUser, OnlineSession)
UNFINISHED = (EventStatus.FAILED, EventStatus.REJECTED, EventStatus.RECEIVED)
BATCH_SIZE = 1000


def referenced():
    """Events some mirror row names as the last event that changed it."""
    condition = None
    for model in MIRROR_MODELS:
        exists = Exists(model.objects.filter(last_event=OuterRef("pk")))
        condition = exists if condition is None else condition | exists
    return condition


class Command(AppCommand):
    help = (
        "Delete callback events older than OPENIM_SYNC['EVENT_RETENTION_DAYS'] in batches. "
        "Keeps events that are the last writer of a mirror row and, unless --include-failed, "
        "failed, rejected and unprocessed ones."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, help="Retention in days (default: EVENT_RETENTION_DAYS)."
        )
        parser.add_argument(
            "--include-failed",
            action="store_true",
            help="Also delete old failed, rejected and never-processed (received) events.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=BATCH_SIZE,
            help=f"Events deleted per transaction (default: {BATCH_SIZE}).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count; delete nothing.")

    def handle(self, *args, days, include_failed, batch_size, dry_run, **options):
        days = app_settings.EVENT_RETENTION_DAYS if days is None else days
        if days is None or days < 0:
            raise CommandError("The retention must be a number of days >= 0.")
        cutoff = timezone.now() - timedelta(days=days)
        old = CallbackEvent.objects.filter(received_at__lt=cutoff)
        candidates = old.exclude(referenced())
        if not include_failed:
            candidates = candidates.exclude(status__in=UNFINISHED)

        if dry_run:
            total_old = old.count()
            count = candidates.count()
            self.stdout.write(
                f"Dry run: {count} of {total_old} event(s) received before "
                f"{cutoff:%Y-%m-%d %H:%M:%S %Z} would be deleted; {total_old - count} kept."
            )
            return

        deleted, last = 0, 0
        while True:
            ids = list(
                candidates.filter(pk__gt=last)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                break
            last = ids[-1]
            # One short transaction per batch; the condition is checked again as it deletes.
            with transaction.atomic():
                deleted += candidates.filter(pk__in=ids).only("pk").delete()[0]
            if options["verbosity"] >= 2:
                self.stdout.write(f"Deleted {deleted} event(s) so far...")
        self.stdout.write(
            f"Deleted {deleted} event(s) received before {cutoff:%Y-%m-%d %H:%M:%S %Z}."
        )
