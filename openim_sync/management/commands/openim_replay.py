"""Re-run stored callback events through the pipeline (the same path as a live delivery)."""

from collections import Counter

from django.core.management.base import BaseCommand, CommandError

from openim_sync import pipeline
from openim_sync.exceptions import DatabaseUnavailable
from openim_sync.models import CallbackEvent, EventStatus

BATCH_SIZE = 500


class Command(BaseCommand):
    help = (
        "Replay stored callback events through the pipeline. By default replays failed and "
        "rejected events; exits with status 1 while any replayed event still fails."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--id",
            dest="ids",
            type=int,
            action="append",
            default=[],
            help="Replay this event id (repeatable).",
        )
        parser.add_argument(
            "--status",
            dest="statuses",
            action="append",
            default=[],
            choices=EventStatus.values,
            help="Replay events with this status (repeatable; default: failed and rejected).",
        )
        parser.add_argument(
            "--command",
            dest="commands",
            action="append",
            default=[],
            help="Only events of this command (repeatable).",
        )
        parser.add_argument("--all", action="store_true", help="Every stored event, oldest first.")

    def handle(self, *args, ids, statuses, commands, all, **options):
        events = CallbackEvent.objects.order_by("id")
        if ids:
            events = events.filter(pk__in=ids)
        elif not all:
            events = events.filter(
                status__in=statuses or [EventStatus.FAILED, EventStatus.REJECTED]
            )
        if commands:
            events = events.filter(command__in=commands)

        outcomes = Counter()
        last_id = 0
        while True:
            batch = list(events.filter(pk__gt=last_id)[:BATCH_SIZE])
            if not batch:
                break
            for event in batch:
                try:
                    outcome = pipeline.process(event)
                except DatabaseUnavailable as exc:
                    raise CommandError(str(exc)) from exc
                outcomes[outcome.status] += 1
                if options["verbosity"] >= 2 or outcome.status == EventStatus.FAILED:
                    self.stdout.write(
                        f"#{event.pk} {event.command}: {outcome.status} {outcome.reason}"
                    )
            last_id = batch[-1].pk

        total = sum(outcomes.values())
        summary = ", ".join(f"{count} {status}" for status, count in sorted(outcomes.items()))
        self.stdout.write(f"Replayed {total} event(s){': ' + summary if summary else ''}.")
        if outcomes[EventStatus.FAILED]:
            raise SystemExit(1)
