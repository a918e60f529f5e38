"""openim_prune: retention, what it keeps, batches, dry run."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from openim_sync.models import CallbackEvent, EventStatus, ImUser
from tests.test_replay import deliver_failed, deliver_rejected, deliver_user

pytestmark = pytest.mark.django_db


def age(event, days):
    CallbackEvent.objects.filter(pk=event.pk).update(
        received_at=timezone.now() - timedelta(days=days)
    )


def prune(*args):
    out = io.StringIO()
    call_command("openim_prune", *args, stdout=out)
    return out.getvalue()


def remaining():
    return set(CallbackEvent.objects.values_list("pk", flat=True))


@pytest.fixture
def history(client, openim_settings):
    """Old events of every kind, plus fresh ones."""
    events = {
        # u1 written twice: only the newer event is still the row's last writer.
        "superseded": deliver_user(client, "u1", "Alice (old)"),
        "last_writer": deliver_user(client, "u1", "Alice (new)"),
        "failed": deliver_failed(client),
        "rejected": deliver_rejected(client),
    }
    openim_settings(PROCESSING="deferred")
    events["received"] = deliver_user(client, "u9", "never processed")
    openim_settings(PROCESSING="inline")
    for event in events.values():
        age(event, 40)
    events["fresh"] = deliver_user(client, "u2", "Bob")
    assert ImUser.objects.get(user_id="u1").last_event_id == events["last_writer"].pk
    return events


def test_prune_keeps_last_writers_and_unfinished_events(history):
    out = prune()  # EVENT_RETENTION_DAYS defaults to 30
    assert "Deleted 1 event(s)" in out
    assert remaining() == {
        history[name].pk for name in ("last_writer", "failed", "rejected", "received", "fresh")
    }
    # The mirror row still points at its last writer.
    assert ImUser.objects.get(user_id="u1").last_event_id == history["last_writer"].pk


def test_include_failed(history):
    out = prune("--include-failed")
    assert "Deleted 4 event(s)" in out
    assert remaining() == {history["last_writer"].pk, history["fresh"].pk}


def test_days_option_and_setting(history, openim_settings):
    assert "Deleted 0 event(s)" in prune("--days", "50")
    assert history["superseded"].pk in remaining()
    openim_settings(EVENT_RETENTION_DAYS=60)
    assert "Deleted 0 event(s)" in prune()
    openim_settings(EVENT_RETENTION_DAYS=7)
    assert "Deleted 1 event(s)" in prune()
    assert history["superseded"].pk not in remaining()


def test_dry_run_counts_and_deletes_nothing(history):
    before = remaining()
    out = prune("--dry-run", "--include-failed")
    assert "Dry run: 4 of 5 event(s)" in out and "1 kept" in out
    out = prune("--dry-run")
    assert "Dry run: 1 of 5 event(s)" in out and "4 kept" in out
    assert remaining() == before


def test_batches(client):
    events = [deliver_user(client, f"u{i}", "x") for i in range(5)]
    for event in events:
        age(event, 100)
    # A newer event for each user: all five old ones are superseded.
    for i in range(5):
        deliver_user(client, f"u{i}", "y")
    out = prune("--batch-size", "2", "-v", "2")
    assert "Deleted 2 event(s) so far" in out and "Deleted 4 event(s) so far" in out
    assert "Deleted 5 event(s)" in out
    assert not CallbackEvent.objects.filter(pk__in=[e.pk for e in events]).exists()
    assert CallbackEvent.objects.filter(status=EventStatus.PROCESSED).count() == 5
