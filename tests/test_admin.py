"""The "Replay selected events" admin action, through real admin requests: it says what it will
do, skips rejected events unless asked, records each replay in the admin history and reports
each outcome at its own message level; the event page's Replay button runs it on one event."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from openim_sync.admin import actions
from openim_sync.models import CallbackEvent, EventStatus, ImUser
from tests.helpers import post_openim
from tests.test_replay import deliver_failed, deliver_rejected, deliver_user, failing_writes

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:openim_sync_callbackevent_changelist"


def change_url(event):
    return reverse("admin:openim_sync_callbackevent_change", args=[event.pk])


def post_action(client, ids, **extra):
    data = {"action": "replay_selected", ACTION_CHECKBOX_NAME: [str(pk) for pk in ids], **extra}
    return client.post(reverse(CHANGELIST), data, follow="post" in extra)


def messages_of(response):
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def deliver_ignored(client):
    post_openim(client, "/callbackAfterSendSingleMsgCommand", {"sendID": "u1", "recvID": "u2"})
    event = CallbackEvent.objects.latest("id")
    assert event.status == EventStatus.IGNORED
    return event


def test_action_is_offered_on_the_event_list(admin_client):
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert '<option value="replay_selected">Replay selected events</option>' in response.text


def test_the_confirmation_says_what_will_happen(client, admin_client):
    failed = deliver_failed(client)
    rejected = deliver_rejected(client)
    deliver_user(client, "u1", "Alice")

    response = post_action(admin_client, [failed.pk, rejected.pk])
    assert response.status_code == 200
    assert "admin/openim_sync/callbackevent/replay_confirmation.html" in [
        t.name for t in response.templates
    ]
    page = response.text
    assert "Replay 2 events through the pipeline" in page
    assert f"#{failed.pk}</a>" in page
    # Counts per status, each with what a replay does to it.
    assert '<tr class="replay-status-failed">' in page and "<td>1</td>" in page
    assert "applied again: processed if the cause" in page
    # Rejected events: a warning, skipped unless the box is ticked (unticked by default).
    assert 'id="oims-rejected-warning"' in page and "rejected again unless the code changed" in page
    assert (
        '<input type="checkbox" name="include_rejected" value="1" id="oims-include-rejected">'
        in page
    )
    assert '<input type="hidden" name="post" value="yes">' in page
    failed.refresh_from_db()
    assert failed.status == EventStatus.FAILED and failed.attempts == 1
    assert not LogEntry.objects.exists()


def test_a_confirmed_replay_skips_rejected_events_by_default(client, admin_client):
    failed = deliver_failed(client)
    rejected = deliver_rejected(client)
    untouched = deliver_user(client, "u1", "Alice")

    response = post_action(admin_client, [failed.pk, rejected.pk], post="yes")
    assert response.redirect_chain[-1][0] == reverse(CHANGELIST)
    assert messages_of(response) == [
        ("success", "1 event(s) replayed and processed; 1 mirror row(s) written."),
        (
            "info",
            '1 rejected event(s) skipped (tick "replay rejected events too" to replay them).',
        ),
    ]
    failed.refresh_from_db()
    rejected.refresh_from_db()
    untouched.refresh_from_db()
    assert failed.status == EventStatus.PROCESSED and failed.attempts == 2
    assert ImUser.objects.get(user_id="boom").last_event_id == failed.pk
    assert rejected.attempts == 1 and untouched.attempts == 1

    # The admin history: one entry per replayed event, by the admin, on the event.
    (entry,) = LogEntry.objects.all()
    assert entry.action_flag == CHANGE and entry.object_id == str(failed.pk)
    assert entry.user.username == "admin"
    assert entry.get_change_message() == "Replayed from admin: failed → processed."
    history = admin_client.get(
        reverse("admin:openim_sync_callbackevent_history", args=[failed.pk])
    ).text
    assert "Replayed from admin: failed → processed." in history


def test_rejected_events_are_replayed_when_asked_and_warned_about(client, admin_client):
    rejected = deliver_rejected(client)
    ignored = deliver_ignored(client)
    response = post_action(
        admin_client, [rejected.pk, ignored.pk], post="yes", include_rejected="1"
    )
    texts = [text for _, text in messages_of(response)]
    assert texts[0].startswith(f"1 event(s) rejected again: #{rejected.pk}.")
    assert texts[1].startswith(f"1 event(s) ignored: #{ignored.pk}.")
    assert [level for level, _ in messages_of(response)] == ["warning", "warning"]
    rejected.refresh_from_db()
    assert rejected.attempts == 2
    assert LogEntry.objects.get(object_id=str(rejected.pk)).get_change_message() == (
        "Replayed from admin: rejected → rejected."
    )


def test_events_still_failing_are_an_error(client, admin_client):
    failed = deliver_failed(client)
    with failing_writes("openim_sync_imuser", "user_id", "boom"):
        response = post_action(admin_client, [failed.pk], post="yes")
    ((level, text),) = messages_of(response)
    assert level == "error"
    assert f"1 event(s) failed again: #{failed.pk}. Still failing" in text
    assert LogEntry.objects.get().get_change_message() == "Replayed from admin: failed → failed."


def test_too_many_events_point_to_the_command(admin_client):
    events = CallbackEvent.objects.bulk_create(
        CallbackEvent(protocol="openim", command="callbackAfterUserOnlineCommand", body=b"{}")
        for _ in range(actions.MAX_REPLAY + 1)
    )
    # "Select all N events" in the change list: select_across with the page's ids.
    response = post_action(admin_client, [events[0].pk], select_across="1", post="yes")
    ((level, message),) = messages_of(response)
    assert level == "error"
    assert f"{actions.MAX_REPLAY + 1} events selected" in message and "openim_replay" in message
    assert set(CallbackEvent.objects.values_list("attempts", flat=True)) == {0}


def test_the_event_page_replays_that_event(client, admin_client):
    failed = deliver_failed(client)
    page = admin_client.get(change_url(failed)).text
    assert 'id="oims-replay"' in page and 'name="return_to" value="change"' in page

    # The button posts the action for this one event: the confirmation page first...
    response = admin_client.post(
        reverse(CHANGELIST),
        {
            "action": "replay_selected",
            ACTION_CHECKBOX_NAME: [str(failed.pk)],
            "return_to": "change",
        },
    )
    assert "Replay 1 event through the pipeline" in response.text
    assert '<input type="hidden" name="return_to" value="change">' in response.text
    # ...then back on the event's page, with the outcome.
    response = post_action(admin_client, [failed.pk], post="yes", return_to="change")
    assert response.redirect_chain[-1][0] == change_url(failed)
    assert messages_of(response)[0][0] == "success"
    failed.refresh_from_db()
    assert failed.status == EventStatus.PROCESSED


def test_staff_without_change_permission_cannot_replay(client):
    event = deliver_user(client, "u1", "Alice")
    staff = User.objects.create_user("ops", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_callbackevent"))
    client.force_login(staff)
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert "replay_selected" not in response.text
    assert 'id="oims-replay"' not in client.get(change_url(event)).text
    response = post_action(client, [event.pk], post="yes")
    event.refresh_from_db()
    assert event.attempts == 1

    staff.user_permissions.add(Permission.objects.get(codename="change_callbackevent"))
    client.force_login(User.objects.get(pk=staff.pk))
    assert "replay_selected" in client.get(reverse(CHANGELIST)).text
    assert 'id="oims-replay"' in client.get(change_url(event)).text
