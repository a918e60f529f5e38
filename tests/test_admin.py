"""The "Replay selected events" admin action, through real admin requests."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from openim_sync.admin import actions
from openim_sync.models import CallbackEvent, EventStatus, ImUser
from tests.test_replay import deliver_failed, deliver_rejected, deliver_user, failing_writes

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:openim_sync_callbackevent_changelist"


def post_action(client, ids, **extra):
    data = {"action": "replay_selected", ACTION_CHECKBOX_NAME: [str(pk) for pk in ids], **extra}
    return client.post(reverse(CHANGELIST), data, follow=bool(extra))


def test_action_is_offered_on_the_event_list(admin_client):
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert '<option value="replay_selected">Replay selected events</option>' in response.text


def test_replay_asks_for_confirmation_then_replays(client, admin_client):
    failed = deliver_failed(client)
    rejected = deliver_rejected(client)
    untouched = deliver_user(client, "u1", "Alice")

    # First POST: a confirmation page, nothing replayed yet.
    response = post_action(admin_client, [failed.pk, rejected.pk])
    assert response.status_code == 200
    assert "admin/openim_sync/callbackevent/replay_confirmation.html" in [
        t.name for t in response.templates
    ]
    assert "Replay 2 events through the pipeline" in response.text
    assert f"#{failed.pk}</a>" in response.text and "failed: 1" in response.text
    assert '<input type="hidden" name="post" value="yes">' in response.text
    failed.refresh_from_db()
    assert failed.status == EventStatus.FAILED and failed.attempts == 1

    # Confirmed: replayed, back on the change list with a result message.
    response = post_action(admin_client, [failed.pk, rejected.pk], post="yes")
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == reverse(CHANGELIST)
    message = [str(m) for m in response.context["messages"]]
    assert message == ["Replayed 2 event(s): 1 processed, 1 rejected; 1 mirror row(s) written."]
    failed.refresh_from_db()
    assert failed.status == EventStatus.PROCESSED and failed.attempts == 2
    assert ImUser.objects.get(user_id="boom").last_event_id == failed.pk
    untouched.refresh_from_db()
    assert untouched.attempts == 1


def test_result_message_names_events_still_failing(client, admin_client):
    failed = deliver_failed(client)
    with failing_writes("openim_sync_imuser", "user_id", "boom"):
        response = post_action(admin_client, [failed.pk], post="yes")
    messages = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert messages[0][0] == "warning"
    assert f"Still failing: #{failed.pk}" in messages[0][1]


def test_too_many_events_point_to_the_command(admin_client):
    events = CallbackEvent.objects.bulk_create(
        CallbackEvent(protocol="openim", command="callbackAfterUserOnlineCommand", body=b"{}")
        for _ in range(actions.MAX_REPLAY + 1)
    )
    # "Select all N events" in the change list: select_across with the page's ids.
    response = post_action(admin_client, [events[0].pk], select_across="1", post="yes")
    (message,) = (str(m) for m in response.context["messages"])
    assert f"{actions.MAX_REPLAY + 1} events selected" in message and "openim_replay" in message
    assert set(CallbackEvent.objects.values_list("attempts", flat=True)) == {0}


def test_staff_without_change_permission_cannot_replay(client):
    staff = User.objects.create_user("ops", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_callbackevent"))
    client.force_login(staff)
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert "replay_selected" not in response.text

    staff.user_permissions.add(Permission.objects.get(codename="change_callbackevent"))
    staff = User.objects.get(pk=staff.pk)
    response = client.get(reverse(CHANGELIST))
    assert "replay_selected" in response.text
