"""django.tasks integration for deferred processing, without a task row per delivery.

The event table is the queue (see :mod:`openim_sync.worker`): ``manage.py openim_worker`` is the
way to apply deferred deliveries. A host that would rather run everything through its task
backend can schedule :func:`drain_events` (for example every minute): one task drains the backlog
in batches for at most ``max_seconds``. Enqueueing one task per delivery would double every write
and leave two queues to keep in step, so this app never does.
"""

import time

try:
    from openim_sync.compat import task
except ImportError:  # the compat module is optional until it lands
    from django.tasks import task

from openim_sync import worker


@task
def drain_events(max_seconds=50.0, batch_size=worker.BATCH_SIZE):
    """Apply waiting ``received`` events until none are left or ``max_seconds`` have passed."""
    deadline = time.monotonic() + max_seconds
    applied = failed = 0
    while time.monotonic() < deadline:
        outcomes = worker.claim_and_process(batch_size)
        if not outcomes:
            break
        applied += len(outcomes)
        failed += sum(1 for o in outcomes if o.status == "failed")
    return {"applied": applied, "failed": failed}


@task
def reconcile(protocol, kinds=None, ids=None, prune=False):
    """Run :func:`openim_sync.reconcile.reconcile` in the task backend; returns the run's id,
    status and counts (e.g. ``reconcile.enqueue("openim", ["members"], ids=["g1"])``)."""
    from openim_sync.reconcile import KINDS
    from openim_sync.reconcile import reconcile as run_reconcile

    run = run_reconcile(protocol, kinds or KINDS, ids=ids, prune=prune)
    return {"run": run.pk, "status": run.status, "counts": run.counts}
