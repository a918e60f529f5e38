"""Issue 2: the five seed callbacks, as printed in the seeds and as real servers send them,
through every URL shape, give the documented reply and exactly the expected mirror rows."""

import json

import pytest

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

OPENIM_OK = {"actionCode": 0, "errCode": 0, "errMsg": "", "errDlt": "", "nextCode": 0}
TENCENT_OK = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
MIRROR_MODELS = (ImUser, ImGroup, GroupMember, Friend, BlockedUser, OnlineSession)
BOOKKEEPING = {"id", "version", "versions", "last_event", "created_at", "updated_at"}


def mirror():
    """Every mirror row as a dict of its typed columns (no bookkeeping), per model."""
    state = {}
    for model in MIRROR_MODELS:
        columns = [f.attname for f in model._meta.concrete_fields if f.name not in BOOKKEEPING]
        state[model.__name__] = sorted(
            (
                dict(zip(columns, values, strict=True))
                for values in model.objects.values_list(*columns)
            ),
            key=lambda row: json.dumps(row, default=str, sort_keys=True),
        )
    return state


def only(state, **expected_counts):
    """Assert that exactly these models have rows, in these numbers."""
    counts = {name: len(rows) for name, rows in state.items() if rows}
    assert counts == expected_counts


# The four OpenIM URL shapes: (path, query) given a command.
OPENIM_SHAPES = {
    "path (v3.5+)": lambda command: (f"/{command}", None),
    "path + contenttype (docs)": lambda command: (f"/{command}", {"contenttype": "json"}),
    "query (v3.0-3.4, seeds)": lambda command: ("", {"command": command, "contenttype": "json"}),
    "body only (v2)": lambda command: ("", None),
}


def deliver_openim(client, shape, body, operation_id=""):
    path, query = OPENIM_SHAPES[shape](body["callbackCommand"])
    response = post_openim(client, path, body, query=query, operation_id=operation_id)
    assert response.status_code == 200, response.content
    assert response.json() == OPENIM_OK
    return response


@pytest.mark.parametrize("shape", OPENIM_SHAPES)
class TestOpenIMSeedsThroughEveryUrlShape:
    def test_update_user_info(self, client, shape):
        deliver_openim(client, shape, seed("callbackAfterUpdateUserInfoCommand"), "1646445464564")

        state = mirror()
        only(state, ImUser=1)
        user = state["ImUser"][0]
        assert user["user_id"] == "user123"
        assert user["nickname"] == "John Doe"
        assert user["face_url"] == "http://example.com/path/to/face/image.png"
        assert user["ex"] == "Extra data"
        assert user["gender"] == "" and user["custom"] == {}

        event = CallbackEvent.objects.get()
        assert event.command == "callbackAfterUpdateUserInfoCommand"
        assert (event.status, event.protocol, event.operation_id) == (
            "processed",
            "openim",
            "1646445464564",
        )
        assert event.payload == seed("callbackAfterUpdateUserInfoCommand")
        assert ImUser.objects.get().last_event == event

    def test_set_group_member_info(self, client, shape):
        deliver_openim(client, shape, seed("callbackAfterSetGroupMemberInfoCommand"))

        state = mirror()
        only(state, ImGroup=1, GroupMember=1)
        member = state["GroupMember"][0]
        assert member["group_id"] == "12345" and member["user_id"] == "user789"
        assert member["nickname"] == "user"
        assert member["face_url"] == "http://example.com/path/to/face/image.png"
        assert member["role_level"] == 20
        assert member["ex"] == "Extra data"
        assert member["removed_at"] is None
        # The membership implies its group; its details stay unknown until a group callback.
        group = state["ImGroup"][0]
        assert group["group_id"] == "12345" and group["name"] == "" and group["removed_at"] is None

    def test_set_friend_remark(self, client, shape):
        deliver_openim(client, shape, seed("callbackAfterSetFriendRemarkCommand"))

        state = mirror()
        only(state, Friend=1)
        friend = state["Friend"][0]
        assert (friend["owner_user_id"], friend["friend_user_id"]) == ("user123", "user456")
        assert friend["remark"] == "My Best Friend"
        assert friend["removed_at"] is None

    def test_user_online(self, client, shape):
        deliver_openim(client, shape, seed("callbackUserOnlineCommand"))

        state = mirror()
        only(state, OnlineSession=1)
        session = state["OnlineSession"][0]
        assert session["user_id"] == "user123"
        assert session["conn_id"] == "conn123"
        assert session["platform"] == "Unknown" and session["platform_id"] is None
        assert session["online"] is True and session["is_app_background"] is False
        assert OnlineSession.objects.get().version == 123456  # ordered by seq
        assert OnlineSession.objects.online().count() == 1


