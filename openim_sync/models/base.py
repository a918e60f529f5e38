from dataclasses import dataclass

from django.apps import apps
from django.db import models

from .events import CallbackEvent
from .runs import ReconcileRun


@dataclass(frozen=True)
class Parent:
    """Declares that a mirror row belongs to a row of another mirror model.

    ``mirror_parent = Parent("ImGroup", ("group_id",))`` on ``GroupMember`` says: a member implies
    its group (the writer creates the group row when it is missing); a group's tombstone newer
    than a member's "present" bounds the member; removing the group removes its present members,
    at the group's version and with its reason. ``columns`` are the child's columns holding the
    parent's natural key, in the parent's key order.
    """

    model_name: str
    columns: tuple[str, ...]

    @property
    def model(self):
        return apps.get_model("openim_sync", self.model_name)


class MirrorQuerySet(models.QuerySet):
    def present(self):
        return self.filter(removed_at__isnull=True)

    def removed(self):
        return self.filter(removed_at__isnull=False)


class MirrorRow(models.Model):
    """A row of IM state, written only through :mod:`openim_sync.writer`.

    ``versions`` maps each field name (and ``present`` for existence) to ``[version, event_id]``
    of the event that last wrote it, so a late, older event never overwrites newer state.
    """

    #: Field names that together identify the row on the IM server.
    natural_key_fields: tuple[str, ...] = ()
    #: The row this one belongs to, if any (see :class:`Parent`).
    mirror_parent: Parent | None = None

    version = models.BigIntegerField(
        default=0, help_text="Version (event time or receipt time, ms) of the newest write."
    )
    versions = models.JSONField(default=dict, blank=True, editable=False)
    last_event = models.ForeignKey(
        CallbackEvent,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The callback that last changed this row.",
    )
    last_run = models.ForeignKey(
        ReconcileRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The reconcile run that last changed this row (when a REST read did).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    def natural_key(self):
        return tuple(getattr(self, name) for name in self.natural_key_fields)


class RemovableMirrorRow(MirrorRow):
    """A mirror row that a removal (quit, kick, delete, dismiss) turns into a tombstone."""

    removed_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="Set when the IM server removed it."
    )
    removed_reason = models.CharField(max_length=32, blank=True)

    objects = MirrorQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def is_present(self):
        return self.removed_at is None
