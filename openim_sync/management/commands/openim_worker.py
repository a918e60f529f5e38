"""Apply deferred deliveries: claim ``received`` events in batches and apply them."""

from django.core.management.base import CommandError

from openim_sync import worker
from openim_sync.exceptions import DatabaseUnavailable
from openim_sync.management.base import AppCommand


class Command(AppCommand):
    help = (
        "Apply the events that PROCESSING = 'deferred' stored as 'received', in batches, until "
        "stopped (SIGTERM or Ctrl-C finish the current batch first). Several workers may run at "
        "once on PostgreSQL (each batch is claimed with FOR UPDATE SKIP LOCKED); run one on SQLite."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size",
            type=int,
            default=worker.BATCH_SIZE,
            help="Events claimed and applied per transaction (default: %(default)s).",
        )
        parser.add_argument(
            "--poll",
            type=float,
            default=worker.POLL_SECONDS,
            help="Seconds to wait before looking again when nothing is waiting "
            "(default: %(default)s).",
        )
        parser.add_argument(
            "--once",
            action="store_true",
            help="Drain the backlog, then exit (for cron, tests and benchmarks).",
        )

    def handle(self, *args, batch_size, poll, once, verbosity, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")

        def log(message):
            if verbosity >= 1:
                self.stdout.write(message)

        if verbosity >= 1 and not once:
            log(f"openim_worker: waiting for received events (batches of {batch_size}).")
        runner = worker.Worker(batch_size=batch_size, poll=poll, once=once, log=log)
        try:
            stats = runner.run()
        except DatabaseUnavailable as exc:
            raise CommandError(f"Stopped: {exc}") from exc
        if stats.failed:
            raise CommandError(
                f"{stats.failed} event(s) failed; see their reason and traceback in admin and "
                "replay them with `manage.py openim_replay` once the cause is fixed.",
                returncode=1,
            )