class TestAsRealServersSendThem:
    """The reference samples: compact JSON + newline, charset content type, empty operationID."""

    def test_update_user_info_blank_means_unchanged(self, client):
        deliver_openim(client, "path (v3.5+)", seed("callbackAfterUpdateUserInfoCommand"))
        deliver_openim(
            client,
            "path (v3.5+)",
            {**sample("openim", "callbackAfterUpdateUserInfoCommand"), "userID": "user123"},
        )

        user = ImUser.objects.get()
        assert user.nickname == "Alice W."
        assert user.face_url == "http://example.com/path/to/face/image.png"  # "" = unchanged
        assert user.ex == "Extra data"  # "" = unchanged

    def test_update_user_info_ex_null_means_unchanged_and_blank_clears(self, client):
        deliver_openim(client, "path (v3.5+)", seed("callbackAfterUpdateUserInfoCommand"))
        body = {
            "callbackCommand": "callbackAfterUpdateUserInfoExCommand",
            "userID": "user123",
            "nickName": None,
            "faceURL": "",
            "ex": None,
        }
        deliver_openim(client, "path (v3.5+)", body)

        user = ImUser.objects.get()
        assert (user.nickname, user.face_url, user.ex) == ("John Doe", "", "Extra data")

    def test_update_user_info_ex_sample(self, client):
        deliver_openim(
            client, "path (v3.5+)", sample("openim", "callbackAfterUpdateUserInfoExCommand")
        )

        user = ImUser.objects.get(user_id="u1001")
        assert user.nickname == "Alice W."
        assert user.face_url == "https://cdn.example.com/avatars/u1001-v2.png"
        assert user.ex == ""

    def test_set_group_member_info_sample_keeps_null_fields(self, client):
        deliver_openim(
            client,
            "path (v3.5+)",
            {
                **seed("callbackAfterSetGroupMemberInfoCommand"),
                "groupID": "3318432212",
                "userID": "u1003",
            },
        )
        deliver_openim(
            client, "path (v3.5+)", sample("openim", "callbackAfterSetGroupMemberInfoCommand")
        )

        member = GroupMember.objects.get()
        assert member.nickname == "Trail boss"
        assert member.role_level == 60
        assert member.face_url == "http://example.com/path/to/face/image.png"  # null = unchanged
        assert member.ex == "Extra data"

    def test_friend_remark_sample(self, client):
        deliver_openim(
            client, "path (v3.5+)", sample("openim", "callbackAfterSetFriendRemarkCommand")
        )

        friend = Friend.objects.get()
        assert (friend.owner_user_id, friend.friend_user_id, friend.remark) == (
            "u1001",
            "u1002",
            "Bob (work)",
        )

    def test_online_then_offline_v3_7_names(self, client):
        online = sample("openim", "callbackAfterUserOnlineCommand")
        offline = {
            **sample("openim", "callbackAfterUserOfflineCommand"),
            "platformID": 2,
            "platform": "Android",
        }
        deliver_openim(client, "path (v3.5+)", online, operation_id="p_27_1583")
        deliver_openim(client, "path (v3.5+)", offline, operation_id="p_27_1611")

        session = OnlineSession.objects.get()
        assert (session.user_id, session.platform, session.platform_id, session.conn_id) == (
            "u1001",
            "Android",
            2,
            "",
        )
        assert session.online is False
        assert session.version == offline["seq"]

    def test_offline_with_older_seq_does_not_win(self, client):
        online = sample("openim", "callbackAfterUserOnlineCommand")
        stale_offline = {
            **online,
            "callbackCommand": "callbackAfterUserOfflineCommand",
            "seq": online["seq"] - 1,
        }
        deliver_openim(client, "path (v3.5+)", online)
        deliver_openim(client, "path (v3.5+)", stale_offline)

        assert OnlineSession.objects.get().online is True
        assert CallbackEvent.objects.filter(status="processed").count() == 2

    def test_online_platforms_are_separate_sessions(self, client):
        android = sample("openim", "callbackAfterUserOnlineCommand")
        web = {**android, "platformID": 5, "platform": "Web", "seq": android["seq"] + 1}
        deliver_openim(client, "path (v3.5+)", android)
        deliver_openim(client, "path (v3.5+)", web)

        assert sorted(OnlineSession.objects.values_list("platform", "online")) == [
            ("Android", True),
            ("Web", True),
        ]


