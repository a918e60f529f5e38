from django.db import models

from .events import Protocol


class IgnoredEventCount(models.Model):
    """How many ignored deliveries of one command arrived in one hour.

    Written instead of an event row when ``OPENIM_SYNC["IGNORED_EVENTS"]`` is ``"count"``: each
    ignored delivery adds 1 to its (protocol, command, hour) row in one upsert statement.
    ``openim_prune`` deletes the rows older than the ``ignored`` retention.
    """

    protocol = models.CharField(max_length=16, choices=Protocol)
    command = models.CharField(max_length=128)
    hour = models.DateTimeField(help_text="The start of the hour (UTC) the deliveries arrived in.")
    count = models.PositiveBigIntegerField(default=0)
    last_received_at = models.DateTimeField(help_text="When the newest of them arrived.")

    class Meta:
        ordering = ["-hour", "protocol", "command"]
        verbose_name = "ignored event count"
        constraints = [
            # Leads with the hour: the same index serves the upsert and pruning by age.
            models.UniqueConstraint(
                fields=["hour", "protocol", "command"], name="openim_ignoredcount_key"
            )
        ]

    def __str__(self):
        return (
            f"{self.protocol} {self.command or '(no command)'} "
            f"{self.hour:%Y-%m-%d %H}:00 UTC: {self.count}"
        )
