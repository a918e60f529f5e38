"""event_received / event_processed: sent after the transaction commits, never on rollback."""

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction

from openim_sync import pipeline
from openim_sync.models import CallbackEvent, EventStatus, GroupMember, ImGroup, ImUser
from openim_sync.signals import event_processed, event_received
from tests.helpers import post_openim, post_tencent, sample
from tests.test_replay import deliver_user, failing_writes, user_info

MEMBER_COMMAND = "callbackAfterSetGroupMemberInfoCommand"


@pytest.fixture
def received():
    calls = []

    def receiver(sender, **kwargs):
        calls.append({"sender": sender, "in_atomic": connection.in_atomic_block, **kwargs})

    event_received.connect(receiver, weak=False)
    yield calls
    event_received.disconnect(receiver)


@pytest.fixture
def processed():
    calls = []

    def receiver(sender, **kwargs):
        event = kwargs["event"]
        committed = CallbackEvent.objects.filter(pk=event.pk, status=event.status).exists()
        calls.append(
            {
                "sender": sender,
                "in_atomic": connection.in_atomic_block,
                "committed": committed,
                **kwargs,
            }
        )

    event_processed.connect(receiver, weak=False)
    yield calls
    event_processed.disconnect(receiver)


@pytest.mark.django_db
def test_sent_only_when_the_transaction_commits(
    client, received, processed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_openim(client, f"/{MEMBER_COMMAND}", sample("openim", MEMBER_COMMAND))
        assert response.status_code == 200
    # Stored and applied, but the test's transaction has not committed: nothing sent yet.
    assert received == [] and processed == []
    assert len(callbacks) == 2

    for callback in callbacks:  # what a commit does
        callback()
    event = CallbackEvent.objects.get()
    (got,) = received
    assert got["sender"] is CallbackEvent and got["event"].pk == event.pk
    (done,) = processed
    assert done["sender"] is CallbackEvent
    assert done["command"] == MEMBER_COMMAND
    assert done["status"] == EventStatus.PROCESSED
    assert done["event"].pk == event.pk
    changed = {type(row): row for row in done["changed"]}
    assert set(changed) == {ImGroup, GroupMember}
    assert changed[GroupMember].natural_key() == ("3318432212", "u1003")
    assert changed[GroupMember].last_event_id == event.pk


@pytest.mark.django_db(transaction=True)
def test_delivered_after_commit_in_autocommit(client, received, processed):
    event = deliver_user(client, "u1", "Alice")
    assert [c["event"].pk for c in received] == [event.pk]
    (done,) = processed
    # Outside any transaction, with the outcome already committed.
    assert done["in_atomic"] is False and done["committed"] is True
    assert [row.user_id for row in done["changed"]] == ["u1"]
    assert isinstance(done["changed"][0], ImUser)


@pytest.mark.django_db(transaction=True)
def test_nothing_sent_when_the_surrounding_transaction_rolls_back(client, processed):
    event = deliver_user(client, "u1", "Alice")
    processed.clear()

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        pipeline.process(event)
        raise Abort
    assert processed == []
    event.refresh_from_db()
    assert event.attempts == 1


@pytest.mark.django_db(transaction=True)
def test_handler_failure_sends_failed_without_rows(client, processed):
    # The group row is written first, then the member insert fails: all of it rolls back.
    with failing_writes("openim_sync_groupmember", "user_id", "u1003"):
        response = post_openim(client, f"/{MEMBER_COMMAND}", sample("openim", MEMBER_COMMAND))
    assert response.status_code == 500
    assert not ImGroup.objects.exists() and not GroupMember.objects.exists()
    (done,) = processed
    assert done["status"] == EventStatus.FAILED and done["changed"] == []
    assert not [c for c in processed if c["status"] == EventStatus.PROCESSED]
    assert done["committed"] is True  # the failed status itself was committed


@pytest.mark.django_db(transaction=True)
def test_rejected_and_ignored_deliveries(client, received, processed):
    response = post_openim(client, "/callbackAfterUpdateUserInfoExCommand", None, raw=b"[1]")
    assert response.status_code == 400
    response = post_openim(client, "/callbackSomethingNewCommand", {"x": 1})
    assert response.status_code == 200
    assert len(received) == 2
    assert [(c["status"], c["changed"]) for c in processed] == [
        (EventStatus.REJECTED, []),
        (EventStatus.IGNORED, []),
    ]


@pytest.mark.django_db(transaction=True)
def test_deferred_received_now_processed_by_the_worker(client, received, processed, settings):
    from django.core.management import call_command

    settings.OPENIM_SYNC = {**settings.OPENIM_SYNC, "PROCESSING": "deferred"}
    response = post_openim(client, "/callbackAfterUpdateUserInfoExCommand", user_info("u1", "A"))
    assert response.status_code == 200
    assert len(received) == 1 and processed == []
    call_command("openim_worker", "--once", verbosity=0)
    (done,) = processed
    assert done["status"] == EventStatus.PROCESSED and len(done["changed"]) == 1


# The example from docs/signals.md: keep a host auth.User for every IM user.
def link_im_users(sender, event, status, changed, **kwargs):
    for row in changed:
        if isinstance(row, ImUser):
            user, _ = User.objects.get_or_create(username=row.user_id[:150])
            if row.nickname and user.first_name != row.nickname[:150]:
                user.first_name = row.nickname[:150]
                user.save(update_fields=["first_name"])


@pytest.mark.django_db(transaction=True)
def test_documented_example_links_im_users_to_auth_users(client):
    event_processed.connect(link_im_users)
    try:
        deliver_user(client, "u1001", "Alice")
        assert (
            post_tencent(client, sample("tencent", "Profile.CallbackPortraitSet")).status_code
            == 200
        )
        deliver_user(client, "u1001", "Alice W.")
    finally:
        event_processed.disconnect(link_im_users)
    assert User.objects.get(username="u1001").first_name == "Alice W."
    assert User.objects.get(username="user_alice").first_name == "Alice W."


@pytest.mark.django_db
def test_a_failing_receiver_is_logged_and_does_not_stop_the_others(
    client, caplog, django_capture_on_commit_callbacks
):
    later = []

    def broken(sender, **kwargs):
        raise RuntimeError("host bug")

    def recorder(sender, **kwargs):
        later.append(kwargs["status"])

    event_processed.connect(broken, weak=False)
    event_processed.connect(recorder, weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            event = deliver_user(client, "u1", "Alice")
    finally:
        event_processed.disconnect(broken)
        event_processed.disconnect(recorder)

    assert event.status == EventStatus.PROCESSED
    assert later == [EventStatus.PROCESSED]
    assert "signal receiver" in caplog.text and "host bug" in caplog.text
