from django.db import models
from django.utils import timezone


class Protocol(models.TextChoices):
    OPENIM = "openim", "OpenIM Server"
    TENCENT = "tencent", "Tencent Cloud Chat"


class EventStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"


class CallbackEvent(models.Model):
    """One HTTP delivery from the IM server, stored before anything is applied."""

    protocol = models.CharField(max_length=16, choices=Protocol)
    command = models.CharField(max_length=128)
    # The ids the delivery is about, taken from the payload when it is received (search, filters).
    subject_user_id = models.CharField(
        "user", max_length=64, blank=True, help_text="The user the event is about (the actor)."
    )
    subject_group_id = models.CharField(
        "group", max_length=64, blank=True, help_text="The group the event is about."
    )
    subject_peer_id = models.CharField(
        "peer", max_length=64, blank=True, help_text="The other user: friend, blocked, receiver."
    )
    url_command = models.CharField(
        max_length=128, blank=True, help_text="The command named by the URL, if any."
    )
    status = models.CharField(max_length=16, choices=EventStatus, default=EventStatus.RECEIVED)
    reason = models.TextField(
        blank=True, help_text="Why the event was ignored, rejected or failed."
    )
    traceback = models.TextField(blank=True)
    body = models.BinaryField(help_text="The request body exactly as received.")
    payload = models.JSONField(null=True, blank=True, help_text="The parsed JSON body.")
    headers = models.JSONField(default=dict, blank=True)
    query = models.JSONField(default=dict, blank=True)
    operation_id = models.CharField(max_length=128, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-id"]
        verbose_name = "callback event"
        indexes = [
            models.Index(fields=["status", "id"], name="openim_event_status_id"),
            # A plain index: no second ``varchar_pattern_ops`` copy to maintain on every write.
            models.Index(fields=["command"], name="openim_event_command"),
            models.Index(
                fields=["subject_user_id", "id"],
                name="openim_event_user",
                condition=~models.Q(subject_user_id=""),
            ),
            models.Index(
                fields=["subject_group_id", "id"],
                name="openim_event_group",
                condition=~models.Q(subject_group_id=""),
            ),
            models.Index(
                fields=["subject_peer_id", "id"],
                name="openim_event_peer",
                condition=~models.Q(subject_peer_id=""),
            ),
        ]

    def __str__(self):
        return f"#{self.pk} {self.command or '(no command)'} [{self.status}]"

    @property
    def is_summary(self):
        """Stored as a summary (``IGNORED_EVENTS = "summary"``): an ignored delivery whose body,
        payload, headers and query were not kept. (A delivery in full that is ignored always has
        a payload: only a JSON object gets that far.)"""
        return self.status == EventStatus.IGNORED and self.payload is None

    @property
    def received_ms(self):
        return int(self.received_at.timestamp() * 1000)
