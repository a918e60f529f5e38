"""Make the mirror equal to what an IM server's REST API says now (see docs/reconcile.md)."""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from openim_sync.management.base import AppCommand
from openim_sync.models import ReconcileRun, RunStatus
from openim_sync.reconcile import KINDS, PROTOCOLS, RestError, describe, reconcile
from openim_sync.reconcile.resync import configured_protocols

BAR = 30
KIND_HELP = {
    "users": "user profiles",
    "groups": "group profiles, owners, dismissals",
    "members": "group memberships, roles, cards, mutes",
    "friends": "friendships and remarks",
    "blocks": "block lists",
    "online": "online sessions",
}


class Command(AppCommand):
    help = (
        "Read users, groups, members, friends, blocks and online sessions from OpenIM's or "
        "Tencent Cloud Chat's REST API and write them to the mirror, each value at the time its "
        "request was sent (a newer callback still wins). Exits 1 when anything failed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "kinds",
            nargs="*",
            metavar="KIND",
            help="What to sync, in this order: "
            + "; ".join(f"{k} ({v})" for k, v in KIND_HELP.items())
            + ". Default: all.",
        )
        parser.add_argument(
            "--protocol",
            choices=PROTOCOLS,
            help="The server to read (default: the one configured; required when both are).",
        )
        parser.add_argument(
            "--ids",
            nargs="+",
            metavar="ID",
            help="Only these ids: user ids for users, friends, blocks and online; group ids "
            "for groups and members. Accepts comma-separated lists.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Print what would change, row by row, and a summary; write nothing.",
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help="Tombstone rows the server no longer has (after a complete listing and a "
            "per-id check). Refused above RECONCILE_PRUNE_MAX_SHARE of a kind unless --force.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="With --prune: prune even above RECONCILE_PRUNE_MAX_SHARE.",
        )
        parser.add_argument(
            "--page-size",
            type=int,
            metavar="N",
            help="Items per listing page (OpenIM default 500; Tencent default and maximum 100/200).",
        )
        parser.add_argument(
            "--max-rps",
            type=float,
            metavar="N",
            help="At most N requests per second (default: RECONCILE_MAX_RPS, else the "
            "server's own limits).",
        )
        parser.add_argument(
            "--resume",
            nargs="?",
            const="last",
            metavar="RUN",
            help="Go on with an interrupted run (its id, or the newest interrupted one), with "
            "its kinds and options.",
        )

    def handle(self, *args, **options):
        self.verbosity = options["verbosity"]
        if options["ids"] and not options["kinds"]:
            raise CommandError(
                "--ids needs the kinds to read: user ids go with users, friends, blocks and "
                "online; group ids with groups and members (e.g. `openim_reconcile members "
                "--ids g1 g2`)."
            )
        kinds = options["kinds"] or list(KINDS)
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise CommandError(f"Unknown kind {unknown[0]!r}: choose from {', '.join(KINDS)}.")
        if options["page_size"] is not None and options["page_size"] < 1:
            raise CommandError("--page-size must be at least 1.")
        if options["max_rps"] is not None and options["max_rps"] <= 0:
            raise CommandError("--max-rps must be more than 0.")
        resume = self._resume(options["resume"]) if options["resume"] else None
        protocol = resume.protocol if resume else self._protocol(options["protocol"])
        ids = None
        if options["ids"]:
            ids = sorted({part for value in options["ids"] for part in value.split(",") if part})
        dry_run = resume.dry_run if resume else options["dry_run"]
        try:
            run = reconcile(
                protocol,
                kinds,
                ids=ids,
                dry_run=dry_run,
                prune=options["prune"],
                force=options["force"],
                page_size=options["page_size"],
                max_rps=options["max_rps"],
                resume=resume,
                on_row=self._row if dry_run or self.verbosity >= 2 else None,
                on_kind=self._kind,
                on_progress=self._progress,
            )
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        except KeyboardInterrupt:
            run = ReconcileRun.objects.filter(protocol=protocol).first()
            self.stderr.write(
                f"Interrupted: run #{run.pk} goes on with `manage.py openim_reconcile --resume "
                f"{run.pk}`."
            )
            raise SystemExit(130) from None
        except RestError as exc:
            raise CommandError(f"The {protocol} REST API failed: {exc}") from None
        self._summary(run)
        if run.status != RunStatus.SUCCEEDED:
            raise SystemExit(1)

    def _protocol(self, protocol):
        if protocol:
            return protocol
        configured = configured_protocols()
        if len(configured) == 1:
            return configured[0]
        if not configured:
            raise CommandError(
                "No REST API is configured: set OPENIM_SYNC['OPENIM_API_URL'] (with "
                "OPENIM_ADMIN_USER_ID and OPENIM_API_SECRET) or TENCENT_ADMIN_IDENTIFIER and "
                "TENCENT_SECRET_KEY. See docs/reconcile.md."
            )
        raise CommandError("Both OpenIM and Tencent are configured: pass --protocol.")

    def _resume(self, value):
        runs = ReconcileRun.objects.exclude(status=RunStatus.SUCCEEDED)
        run = runs.first() if value == "last" else runs.filter(pk=_int(value)).first()
        if run is None:
            raise CommandError(
                "No interrupted reconcile run to resume."
                if value == "last"
                else f"No unfinished reconcile run #{value}."
            )
        return run

    def _kind(self, kind, state, run):
        if self.verbosity < 1:
            return
        if state == "start":
            self._shown = -1
            self.stderr.write(f"{kind}: reading…")
        else:
            self._clear_bar()
            self.stderr.write(f"{kind}: {_counts(run.counts.get(kind, {}))}")

    def _progress(self, kind, done, total):
        """A bar on a terminal; otherwise a line at every tenth (logs, cron mail)."""
        if self.verbosity < 1 or not total:
            return
        if self.stderr.isatty():
            filled = BAR * min(done, total) // total
            bar = "#" * filled + "." * (BAR - filled)
            self.stderr.write(f"\r{kind:8} [{bar}] {done}/{total}", ending="")
            self.stderr.flush()
            return
        tenth = 10 * min(done, total) // total
        if tenth > getattr(self, "_shown", -1):
            self._shown = tenth
            self.stderr.write(f"{kind}: {done} of {total} done")

    def _clear_bar(self):
        if self.stderr.isatty():
            self.stderr.write("\r" + " " * (BAR + 30) + "\r", ending="")

    def _row(self, kind, model, key, diff):
        if self.verbosity >= 1:
            self.stdout.write(describe(kind, model, key, diff))

    def _summary(self, run):
        if self.verbosity < 1 and run.status == RunStatus.SUCCEEDED:
            return
        verb = "Would change" if run.dry_run else "Changed"
        lines = [f"Reconcile #{run.pk} ({run.protocol}, {run.status}):"]
        for kind in run.scope:
            counts = run.counts.get(kind, {})
            lines.append(f"  {kind:8} {_counts(counts)}")
        requests = run.counts.get("requests", {})
        lines.append(f"  {sum(requests.values())} request(s). {verb} what is listed as changed.")
        for error in run.errors[-10:]:
            lines.append(f"  error: {error}")
        if run.status == RunStatus.FAILED:
            self.stderr.write("\n".join(lines))
        else:
            self.stdout.write("\n".join(lines))


def _counts(counts):
    names = ("read", "changed", "removed", "absent", "missing", "failed")
    return ", ".join(f"{counts.get(n, 0)} {n}" for n in names if counts.get(n) or n in names[:2])


def _int(value):
    try:
        return int(value)
    except ValueError:
        raise CommandError(f"--resume takes a run id, not {value!r}.") from None
