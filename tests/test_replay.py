"""openim_replay: every selector, the dry run, progress output, exit status, idempotent replays."""

import io
import re
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from openim_sync.models import (
    CallbackEvent,
    EventStatus,
    Friend,
    GroupMember,
    ImUser,
    OnlineSession,
)
from tests.helpers import post_openim, post_tencent, sample

pytestmark = pytest.mark.django_db


@contextmanager
def failing_writes(table, column, value, message="simulated database failure"):
    """A trigger that makes writing ``value`` into ``table.column`` fail, like a broken database
    constraint or a bug: the handler's transaction fails and the event ends ``failed``."""
    name = f"openim_test_fail_{table}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN IF NEW.{column} = '{value}' THEN RAISE EXCEPTION '{message}'; END IF; "
                "RETURN NEW; END $$"
            )
            cursor.execute(
                f"CREATE TRIGGER {name} BEFORE INSERT OR UPDATE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {name}()"
            )
        else:
            for action in ("INSERT", "UPDATE"):
                cursor.execute(
                    f"CREATE TRIGGER {name}_{action.lower()} BEFORE {action} ON {table} "
                    f"WHEN NEW.{column} = '{value}' BEGIN SELECT RAISE(ABORT, '{message}'); END"
                )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
                cursor.execute(f"DROP FUNCTION IF EXISTS {name}()")
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}_insert")
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}_update")


def user_info(user_id, nickname, **extra):
    return {
        "callbackCommand": "callbackAfterUpdateUserInfoExCommand",
        "userID": user_id,
        "nickName": nickname,
        "faceURL": None,
        "ex": None,
        **extra,
    }


def deliver_user(client, user_id, nickname, **extra):
    response = post_openim(
        client, "/callbackAfterUpdateUserInfoExCommand", user_info(user_id, nickname, **extra)
    )
    assert response.status_code in (200, 500), response.content
    return CallbackEvent.objects.latest("id")


def deliver_failed(client, user_id="boom"):
    with failing_writes("openim_sync_imuser", "user_id", user_id):
        event = deliver_user(client, user_id, "Never stored")
    assert event.status == EventStatus.FAILED
    return event


def deliver_rejected(client):
    response = post_openim(client, "/callbackAfterUpdateUserInfoExCommand", None, raw=b"{bad")
    assert response.status_code == 400
    event = CallbackEvent.objects.latest("id")
    assert event.status == EventStatus.REJECTED
    return event


