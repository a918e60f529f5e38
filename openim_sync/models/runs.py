from django.db import models


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed (some items)"
    INTERRUPTED = "interrupted", "Interrupted"


class ReconcileRun(models.Model):
    """One ``openim_reconcile`` run: what it read from an IM server's REST API and what it changed."""

    protocol = models.CharField(max_length=16)
    scope = models.JSONField(
        default=list, blank=True, help_text="What was synced: users, groups, ..."
    )
    options = models.JSONField(
        default=dict, blank=True, help_text="ids, dry run, prune, page size."
    )
    status = models.CharField(max_length=16, choices=RunStatus, default=RunStatus.RUNNING)
    dry_run = models.BooleanField(default=False)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(
        default=dict, blank=True, help_text="read / changed / removed / failed, per kind."
    )
    errors = models.JSONField(default=list, blank=True)
    resume_state = models.JSONField(
        default=dict, blank=True, help_text="Where an interrupted run goes on from."
    )

    class Meta:
        ordering = ["-id"]
        verbose_name = "reconcile run"

    def __str__(self):
        return f"Reconcile #{self.pk} {self.protocol} [{self.status}]"


class SyncCursor(models.Model):
    """Where an IM server's version log stood at the last reconcile, per group or owner.

    OpenIM (v3.8.0+) keeps a ``(versionID, version)`` log of each group's members and each
    user's friends and blocks; asking with the stored pair returns only what changed since.
    """

    protocol = models.CharField(max_length=16)
    kind = models.CharField(max_length=16, help_text="members, friends or blocks.")
    key = models.CharField(max_length=64, help_text="The group id or owner user id.")
    version_id = models.CharField(max_length=64, blank=True)
    version = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "sync cursor"
        constraints = [
            models.UniqueConstraint(
                fields=["protocol", "kind", "key"], name="openim_sync_cursor_key"
            ),
        ]

    def __str__(self):
        return f"{self.protocol} {self.kind} {self.key}: {self.version_id}/{self.version}"
