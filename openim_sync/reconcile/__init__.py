"""Reconcile: make the mirror equal to what an IM server's REST API says now.

Callbacks get lost (OpenIM sends each "after" callback once, Tencent stops retrying) and some
changes send none (OpenIM mutes, invites, ``UpdateFriends`` remarks). :func:`reconcile` reads the
server kind by kind and writes what it read through the same versioned writes as callbacks,
each value at the time its request was sent. ``manage.py openim_reconcile``, the admin's
"Re-sync selected" action and :func:`openim_sync.tasks.reconcile` all call it.

Usage::

    from openim_sync.reconcile import reconcile
    run = reconcile("openim", ["users", "groups"], dry_run=True)
    run.counts  # {"users": {"read": 120, "changed": 3, ...}, ...}
"""

from django.core.exceptions import ImproperlyConfigured

from openim_sync.conf import app_settings
from openim_sync.models import ReconcileRun, RunStatus

from .engine import KINDS, Engine, describe
from .http import RestError

PROTOCOLS = ("openim", "tencent")


def client_for(protocol, *, max_rps=None):
    """The REST client for ``protocol`` from the ``OPENIM_SYNC`` settings."""
    s = app_settings
    timeout = s.RECONCILE_TIMEOUT_SECONDS
    if protocol == "openim":
        missing = [
            n
            for n in ("OPENIM_API_URL", "OPENIM_ADMIN_USER_ID", "OPENIM_API_SECRET")
            if not getattr(s, n)
        ]
        if missing:
            raise ImproperlyConfigured(f"Reconcile with OpenIM needs OPENIM_SYNC[{missing[0]!r}].")
        from .openim_client import OpenIMClient

        return OpenIMClient(
            s.OPENIM_API_URL,
            s.OPENIM_ADMIN_USER_ID,
            s.OPENIM_API_SECRET,
            timeout=timeout,
            max_rps=max_rps or s.RECONCILE_MAX_RPS,
        )
    if protocol == "tencent":
        missing = [
            n
            for n in ("TENCENT_SDKAPPID", "TENCENT_ADMIN_IDENTIFIER", "TENCENT_SECRET_KEY")
            if not getattr(s, n)
        ]
        if missing:
            raise ImproperlyConfigured(f"Reconcile with Tencent needs OPENIM_SYNC[{missing[0]!r}].")
        from .tencent_client import TencentClient

        return TencentClient(
            s.TENCENT_API_URL,
            s.TENCENT_SDKAPPID,
            s.TENCENT_ADMIN_IDENTIFIER,
            s.TENCENT_SECRET_KEY,
            timeout=timeout,
            max_rps=max_rps or s.RECONCILE_MAX_RPS,
        )
    raise ValueError(f"Unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}.")


def source_for(protocol, client, page_size, *, full_listings=False):
    """The reads of ``protocol``; ``full_listings`` (for ``--prune``): no version logs."""
    if protocol == "openim":
        from .openim_source import OpenIMSource

        return OpenIMSource(client, page_size=page_size or 500, full_listings=full_listings)
    from .tencent_source import TencentSource

    return TencentSource(client, page_size=min(page_size or 100, 200))


def reconcile(
    protocol,
    kinds=KINDS,
    *,
    ids=None,
    dry_run=False,
    prune=False,
    force=False,
    page_size=None,
    max_rps=None,
    resume=None,
    on_row=None,
    on_kind=None,
    on_progress=None,
):
    """Read ``kinds`` from ``protocol``'s REST API and write them to the mirror.

    ``ids``: only these users (users, friends, blocks, online) or groups (groups, members).
    ``dry_run``: compare and report (``on_row(kind, model, key, diff)``), write nothing.
    ``prune``: tombstone rows the server no longer has (confirmed per id), unless they are
    more than ``RECONCILE_PRUNE_MAX_SHARE`` of their kind (``force`` lifts that).
    ``resume``: an interrupted :class:`ReconcileRun` to go on with (its scope and options).
    ``on_kind(kind, "start" | "done", run)`` and ``on_progress(kind, done, total)``: progress.
    Returns the run, saved.
    """
    if resume is not None:
        run = resume
        protocol, kinds = run.protocol, run.scope
        options = run.options or {}
        ids, dry_run, prune, force = (
            options.get("ids"),
            run.dry_run,
            options.get("prune"),
            options.get("force"),
        )
        page_size = page_size or options.get("page_size")
        run.status, run.finished_at = RunStatus.RUNNING, None
        run.save(update_fields=["status", "finished_at"])
    else:
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"Unknown kind {unknown[0]!r}: choose from {', '.join(KINDS)}.")
        kinds = [k for k in KINDS if k in kinds]
        run = ReconcileRun.objects.create(
            protocol=protocol,
            scope=kinds,
            dry_run=dry_run,
            options={
                "ids": sorted(ids) if ids else None,
                "prune": prune,
                "force": force,
                "page_size": page_size,
                "max_rps": max_rps,
            },
        )
    client = client_for(protocol, max_rps=max_rps)
    source = source_for(protocol, client, page_size, full_listings=prune)
    engine = Engine(
        run,
        dry_run=dry_run,
        prune=prune,
        force=force,
        max_share=app_settings.RECONCILE_PRUNE_MAX_SHARE,
        on_row=on_row,
        on_progress=on_progress,
    )
    try:
        for kind in kinds:
            if engine.done(kind):
                continue
            if on_kind:
                on_kind(kind, "start", run)
            try:
                in_scope = getattr(source, kind)(engine, ids)
            except RestError as exc:
                if exc.kind == "config":
                    engine.failed(kind, exc)
                    break
                engine.failed(kind, exc)
                continue
            engine.finish_kind(kind, in_scope or 0)
            if on_kind:
                on_kind(kind, "done", run)
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM) or broken: what was written stays, and the run records
        # where it stopped so that ``resume`` goes on from there.
        engine.count_requests(client.requests)
        engine.close(interrupted=True)
        raise
    finally:
        client.close()
    engine.count_requests(client.requests)
    engine.close()
    return run


__all__ = ["KINDS", "PROTOCOLS", "RestError", "client_for", "describe", "reconcile"]
