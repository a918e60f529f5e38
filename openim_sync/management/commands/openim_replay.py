"""Re-run stored callback events through the pipeline (the same path as a live delivery).

Replays respect the ordering guard: an event older than what a mirror row already holds changes
nothing, so replaying everything twice leaves the mirror as it was.
"""

import time
from datetime import datetime

from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from openim_sync import replay
from openim_sync.exceptions import DatabaseUnavailable
from openim_sync.management.base import AppCommand
from openim_sync.models import CallbackEvent, EventStatus, Protocol


def when(value):
    """An ISO date or datetime; naive values are in the current time zone."""
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is None:
            raise ValueError(value)
        parsed = datetime(day.year, day.month, day.day)
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


when.__name__ = "ISO date/time"


class Command(AppCommand):
    help = (
        "Replay stored callback events through the pipeline. By default: failed events and "
        "events still 'received' after --stale-minutes (left behind by a crash or an outage); "
        "selectors (--user, --since, --command...) narrow that set, --all widens it to every "
        "status. --rebuild empties the mirror and replays every event. Exits with status 1 "
        "while a replayed event still fails."
    )

    def add_arguments(self, parser):
        add = parser.add_argument
        add(
            "--id",
            dest="ids",
            type=int,
            action="append",
            default=[],
            metavar="ID",
            help="Replay this event, whatever its status (repeatable).",
        )
        add("--from-id", type=int, help="Only events with id >= this.")
        add("--to-id", type=int, help="Only events with id <= this.")
        add(
            "--status",
            dest="statuses",
            action="append",
            default=[],
            choices=EventStatus.values,
            help="Only events with this status (repeatable; default: failed, rejected and "
            "stale received).",
        )
        add("--all", action="store_true", help="Any status (still narrowed by other selectors).")
        add(
            "--include-rejected",
            action="store_true",
            help="Also replay rejected events (they are rejected again unless the code changed).",
        )
        add(
            "--rebuild",
            action="store_true",
            help="Empty the mirror tables, then replay every stored event in id order.",
        )
        add(
            "--no-input",
            "--noinput",
            dest="interactive",
            action="store_false",
            help="Do not ask for confirmation (--rebuild).",
        )
        add(
            "--stale-minutes",
            type=int,
            default=replay.STALE_RECEIVED_MINUTES,
            help="A 'received' event counts as stuck after this many minutes (0: any age; "
            "default: %(default)s).",
        )
        add(
            "--command",
            dest="commands",
            action="append",
            default=[],
            help="Only events of this command (repeatable).",
        )
        add("--protocol", choices=Protocol.values, help="Only events of this protocol.")
        add("--since", type=when, help="Only events received at or after this ISO date/time.")
        add("--until", type=when, help="Only events received before this ISO date/time.")
        add("--user", help="Only events naming this user ID (userID, sendID, *_Account, ...).")
        add("--group", help="Only events naming this group ID (groupID, GroupId).")
        add("--batch-size", type=int, default=replay.BATCH_SIZE, help="Events per query.")
        add("--dry-run", action="store_true", help="List the selected events; change nothing.")

    def handle(self, *args, **options):
        if options["rebuild"]:
            return self.rebuild(options)
        events = self.select(options)
        user, group = options["user"], options["group"]
        accept = None
        if user is not None or group is not None:

            def accept(event):
                return replay.touches(event.payload, user_id=user, group_id=group)

        if options["dry_run"]:
            return self.dry_run(events, accept, options["batch_size"])

        total = events.count()
        if total == 0:
            if options["verbosity"] >= 1:
                self.stdout.write(self.nothing_matched(options))
            return
        progress = Progress(self.stderr, total, every=options["batch_size"])
        report = replay.ReplayReport()
        try:
            replay.replay(
                events,
                accept=accept,
                batch_size=options["batch_size"],
                on_outcome=lambda event, outcome: self.reported(event, outcome, progress, options),
                report=report,
            )
        except DatabaseUnavailable as exc:
            raise CommandError(f"Stopped: {exc} {report.summary()}") from exc
        except KeyboardInterrupt:
            raise CommandError(f"Interrupted. {report.summary()}", returncode=130) from None
        finally:
            progress.close()
        if options["verbosity"] >= 1 or report.failed_ids:
            self.stdout.write(report.summary())
        if report.failed_ids:
            shown = ", ".join(f"#{pk}" for pk in report.failed_ids[:20])
            more = " ..." if len(report.failed_ids) > 20 else ""
            raise CommandError(
                f"{len(report.failed_ids)} event(s) still failed: {shown}{more}. Fix the cause "
                "and replay them again (see each event's reason and traceback in admin).",
                returncode=1,
            )

    def select(self, options):
        events = CallbackEvent.objects.all()
        if options["ids"]:
            events = events.filter(pk__in=options["ids"])
        elif not options["all"]:
            statuses = list(options["statuses"])
            if options["include_rejected"] and statuses:
                statuses.append(EventStatus.REJECTED)
            elif options["include_rejected"]:
                statuses = [*replay.DEFAULT_STATUSES, EventStatus.REJECTED]
            events = replay.default_selection(events, statuses, options["stale_minutes"])
        if options["all"] and options["statuses"]:
            raise CommandError("--all and --status contradict each other: use one.")
        if options["from_id"] is not None:
            events = events.filter(pk__gte=options["from_id"])
        if options["to_id"] is not None:
            events = events.filter(pk__lte=options["to_id"])
        if options["commands"]:
            events = events.filter(command__in=options["commands"])
        if options["protocol"]:
            events = events.filter(protocol=options["protocol"])
        if options["since"]:
            events = events.filter(received_at__gte=options["since"])
        if options["until"]:
            events = events.filter(received_at__lt=options["until"])
        for value in (options["user"], options["group"]):
            if value is not None:
                events = replay.mentioning(events, value)
        return events

    def nothing_matched(self, options):
        if options["ids"] or options["all"]:
            return "No event matched the selectors."
        wider = self.select({**options, "all": True, "statuses": []})
        count = wider.count()
        statuses = ", ".join(options["statuses"]) or "failed or stale received"
        if options["include_rejected"]:
            statuses += ", rejected"
        text = f"Nothing to replay: no {statuses} event matched."
        if count:
            text += f" {count} event(s) of other statuses match the selectors: add --all to replay them."
        return text

    def rebuild(self, options):
        selectors = ("ids", "statuses", "commands", "protocol", "since", "until", "user", "group")
        given = [name for name in selectors if options[name]]
        given += [n for n in ("from_id", "to_id") if options[n] is not None]
        if given or options["all"] or options["dry_run"]:
            raise CommandError("--rebuild replays every event: it takes no selectors or --dry-run.")
        total = CallbackEvent.objects.count()
        if options["interactive"]:
            answer = input(
                f"This empties every mirror table and replays all {total} stored event(s). "
                "Type 'yes' to continue: "
            )
            if answer.strip().lower() != "yes":
                raise CommandError("Rebuild cancelled.")
        progress = Progress(self.stderr, total, every=max(options["batch_size"], 1000))
        report = replay.ReplayReport()
        started = time.monotonic()
        try:
            replay.rebuild(
                batch_size=max(options["batch_size"], replay.REBUILD_BATCH_SIZE),
                on_outcome=lambda event, outcome: self.reported(event, outcome, progress, options),
                report=report,
            )
        except DatabaseUnavailable as exc:
            raise CommandError(f"Rebuild stopped: {exc} {report.summary()}") from exc
        except KeyboardInterrupt:
            raise CommandError(f"Rebuild interrupted. {report.summary()}", returncode=130) from None
        finally:
            progress.close()
        elapsed = time.monotonic() - started
        if options["verbosity"] >= 1:
            rate = report.total / elapsed if elapsed else 0
            self.stdout.write(f"Rebuilt the mirror in {elapsed:.1f}s ({rate:.0f} events/s). ")
            self.stdout.write(report.summary())
        if report.failed_ids:
            raise CommandError(
                f"{len(report.failed_ids)} event(s) failed during the rebuild.", returncode=1
            )

    def dry_run(self, events, accept, batch_size):
        listed = events.defer("body", "headers", "query", "traceback")
        if accept is None:
            listed = listed.defer("payload")
        count = 0
        for batch in replay.in_batches(listed, batch_size):
            for event in batch:
                if accept is not None and not accept(event):
                    continue
                count += 1
                self.stdout.write(
                    f"#{event.pk} {event.received_at:%Y-%m-%d %H:%M:%S} {event.protocol} "
                    f"{event.command or '(no command)'} [{event.status}]"
                )
        self.stdout.write(f"Dry run: {count} event(s) would be replayed.")

    def reported(self, event, outcome, progress, options):
        progress.step()
        if options["verbosity"] >= 2 or outcome.status == EventStatus.FAILED:
            progress.clear()
            self.stdout.write(f"#{event.pk} {event.command}: {outcome.status} {outcome.reason}")


class Progress:
    """A bar on a terminal; otherwise a plain count after every batch (logs, cron mail)."""

    WIDTH = 30

    def __init__(self, out, total, every):
        self.out, self.total, self.every, self.done = out, total, every, 0
        self.tty = out.isatty()

    def step(self):
        self.done += 1
        if self.tty:
            filled = self.WIDTH * self.done // max(self.total, 1)
            bar = "#" * min(filled, self.WIDTH) + "." * max(self.WIDTH - filled, 0)
            self.out.write(f"\r[{bar}] {self.done}/{self.total}", ending="")
            self.out.flush()
        elif self.done % self.every == 0:
            self.out.write(f"Progress: {self.done} of at most {self.total} event(s) replayed.")

    def clear(self):
        if self.tty:
            self.out.write("\r" + " " * (self.WIDTH + 30) + "\r", ending="")

    def close(self):
        if self.tty and self.done:
            self.out.write("")