class TestTencentProfile:
    def test_seed_as_printed(self, client):
        response = post_tencent(
            client, seed("Profile.CallbackPortraitSet"), ClientIP="127.0.0.1", OptPlatform="RESTAPI"
        )
        assert response.status_code == 200
        assert response.json() == TENCENT_OK

        state = mirror()
        only(state, ImUser=1)
        user = ImUser.objects.get()
        assert user.user_id == "id1"
        assert (user.nickname, user.gender, user.allow_type) == (
            "nick1",
            "Gender_Type_Male",
            "AllowType_Type_NeedConfirm",
        )
        assert user.custom == {"Tag_Profile_Custom_Data": "your custom data"}
        assert user.version == 1656921052497  # EventTime
        event = CallbackEvent.objects.get()
        assert (event.protocol, event.command, event.status) == (
            "tencent",
            "Profile.CallbackPortraitSet",
            "processed",
        )
        assert event.query["SdkAppid"] == "1400123456" and event.query["OptPlatform"] == "RESTAPI"

    def test_every_standard_tag(self, client):
        body = sample("tencent", "Profile.CallbackPortraitSet")
        body["ProfileItem"] += [
            {"Tag": "Tag_Profile_IM_Location", "Value": "CN-GD-SZ"},
            {"Tag": "Tag_Profile_IM_MsgSettings", "Value": 1},
            {"Tag": "Tag_Profile_IM_AdminForbidType", "Value": "AdminForbid_Type_SendOut"},
            {"Tag": "Tag_Profile_IM_Role", "Value": "3"},
        ]
        assert post_tencent(client, body).status_code == 200

        user = ImUser.objects.get(user_id="user_alice")
        assert user.nickname == "Alice W."
        assert user.gender == "Gender_Type_Female"
        assert user.birthday == 19940512
        assert user.self_signature == "Coffee first, code second."
        assert user.allow_type == "AllowType_Type_NeedConfirm"
        assert user.language == 2
        assert user.face_url == "https://cdn.example.com/avatars/user_alice_v3.png"
        assert user.level == 7
        assert user.location == "CN-GD-SZ"
        assert user.msg_settings == 1
        assert user.admin_forbid_type == "AdminForbid_Type_SendOut"
        assert user.role == 3
        assert user.custom == {"Tag_Profile_Custom_City": "Shenzhen"}

    def test_partial_update_keeps_other_tags(self, client):
        post_tencent(client, sample("tencent", "Profile.CallbackPortraitSet"))
        later = {
            "CallbackCommand": "Profile.CallbackPortraitSet",
            "From_Account": "user_alice",
            "Operator_Account": "user_alice",
            "EventTime": 1767225700000,
            "ProfileItem": [
                {"Tag": "Tag_Profile_IM_Nick", "Value": "Alice"},
                {"Tag": "Tag_Profile_Custom_Team", "Value": "blue"},
            ],
        }
        post_tencent(client, later)

        user = ImUser.objects.get()
        assert user.nickname == "Alice"
        assert user.gender == "Gender_Type_Female" and user.level == 7
        assert user.custom == {
            "Tag_Profile_Custom_City": "Shenzhen",
            "Tag_Profile_Custom_Team": "blue",
        }

    def test_trailing_slash_url_as_in_the_tencent_console(self, client):
        response = post_tencent(
            client, seed("Profile.CallbackPortraitSet"), path="/openim/tencent/"
        )
        assert response.status_code == 200
        assert ImUser.objects.filter(user_id="id1").exists()

    def test_openim_and_tencent_write_the_same_user_profile(self, client):
        post_tencent(client, seed("Profile.CallbackPortraitSet"))
        deliver_openim(
            client, "path (v3.5+)", {**seed("callbackAfterUpdateUserInfoCommand"), "userID": "id1"}
        )

        user = ImUser.objects.get()
        assert (user.nickname, user.face_url, user.gender) == (
            "John Doe",
            "http://example.com/path/to/face/image.png",
            "Gender_Type_Male",
        )

    def test_an_event_time_older_than_the_stored_profile_changes_nothing(self, client):
        # The seed's EventTime is from 2022; the OpenIM update was received now.
        deliver_openim(
            client, "path (v3.5+)", {**seed("callbackAfterUpdateUserInfoCommand"), "userID": "id1"}
        )
        post_tencent(client, seed("Profile.CallbackPortraitSet"))

        user = ImUser.objects.get()
        assert user.nickname == "John Doe"
        assert user.gender == "Gender_Type_Male"  # a tag nobody wrote before still applies


