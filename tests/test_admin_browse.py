"""Issue 2: the mirror and every delivery can be inspected in Django admin."""

import pytest
from django.urls import reverse

from openim_sync.models import (
    BlockedUser,
    CallbackEvent,
    Friend,
    GroupMember,
    ImGroup,
    ImUser,
    OnlineSession,
)
from tests.helpers import post_openim, post_tencent, sample, seed

pytestmark = pytest.mark.django_db

MODELS = (CallbackEvent, ImUser, ImGroup, GroupMember, Friend, BlockedUser, OnlineSession)


@pytest.fixture
def filled(client):
    post_openim(
        client, "/callbackAfterUpdateUserInfoCommand", seed("callbackAfterUpdateUserInfoCommand")
    )
    post_openim(
        client,
        "/callbackAfterSetGroupMemberInfoCommand",
        seed("callbackAfterSetGroupMemberInfoCommand"),
    )
    post_openim(client, "", seed("callbackAfterSetFriendRemarkCommand"))
    post_openim(client, "/callbackUserOnlineCommand", seed("callbackUserOnlineCommand"))
    post_tencent(client, seed("Profile.CallbackPortraitSet"))
    post_tencent(client, sample("tencent", "Sns.CallbackBlackListAdd"))
    post_openim(client, "/callbackAfterSetGroupMemberInfoCommand", {"groupID": "1", "userID": ""})


def admin_url(model, view, *args):
    return reverse(f"admin:openim_sync_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_model_has_a_changelist_and_change_page(admin_client, filled, model):
    response = admin_client.get(admin_url(model, "changelist"))
    assert response.status_code == 200

    obj = model.objects.first()
    response = admin_client.get(admin_url(model, "change", obj.pk))
    assert response.status_code == 200


@pytest.mark.parametrize("model", MODELS[1:], ids=lambda m: m.__name__)
def test_mirror_is_read_only(admin_client, filled, model):
    assert admin_client.get(admin_url(model, "add")).status_code == 403
    obj = model.objects.first()
    page = admin_client.get(admin_url(model, "change", obj.pk)).content.decode()
    assert 'name="_save"' not in page
    assert admin_client.post(admin_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=obj.pk).exists()


def test_mirror_row_links_to_the_event_that_last_changed_it(admin_client, filled):
    user = ImUser.objects.get(user_id="user123")
    page = admin_client.get(admin_url(ImUser, "change", user.pk)).content.decode()
    assert admin_url(CallbackEvent, "change", user.last_event_id) in page

    listing = admin_client.get(admin_url(ImUser, "changelist")).content.decode()
    assert f'href="{admin_url(CallbackEvent, "change", user.last_event_id)}"' in listing


def test_event_page_shows_payload_as_indented_json(admin_client, filled):
    event = CallbackEvent.objects.get(command="callbackAfterSetFriendRemarkCommand")
    page = admin_client.get(admin_url(CallbackEvent, "change", event.pk)).content.decode()
    assert "<pre" in page
    assert "\n  &quot;friendUserID&quot;: &quot;user456&quot;," in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status__exact=rejected", {"callbackAfterSetGroupMemberInfoCommand"}),
        ("protocol__exact=tencent", {"Profile.CallbackPortraitSet", "Sns.CallbackBlackListAdd"}),
        ("command=callbackUserOnlineCommand", {"callbackUserOnlineCommand"}),
    ],
)
def test_event_list_filters(admin_client, filled, query, expected):
    response = admin_client.get(admin_url(CallbackEvent, "changelist") + "?" + query)
    assert response.status_code == 200
    shown = {event.command for event in response.context["cl"].result_list}
    assert shown == expected


@pytest.mark.parametrize(
    ("model", "term", "expected"),
    [
        (ImUser, "user123", ["user123"]),
        (ImUser, "nick1", ["id1"]),
        (GroupMember, "user789", ["user789"]),
        (Friend, "user456", ["user123"]),
        (OnlineSession, "user123", ["user123"]),
    ],
)
def test_mirror_search_on_im_ids(admin_client, filled, model, term, expected):
    response = admin_client.get(admin_url(model, "changelist") + f"?q={term}")
    rows = response.context["cl"].result_list
    key = "owner_user_id" if model is Friend else "user_id"
    assert [getattr(row, key) for row in rows] == expected


def test_presence_and_state_filters(admin_client, filled):
    online = admin_client.get(admin_url(OnlineSession, "changelist") + "?presence=online")
    assert [s.user_id for s in online.context["cl"].result_list] == ["user123"]
    removed = admin_client.get(admin_url(GroupMember, "changelist") + "?state=removed")
    assert list(removed.context["cl"].result_list) == []


def test_admin_needs_login(client, filled):
    response = client.get(admin_url(ImUser, "changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
