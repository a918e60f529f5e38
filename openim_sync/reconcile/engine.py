"""Apply what a source read from an IM server's REST API, and keep the run's record.

A source (:mod:`.openim_source`, :mod:`.tencent_source`) yields :class:`Read` s; each holds the
changes one request (or one complete listing) showed, stamped with the time its first request
was sent. The engine buffers reads, compares them with the mirror (what changed, for counts,
``--dry-run`` and signals) and writes them through :func:`openim_sync.writer.apply_many`: the
same versioned writes callbacks use, so a callback newer than the request wins and an older
one loses.

Rows a complete listing did not show are *absent*; the source confirms each one with a
per-id request before it reports it. ``--prune`` turns confirmed absences into tombstones at
the end of their kind, unless they are more than ``RECONCILE_PRUNE_MAX_SHARE`` of the kind's
present rows in scope (``force`` overrides that).
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from openim_sync import signals, sql, writer
from openim_sync.changes import PRESENT, Change, Merge
from openim_sync.models import ReconcileRun, RunStatus, SyncCursor

from .http import RestError

KINDS = ("users", "groups", "members", "friends", "blocks", "online")
#: Changes buffered before they are written in one transaction.
FLUSH_CHANGES = 2000


@dataclass
class Read:
    kind: str
    sent_ms: int
    changes: list
    #: Items the server returned (users, members...), for the run's "read" count.
    items: int = 0
    #: ``(key, version_id, version)`` of an incremental version log, saved with the changes.
    cursor: tuple | None = None
    #: The last group or owner this read finishes: where an interrupted run goes on.
    done_key: str | None = None
    #: Units of the kind's progress this read completes (users, groups or owners).
    progress: int = 0


@dataclass
class Absent:
    """A row a complete listing did not show and a per-id request confirmed missing."""

    model: object
    key: dict
    sent_ms: int


@dataclass
class Diff:
    """What writing a change would do to its row: ``action`` and ``(field, old, new)``."""

    action: str
    fields: list = field(default_factory=list)


class Engine:
    def __init__(
        self,
        run,
        *,
        dry_run=False,
        prune=False,
        force=False,
        max_share=0.1,
        on_row=None,
        on_progress=None,
    ):
        self.run, self.dry_run, self.prune, self.force = run, dry_run, prune, force
        self.max_share, self.on_row, self.on_progress = max_share, on_row, on_progress
        self.progress = {}
        self.counts = defaultdict(Counter, {k: Counter(v) for k, v in (run.counts or {}).items()})
        self.errors = list(run.errors or [])
        self.pending, self.pending_changes = [], 0
        self.absent = defaultdict(list)
        for kind, rows in (run.resume_state.get("absent") or {}).items():
            self.absent[kind] = [_absent_from_json(row) for row in rows]

    # -- reads ------------------------------------------------------------------------------------

    def add(self, read):
        self.pending.append(read)
        self.pending_changes += len(read.changes)
        self.counts[read.kind]["read"] += read.items
        if read.progress and self.on_progress:
            done, total = self.progress.get(read.kind, (0, None))
            self.progress[read.kind] = (done + read.progress, total)
            self.on_progress(read.kind, done + read.progress, total)
        if self.pending_changes >= FLUSH_CHANGES:
            self.flush()

    def expect(self, kind, total):
        """The kind will read ``total`` users, groups or owners (for progress)."""
        self.progress[kind] = (0, total)

    def mark_absent(self, kind, absent):
        self.absent[kind].extend(absent)

    def missing(self, kind, count):
        """Items the mirror has and the server does not, which cannot be tombstoned (users)."""
        if count:
            self.counts[kind]["missing"] += count

    def failed(self, kind, error, subject=""):
        self.counts[kind]["failed"] += 1
        where = f" ({subject})" if subject else ""
        self.errors.append(f"{kind}{where}: {error}")
        del self.errors[:-100]

    def flush(self):
        reads, self.pending, self.pending_changes = self.pending, [], 0
        if not reads:
            return
        diffs = self._diffs(reads)
        for read in reads:
            self.counts[read.kind]["changed"] += sum(1 for d in diffs[id(read)].values() if d)
            self.counts[read.kind]["removed"] += sum(
                1 for d in diffs[id(read)].values() if d and d.action == "remove"
            )
        if self.on_row:
            for read in reads:
                for (model, key), d in diffs[id(read)].items():
                    if d:
                        self.on_row(read.kind, model, key, d)
        if self.dry_run:
            self._save_progress(reads)
            return
        self._write(reads, diffs)

    def _write(self, reads, diffs):
        with transaction.atomic():
            results = writer.apply_many([(r.changes, r.sent_ms) for r in reads], run=self.run)
            changed, cursors = [], []
            for read, (written, error) in zip(reads, results, strict=True):
                if error is not None:
                    self.failed(read.kind, f"{type(error).__name__}: {error}", read.done_key or "")
                    continue
                wanted = {k for k, d in diffs[id(read)].items() if d}
                changed += [row for row in written if (type(row), row.natural_key()) in wanted]
                if read.cursor is not None:
                    cursors.append(self._cursor(read.kind, read.cursor))
            if cursors:
                SyncCursor.objects.bulk_create(
                    cursors,
                    update_conflicts=True,
                    unique_fields=["protocol", "kind", "key"],
                    update_fields=["version_id", "version", "updated_at"],
                )
            self._save_progress(reads)
            if changed and signals.mirror_changed.has_listeners():
                run = self.run
                transaction.on_commit(
                    lambda: signals.mirror_changed.send_robust(
                        sender=ReconcileRun, rows=changed, source="reconcile", event=None, run=run
                    )
                )

    def _cursor(self, kind, cursor):
        key, version_id, version = cursor
        return SyncCursor(
            protocol=self.run.protocol,
            kind=kind,
            key=key,
            version_id=version_id or "",
            version=version or 0,
            updated_at=timezone.now(),
        )

    def _save_progress(self, reads):
        state = dict(self.run.resume_state or {})
        for read in reads:
            if read.done_key is not None:
                state.setdefault("after", {})[read.kind] = read.done_key
        state["absent"] = self._absent_state()
        self.run.resume_state = state
        self.save()

    # -- comparing with the mirror ----------------------------------------------------------------

    def _diffs(self, reads):
        """``{id(read): {(model, key tuple): Diff or None}}``, reading each model's rows once."""
        wanted = defaultdict(set)
        for read in reads:
            for change in read.changes:
                wanted[change.model].add(_key(change))
        rows = {}
        for model, keys in wanted.items():
            rows.update(current_rows(model, keys))
        result = {}
        for read in reads:
            stamp = [read.sent_ms, 0]
            result[id(read)] = {
                (c.model, _key(c)): diff(c, rows.get((c.model, _key(c))), stamp)
                for c in read.changes
            }
        return result

    # -- pruning ----------------------------------------------------------------------------------

    def finish_kind(self, kind, present_in_scope):
        """Prune ``kind``'s confirmed absences (when asked and safe) and mark the kind done."""
        self.flush()
        absent = _still_present(self.absent.pop(kind, []))
        if absent:
            self.counts[kind]["absent"] += len(absent)
            share = len(absent) / max(present_in_scope, 1)
            if not self.prune:
                pass
            elif share > self.max_share and not self.force:
                self.failed(
                    kind,
                    f"{len(absent)} of {present_in_scope} present rows are gone from the server "
                    f"({share:.0%} > RECONCILE_PRUNE_MAX_SHARE {self.max_share:.0%}): not "
                    "pruned; check the server URL and run again with --force if this is right",
                )
            else:
                for row in absent:
                    self.add(
                        Read(
                            kind,
                            row.sent_ms,
                            [Change(row.model, row.key, {}, present=False, removed_reason="gone")],
                        )
                    )
                self.flush()
        state = dict(self.run.resume_state or {})
        state.setdefault("done", [])
        if kind not in state["done"]:
            state["done"].append(kind)
        state.get("after", {}).pop(kind, None)
        state["absent"] = self._absent_state()
        self.run.resume_state = state
        self.save()

    def _absent_state(self):
        return {k: [_absent_json(a) for a in v] for k, v in self.absent.items() if v}

    def count_requests(self, requests):
        self.counts["requests"].update(requests)

    def done(self, kind):
        return kind in (self.run.resume_state or {}).get("done", [])

    def after(self, kind):
        return (self.run.resume_state or {}).get("after", {}).get(kind)

    # -- the record -------------------------------------------------------------------------------

    def save(self, status=None):
        run = self.run
        run.counts = {kind: dict(counter) for kind, counter in self.counts.items()}
        run.errors = self.errors
        update = ["counts", "errors", "resume_state"]
        if status is not None:
            run.status = status
            run.finished_at = timezone.now()
            update += ["status", "finished_at"]
        run.save(update_fields=update)

    def close(self, interrupted=False):
        if interrupted:
            self.save(RunStatus.INTERRUPTED)
            return
        self.flush()
        failed = any(c.get("failed") for k, c in self.counts.items() if k != "requests")
        self.save(RunStatus.FAILED if failed else RunStatus.SUCCEEDED)