SEED_DELIVERIES = {
    "callbackAfterUpdateUserInfoCommand": lambda c: deliver_openim(
        c, "query (v3.0-3.4, seeds)", seed("callbackAfterUpdateUserInfoCommand")
    ),
    "callbackAfterSetGroupMemberInfoCommand": lambda c: deliver_openim(
        c, "path + contenttype (docs)", seed("callbackAfterSetGroupMemberInfoCommand")
    ),
    "callbackAfterSetFriendRemarkCommand": lambda c: deliver_openim(
        c, "path + contenttype (docs)", seed("callbackAfterSetFriendRemarkCommand")
    ),
    "callbackUserOnlineCommand": lambda c: deliver_openim(
        c, "query (v3.0-3.4, seeds)", seed("callbackUserOnlineCommand")
    ),
    "Profile.CallbackPortraitSet": lambda c: post_tencent(c, seed("Profile.CallbackPortraitSet")),
}


@pytest.mark.parametrize("command", SEED_DELIVERIES)
def test_the_same_delivery_twice_leaves_the_mirror_as_once(client, command):
    SEED_DELIVERIES[command](client)
    once = mirror()
    SEED_DELIVERIES[command](client)
    twice = mirror()

    # A repeated "online" refreshes when the session was last seen; nothing else moves.
    for session in once["OnlineSession"] + twice["OnlineSession"]:
        session.pop("last_seen_at")
    assert twice == once
    assert CallbackEvent.objects.filter(status="processed").count() == 2


def test_unknown_command_is_stored_as_ignored_with_success_reply(client):
    response = post_openim(
        client,
        "/callbackAfterSomethingNewCommand",
        {"callbackCommand": "callbackAfterSomethingNewCommand", "x": 1},
    )

    assert response.status_code == 200 and response.json() == OPENIM_OK
    event = CallbackEvent.objects.get()
    assert event.status == "ignored"
    assert "Unknown openim command 'callbackAfterSomethingNewCommand'" in event.reason
    assert all(not rows for rows in mirror().values())


def test_url_command_disagreeing_with_body_is_400_and_stored_rejected(client):
    body = seed("callbackAfterSetFriendRemarkCommand")
    response = post_openim(client, "/callbackAfterUpdateUserInfoCommand", body)

    assert response.status_code == 400
    assert response.json()["errCode"] == 400
    assert "disagrees with callbackCommand" in response.json()["errMsg"]
    assert response.json()["nextCode"] == 0
    event = CallbackEvent.objects.get()
    assert event.status == "rejected" and "callbackAfterSetFriendRemarkCommand" in event.reason
    assert not Friend.objects.exists()


def test_no_redirect_for_any_shape(client):
    for path in ("", "/callbackAfterSetFriendRemarkCommand"):
        response = post_openim(client, path, seed("callbackAfterSetFriendRemarkCommand"))
        assert response.status_code == 200
