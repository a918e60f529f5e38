"""Signals for the host project, sent only after the surrounding transaction commits.

``event_received(sender=CallbackEvent, event)``
    A delivery was stored (before it is applied; in deferred mode, before it is queued).

``event_processed(sender=CallbackEvent, event, command, status, changed)``
    The pipeline finished with the event (live delivery, deferred task, replay or admin action).
    ``status`` is ``processed``, ``ignored``, ``rejected`` or ``failed``; ``changed`` lists the
    mirror rows (``ImUser``, ``ImGroup``, ``GroupMember``, ``Friend``, ``BlockedUser``,
    ``OnlineSession`` instances) the event wrote, empty unless ``status`` is ``processed``.

``mirror_changed(sender, rows, source, event, run)``
    Mirror rows changed: ``source`` is ``"callback"`` (``sender=CallbackEvent``, ``event`` set)
    or ``"reconcile"`` (``sender=ReconcileRun``, ``run`` set). ``rows`` are model instances as
    written. Reconcile sends only rows whose values changed, not rows it merely re-stamped.

Nothing is sent for work that rolls back. A receiver's exception is logged and does not affect
the event (the outcome is already committed). See docs/signals.md for examples.
"""

from django.dispatch import Signal

event_received = Signal()
event_processed = Signal()
mirror_changed = Signal()
