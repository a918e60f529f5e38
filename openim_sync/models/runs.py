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
