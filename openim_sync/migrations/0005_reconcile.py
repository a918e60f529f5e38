from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("openim_sync", "0004_event_store"),
    ]

    operations = [
        migrations.AddField(
            model_name="groupmember",
            name="joined_at_ms",
            field=models.BigIntegerField(
                blank=True,
                help_text="When the user joined (ms), as the REST API reports it.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="groupmember",
            name="mute_end_ms",
            field=models.BigIntegerField(
                blank=True,
                help_text="Muted until this time (ms; 0: not muted). Only reconcile sees mutes: neither server sends a callback for them.",
                null=True,
            ),
        ),
        migrations.CreateModel(
            name="SyncCursor",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("protocol", models.CharField(max_length=16)),
                ("kind", models.CharField(help_text="members, friends or blocks.", max_length=16)),
                ("key", models.CharField(help_text="The group id or owner user id.", max_length=64)),
                ("version_id", models.CharField(blank=True, max_length=64)),
                ("version", models.BigIntegerField(default=0)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "verbose_name": "sync cursor",
                "constraints": [
                    models.UniqueConstraint(fields=("protocol", "kind", "key"), name="openim_sync_cursor_key")
                ],
            },
        ),
    ]