def _still_present(absent):
    """The absent rows the mirror has as present (an id passed in may never have been seen)."""
    by_model = {}
    for row in absent:
        by_model.setdefault(row.model, []).append(row)
    kept = []
    for model, rows in by_model.items():
        keys = {tuple(r.key[n] for n in model.natural_key_fields) for r in rows}
        found = current_rows(model, keys)
        for row in rows:
            current = found.get((model, tuple(row.key[n] for n in model.natural_key_fields)))
            if current is not None and current["removed_at"] is None:
                kept.append(row)
    return kept


def current_rows(model, keys):
    """``{(model, key tuple): row}`` for ``keys`` (natural key tuples), as the writer reads
    them (plain dicts)."""
    return {(model, key): row for key, row in sql.select_rows(model, keys).items()}


def diff(change, row, stamp):
    """The :class:`Diff` writing ``change`` at ``stamp`` would make to ``row``, or None."""
    if row is None:
        if change.present is False:
            return None
        return Diff("create", [(name, None, value) for name, value in change.values.items()])
    versions = row["versions"] or {}
    fields = []
    for name, value in change.values.items():
        if isinstance(value, Merge):
            current = row[name] or {}
            for sub, sub_value in value.items():
                if current.get(sub) != sub_value and _wins(versions, f"{name}.{sub}", stamp):
                    fields.append((f"{name}.{sub}", current.get(sub), sub_value))
        elif row[name] != value and _wins(versions, name, stamp):
            fields.append((name, row[name], value))
    if "removed_at" in row and change.present is not None and _wins(versions, PRESENT, stamp):
        if change.present and row["removed_at"] is not None:
            return Diff("restore", fields)
        if change.present is False and row["removed_at"] is None:
            return Diff("remove", fields)
    return Diff("update", fields) if fields else None


def _wins(versions, name, stamp):
    current = versions.get(name)
    return current is None or stamp > list(current)


def _key(change):
    return tuple(change.key[name] for name in change.model.natural_key_fields)


def _absent_json(absent):
    return [absent.model._meta.model_name, absent.key, absent.sent_ms]


def _absent_from_json(row):
    from django.apps import apps

    model_name, key, sent_ms = row
    return Absent(apps.get_model("openim_sync", model_name), key, sent_ms)


def describe(kind, model, key, d):
    """One line of ``--dry-run`` output."""
    name = "/".join(str(part) for part in key)
    changes = ", ".join(f"{f}: {old!r} → {new!r}" for f, old, new in d.fields[:8])
    more = f" (+{len(d.fields) - 8} more)" if len(d.fields) > 8 else ""
    return f"{kind} {model.__name__} {name}: {d.action}" + (
        f" ({changes}{more})" if changes else ""
    )


__all__ = ["KINDS", "Absent", "Engine", "Read", "RestError", "describe"]
