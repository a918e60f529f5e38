"""openim_prune: retention (per status), what it keeps, batches by id, counters, dry run, output
and exit status, through real deliveries on SQLite and PostgreSQL."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from openim_sync.models import CallbackEvent, EventStatus, IgnoredEventCount, ImUser
from tests.test_event_store import send_message
from tests.test_replay import deliver_failed, deliver_rejected, deliver_user

pytestmark = pytest.mark.django_db


def age(event, days):
    CallbackEvent.objects.filter(pk=event.pk).update(
        received_at=timezone.now() - timedelta(days=days)
    )


def prune(*args, stderr=None):
    out = io.StringIO()
    call_command("openim_prune", *args, stdout=out, stderr=stderr or io.StringIO())
    return out.getvalue()


def prune_both(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("openim_prune", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


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
    assert out.startswith("Deleted 1 event(s) (processed 1) and 0 ignored-event count row(s)")
    assert "kept 1 old event(s) that mirror rows reference" in out
    assert remaining() == {
        history[name].pk for name in ("last_writer", "failed", "rejected", "received", "fresh")
    }
    # The mirror row still points at its last writer.
    assert ImUser.objects.get(user_id="u1").last_event_id == history["last_writer"].pk


def test_include_failed(history):
    out = prune("--include-failed")
    assert out.startswith("Deleted 4 event(s) (failed 1, processed 1, received 1, rejected 1)")
    assert remaining() == {history["last_writer"].pk, history["fresh"].pk}


def test_days_option_and_setting(history, openim_settings):
    assert prune("--days", "50").startswith("Deleted 0 event(s)")
    assert history["superseded"].pk in remaining()
    openim_settings(EVENT_RETENTION_DAYS=60)
    assert prune().startswith("Deleted 0 event(s)")
    openim_settings(EVENT_RETENTION_DAYS=7)
    assert prune().startswith("Deleted 1 event(s)")
    assert history["superseded"].pk not in remaining()


def test_dry_run_counts_and_deletes_nothing(history):
    before = remaining()
    out = prune("--dry-run", "--include-failed")
    assert out.startswith("Dry run: would delete 4 event(s)")
    assert "kept 1 old event(s)" in out
    out = prune("--dry-run")
    assert out.startswith("Dry run: would delete 1 event(s) (processed 1)")
    assert remaining() == before
    # The real run then does what the dry run said.
    assert prune().startswith("Deleted 1 event(s) (processed 1)")


# -- retention per status ---------------------------------------------------------------------


@pytest.fixture
def by_status(client, openim_settings, history):
    """The history plus ignored messages (full and summary) of several ages."""
    events = dict(history)
    for days in (1, 3, 40):
        send_message(client, serverMsgID=f"full-{days}")
        events[f"ignored_{days}"] = CallbackEvent.objects.latest("id")
        age(events[f"ignored_{days}"], days)
    openim_settings(IGNORED_EVENTS="summary")
    send_message(client, serverMsgID="summary")
    events["summary_3"] = CallbackEvent.objects.latest("id")
    assert events["summary_3"].is_summary
    age(events["summary_3"], 3)
    openim_settings(IGNORED_EVENTS="full")
    return events


def test_retention_by_status(by_status, openim_settings):
    openim_settings(
        EVENT_RETENTION_BY_STATUS={"ignored": 2, "processed": 50, "rejected": 30, "failed": None}
    )
    out = prune()
    # ignored: older than 2 days go; processed: 40 days is within 50; rejected: after 30 days
    # even without --include-failed; failed: kept for ever; received: kept (not listed).
    assert out.startswith("Deleted 4 event(s) (ignored 3, rejected 1)"), out
    gone = {by_status[name].pk for name in ("ignored_3", "ignored_40", "summary_3", "rejected")}
    assert remaining() == {e.pk for e in by_status.values()} - gone


def test_listed_statuses_win_over_days_and_include_failed(by_status, openim_settings):
    openim_settings(EVENT_RETENTION_BY_STATUS={"failed": None, "ignored": 100})
    prune("--days", "1", "--include-failed")
    left = {name for name, event in by_status.items() if event.pk in remaining()}
    # failed and ignored keep their listed retention; the rest follow --days 1.
    assert left == {"failed", "ignored_1", "ignored_3", "ignored_40", "summary_3", "fresh"} | {
        "last_writer"
    }


def test_verbose_run_says_the_retention_of_every_status(by_status, openim_settings):
    openim_settings(EVENT_RETENTION_BY_STATUS={"ignored": 2})
    out = prune("-v", "2")
    assert out.splitlines()[0].startswith("Retention: received kept; processed 30 day(s) (before ")
    assert "ignored 2 day(s)" in out and "failed kept" in out and "rejected kept" in out


def test_nothing_to_keep_for_ever(history, openim_settings):
    statuses = ("received", "processed", "ignored", "rejected", "failed")
    openim_settings(EVENT_RETENTION_BY_STATUS=dict.fromkeys(statuses))
    assert prune().startswith("Deleted 0 event(s)")
    assert prune("--include-failed", "--days", "0").startswith("Deleted 0 event(s)")
    assert len(remaining()) == 6


# -- counters -----------------------------------------------------------------------------------


def test_ignored_counts_are_pruned_with_the_ignored_retention(openim_settings):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for hours in (0, 24, 47, 49, 24 * 40):
        IgnoredEventCount.objects.create(
            protocol="openim",
            command=f"c{hours}",
            hour=now - timedelta(hours=hours),
            count=5,
            last_received_at=now - timedelta(hours=hours) + timedelta(minutes=59),
        )
    openim_settings(EVENT_RETENTION_BY_STATUS={"ignored": 2})
    assert "would delete 0 event(s) and 2 ignored-event count row(s)" in prune("--dry-run")
    assert IgnoredEventCount.objects.count() == 5
    out = prune()
    assert out.startswith("Deleted 0 event(s) and 2 ignored-event count row(s)")
    # An hour goes only when all of it is older than 2 days.
    assert sorted(IgnoredEventCount.objects.values_list("command", flat=True)) == [
        "c0",
        "c24",
        "c47",
    ]
    openim_settings(EVENT_RETENTION_BY_STATUS={"ignored": None})
    assert "and 0 ignored-event count row(s)" in prune("--days", "0")


# -- batches --------------------------------------------------------------------------------------


def test_batches_keep_every_referenced_event(client):
    # Interleaved: for each of 7 users an old event, then a newer one for some of them, so
    # referenced and deletable ids alternate across batch boundaries.
    old, last = [], {}
    for i in range(7):
        event = deliver_user(client, f"u{i}", "x")
        old.append(event)
        last[f"u{i}"] = event.pk
        if i % 2:
            last[f"u{i}"] = deliver_user(client, f"u{i}", "y").pk
    for event in CallbackEvent.objects.all():
        age(event, 100)
    fresh = deliver_user(client, "u0", "z")  # u0's old event is superseded by a fresh one
    last["u0"] = fresh.pk
    out, err = prune_both("--batch-size", "2", "-v", "3")
    superseded = {e.pk for e in old} - set(last.values())
    summary = out.splitlines()[-1]
    assert summary.startswith(f"Deleted {len(superseded)} event(s) (processed 4)")
    assert f"kept {len(last) - 1} old event(s) that mirror rows reference" in summary
    assert remaining() == set(last.values())
    for user in ImUser.objects.all():
        assert user.last_event_id == last[user.user_id]
    lines = err.splitlines()
    assert len(lines) == 5  # 10 old events, 2 ids per batch, a line each at -v 3
    assert lines[0].startswith("openim_prune: deleted ") and "events/s" in lines[0]
    assert lines[-1].endswith(" events/s") and "(100%)" in lines[-1]


def test_an_old_event_above_fresh_ids_is_deleted_too(client):
    fresh = deliver_user(client, "u1", "a")
    superseded = deliver_user(client, "u2", "b")
    deliver_user(client, "u2", "c")
    age(superseded, 40)  # old, with an id above a fresh one
    prune("--batch-size", "1")
    assert superseded.pk not in remaining() and fresh.pk in remaining()


def test_max_seconds_stops_between_batches_with_exit_status_3(client):
    events = [deliver_user(client, f"u{i}", "x") for i in range(4)]
    for i in range(4):
        deliver_user(client, f"u{i}", "y")
    for event in events:
        age(event, 100)
    out = io.StringIO()
    with pytest.raises(CommandError) as stopped:
        call_command("openim_prune", "--batch-size", "1", "--max-seconds", "0.000001", stdout=out)
    assert stopped.value.returncode == 3
    assert "run it again" in str(stopped.value)
    assert out.getvalue().startswith("Deleted 1 event(s)")
    assert len(remaining()) == 7
    assert prune().startswith("Deleted 3 event(s)")  # the next run continues


def test_bad_options_are_errors():
    for args in (["--days", "-1"], ["--batch-size", "0"], ["--max-seconds", "0"]):
        with pytest.raises(CommandError) as error:
            call_command("openim_prune", *args)
        assert error.value.returncode == 1


# -- output ---------------------------------------------------------------------------------------


def test_nothing_to_do_is_silent_at_verbosity_0():
    assert prune_both("--verbosity", "0") == ("", "")
    assert prune_both("--verbosity", "0", "--dry-run") == ("", "")


def test_verbosity_0_prints_nothing_when_it_deletes_either(history):
    assert prune_both("--verbosity", "0") == ("", "")
    assert history["superseded"].pk not in remaining()


def test_progress_only_when_asked(history):
    out, err = prune_both()
    assert err == "" and out.startswith("Deleted 1 event(s)")
    out, err = prune_both("--dry-run", "-v", "2")
    assert err.startswith("openim_prune: would delete 0 event(s)")


def test_summary_names_no_status_when_nothing_went():
    out = prune()
    assert out.startswith("Deleted 0 event(s) and 0 ignored-event count row(s) in ")
    assert out.rstrip().endswith("kept 0 old event(s) that mirror rows reference.")


def test_summary_rows_are_pruned_like_ignored_events(client, openim_settings):
    openim_settings(IGNORED_EVENTS="summary", EVENT_RETENTION_BY_STATUS={"ignored": 1})
    send_message(client)
    age(CallbackEvent.objects.get(), 2)
    assert prune().startswith("Deleted 1 event(s) (ignored 1)")
    assert not CallbackEvent.objects.filter(status=EventStatus.IGNORED).exists()


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_progress_line_except_at_verbosity_0(history):
    err = Terminal()
    call_command("openim_prune", "--dry-run", stdout=io.StringIO(), stderr=err)
    assert err.getvalue().startswith("\ropenim_prune: would delete 1 event(s)")
    assert err.getvalue().endswith("\n")  # the line is ended before the summary
    err = Terminal()
    call_command("openim_prune", "-v", "0", stdout=io.StringIO(), stderr=err)
    assert err.getvalue() == ""
    assert history["superseded"].pk not in remaining()