def replay(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("openim_replay", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def dry_run_ids(*args):
    out, _ = replay("--dry-run", *args)
    return [int(pk) for pk in re.findall(r"^#(\d+) ", out, re.MULTILINE)]


def test_default_replays_failed_not_rejected_and_exit_status(client):
    processed = deliver_user(client, "u1", "Alice")
    failed = deliver_failed(client)
    rejected = deliver_rejected(client)

    # While the cause is still there the event fails again and the command says so.
    with (
        failing_writes("openim_sync_imuser", "user_id", "boom"),
        pytest.raises(CommandError) as error,
    ):
        replay()
    assert error.value.returncode == 1
    assert f"#{failed.pk}" in str(error.value)
    failed.refresh_from_db()
    assert failed.status == EventStatus.FAILED and failed.attempts == 2

    # The cause is fixed: the replay applies it and exits normally.
    out, _ = replay()
    assert "1 processed" in out and "rejected" not in out
    failed.refresh_from_db()
    assert failed.status == EventStatus.PROCESSED and failed.attempts == 3
    assert ImUser.objects.get(user_id="boom").nickname == "Never stored"
    processed.refresh_from_db()
    rejected.refresh_from_db()
    assert processed.attempts == 1  # processed events are not in the default selection
    assert rejected.status == EventStatus.REJECTED and rejected.attempts == 1  # never replayed

    # Asked for, rejected events are replayed (and rejected again: same code, same payload).
    out, _ = replay("--include-rejected")
    assert "1 rejected" in out
    rejected.refresh_from_db()
    assert rejected.status == EventStatus.REJECTED and rejected.attempts == 2

    # Nothing left to do: says so, and says nothing at all at --verbosity 0 (cron).
    out, _ = replay()
    assert out.startswith("Nothing to replay: no failed or stale received event matched.")
    assert replay("--verbosity", "0") == ("", "")


def test_selectors_narrow_the_default_set_and_say_why_nothing_matched(client):
    deliver_user(client, "u1", "Alice")
    failed = deliver_failed(client)

    out, _ = replay("--user", "u1")
    assert "Nothing to replay" in out
    assert "1 event(s) of other statuses match the selectors: add --all" in out

    out, _ = replay("--user", "boom", "--dry-run")
    assert f"#{failed.pk} " in out and "Dry run: 1 event(s) would be replayed." in out


def test_dry_run_lists_and_changes_nothing(client):
    failed = deliver_failed(client)
    rejected = deliver_rejected(client)
    deliver_user(client, "u1", "Alice")

    out, _ = replay("--dry-run")
    assert f"#{failed.pk} " in out and f"#{rejected.pk} " not in out
    assert "Dry run: 1 event(s) would be replayed." in out
    failed.refresh_from_db()
    assert failed.status == EventStatus.FAILED and failed.attempts == 1
    assert not ImUser.objects.filter(user_id="boom").exists()


def test_select_by_id_and_id_range(client):
    events = [deliver_user(client, f"u{i}", f"User {i}") for i in range(5)]
    ids = [event.pk for event in events]

    assert dry_run_ids("--id", str(ids[1]), "--id", str(ids[3])) == [ids[1], ids[3]]
    assert dry_run_ids("--all", "--from-id", str(ids[1]), "--to-id", str(ids[3])) == ids[1:4]
    assert dry_run_ids("--status", "processed", "--from-id", str(ids[3])) == ids[3:]
    # A range without --all keeps the default statuses: nothing failed here.
    assert dry_run_ids("--from-id", str(ids[0])) == []

    out, _ = replay("--id", str(ids[2]))
    assert "Replayed 1 event(s): 1 processed" in out
    events[2].refresh_from_db()
    assert events[2].attempts == 2


def test_select_by_status_command_and_protocol(client):
    user = deliver_user(client, "u1", "Alice")
    remark = post_openim(
        client,
        "/callbackAfterSetFriendRemarkCommand",
        sample("openim", "callbackAfterSetFriendRemarkCommand"),
    )
    assert remark.status_code == 200
    remark = CallbackEvent.objects.latest("id")
    tencent = post_tencent(client, sample("tencent", "Profile.CallbackPortraitSet"))
    assert tencent.status_code == 200
    tencent = CallbackEvent.objects.latest("id")
    rejected = deliver_rejected(client)

    assert dry_run_ids("--status", "processed") == [user.pk, remark.pk, tencent.pk]
    assert dry_run_ids("--status", "rejected", "--status", "processed", "--protocol", "openim") == [
        user.pk,
        remark.pk,
        rejected.pk,
    ]
    assert dry_run_ids("--all", "--command", "callbackAfterSetFriendRemarkCommand") == [remark.pk]
    assert dry_run_ids("--all", "--protocol", "tencent") == [tencent.pk]


def test_select_by_received_time_window(client):
    old, middle, new = (deliver_user(client, f"u{i}", "x") for i in range(3))
    now = timezone.now()
    CallbackEvent.objects.filter(pk=old.pk).update(received_at=now - timedelta(days=3))
    CallbackEvent.objects.filter(pk=middle.pk).update(received_at=now - timedelta(days=1))
    since = (now - timedelta(days=2)).isoformat()
    until = (now - timedelta(hours=12)).isoformat()

    assert dry_run_ids("--all", "--since", since) == [middle.pk, new.pk]
    assert dry_run_ids("--all", "--until", until) == [old.pk, middle.pk]
    assert dry_run_ids("--all", "--since", since, "--until", until) == [middle.pk]
    day = (now - timedelta(days=3)).date().isoformat()
    assert old.pk in dry_run_ids("--all", "--since", day)


def test_select_by_user_and_group(client):
    alice = deliver_user(client, "u1001", "Alice")
    # "u1001" appears here only as a nickname, not as a user ID: the SQL prefilter over-matches,
    # the check in Python drops it.
    nickname_only = deliver_user(client, "u2", "u1001")
    remark = post_openim(
        client,
        "/callbackAfterSetFriendRemarkCommand",
        sample("openim", "callbackAfterSetFriendRemarkCommand"),
    )
    assert remark.status_code == 200
    remark = CallbackEvent.objects.latest("id")  # ownerUserID u1001, friendUserID u1002
    member = post_openim(
        client,
        "/callbackAfterSetGroupMemberInfoCommand",
        sample("openim", "callbackAfterSetGroupMemberInfoCommand"),  # group 3318432212, u1003
    )
    assert member.status_code == 200
    member = CallbackEvent.objects.latest("id")
    unicode_user = deliver_user(client, "用户-ü", "Zoë")

    assert dry_run_ids("--all", "--user", "u1001") == [alice.pk, remark.pk]
    assert nickname_only.pk not in dry_run_ids("--all", "--user", "u1001")
    assert dry_run_ids("--all", "--user", "u1002") == [remark.pk]
    assert dry_run_ids("--all", "--user", "u1003") == [member.pk]
    assert dry_run_ids("--all", "--group", "3318432212") == [member.pk]
    assert dry_run_ids("--all", "--group", "u1003") == []  # a user ID is not a group ID
    assert dry_run_ids("--all", "--user", "u1003", "--group", "3318432212") == [member.pk]
    assert dry_run_ids("--all", "--user", "用户-ü") == [unicode_user.pk]

    out, _ = replay("--all", "--user", "u1001")
    assert "Replayed 2 event(s): 2 processed" in out


def test_stale_received_events(client, openim_settings):
    """Events left ``received`` (queued, never processed: a dead worker, an outage) are replayed
    once they are older than --stale-minutes; fresh ones may still be in flight and are left."""
    openim_settings(PROCESSING="deferred")
    stuck = deliver_user(client, "u1", "Stuck")
    fresh = deliver_user(client, "u2", "In flight")
    assert stuck.status == fresh.status == EventStatus.RECEIVED
    CallbackEvent.objects.filter(pk=stuck.pk).update(
        received_at=timezone.now() - timedelta(minutes=30)
    )

    assert dry_run_ids() == [stuck.pk]
    assert dry_run_ids("--status", "received", "--stale-minutes", "0") == [stuck.pk, fresh.pk]
    assert dry_run_ids("--stale-minutes", "60") == []

    replay()
    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert stuck.status == EventStatus.PROCESSED
    assert fresh.status == EventStatus.RECEIVED
    assert ImUser.objects.get(user_id="u1").nickname == "Stuck"


def mirror_state():
    state = {}
    for model in (ImUser, Friend, GroupMember, OnlineSession):
        state[model.__name__] = sorted(
            (
                {f.attname: getattr(row, f.attname) for f in model._meta.concrete_fields}
                | {"updated_at": None}
                for row in model.objects.all()
            ),
            key=repr,
        )
    return state


def test_replaying_everything_twice_changes_nothing(client):
    deliver_user(client, "u1001", "Alice (old)")
    deliver_user(client, "u1001", "Alice (new)")
    for command in (
        "callbackAfterSetFriendRemarkCommand",
        "callbackAfterSetGroupMemberInfoCommand",
        "callbackAfterUserOnlineCommand",
        "callbackAfterUserOfflineCommand",
    ):
        assert post_openim(client, f"/{command}", sample("openim", command)).status_code == 200
    assert post_tencent(client, sample("tencent", "Profile.CallbackPortraitSet")).status_code == 200
    before = mirror_state()
    assert ImUser.objects.get(user_id="u1001").nickname == "Alice (new)"

    for _ in range(2):
        out, _ = replay("--all", "--batch-size", "2")
        assert "Replayed 7 event(s)" in out
        assert "failed" not in out and "rejected" not in out
        assert mirror_state() == before
    # The older update, replayed after the newer one, did not win.
    assert ImUser.objects.get(user_id="u1001").nickname == "Alice (new)"
    session = OnlineSession.objects.get(user_id="u1001", platform="Web")
    assert session.online is False


def test_batches_cover_every_event(client):
    events = [deliver_user(client, f"u{i}", "x") for i in range(7)]
    out, err = replay("--all", "--batch-size", "3")
    assert "Replayed 7 event(s): 7 processed" in out
    assert all(e.attempts == 2 for e in CallbackEvent.objects.filter(pk__in=[e.pk for e in events]))
    # Not a terminal: plain counts after each batch.
    assert "Progress: 3 of at most 7 event(s) replayed." in err
    assert "Progress: 6 of at most 7 event(s) replayed." in err


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal(client):
    for i in range(3):
        deliver_user(client, f"u{i}", "x")
    err = Terminal()
    call_command("openim_replay", "--all", stdout=io.StringIO(), stderr=err)
    assert "\r[" + "#" * 30 + "] 3/3" in err.getvalue()
    assert "Progress:" not in err.getvalue()


def test_verbose_lists_each_outcome(client):
    event = deliver_user(client, "u1", "x")
    out, _ = replay("--all", "-v", "2")
    assert f"#{event.pk} callbackAfterUpdateUserInfoExCommand: processed" in out


def test_contradictory_options():
    with pytest.raises(CommandError, match="--all and --status"):
        replay("--all", "--status", "failed")


def test_reads_in_keyset_batches(client):
    """Bounded memory: each query fetches one batch after the last id seen, never OFFSET."""
    from django.test.utils import CaptureQueriesContext

    for i in range(7):
        deliver_user(client, f"u{i}", "x")
    with CaptureQueriesContext(connection) as queries:
        replay("--all", "--batch-size", "3")
    pages = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT") and "LIMIT 3" in q["sql"]
    ]
    assert len(pages) == 4  # 3 + 3 + 1, then an empty page
    assert all("OFFSET" not in sql for sql in pages)
    assert all('"openim_sync_callbackevent"."id" >' in sql for sql in pages[1:])


@pytest.mark.django_db(transaction=True)
def test_interrupted_run_reports_what_it_did(client):
    """Ctrl-C (here raised by a signal receiver on the third event) prints the counts so far.

    Signals are sent when a batch commits; with batches of one, the third event is committed and
    the interrupt stops the run before it is counted."""
    from openim_sync.signals import event_processed

    for i in range(5):
        deliver_user(client, f"u{i}", "x")
    seen = []

    def interrupt(sender, **kwargs):
        seen.append(kwargs["event"].pk)
        if len(seen) == 3:
            raise KeyboardInterrupt

    event_processed.connect(interrupt, weak=False)
    try:
        with pytest.raises(CommandError) as error:
            replay("--all", "--batch-size", "1")
    finally:
        event_processed.disconnect(interrupt)
    assert error.value.returncode == 130
    assert "Interrupted. Replayed 2 event(s): 2 processed" in str(error.value)
    assert sorted(CallbackEvent.objects.values_list("attempts", flat=True)) == [1, 1, 2, 2, 2]
