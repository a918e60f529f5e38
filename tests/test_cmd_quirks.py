"""Per-command quirks: old names and URL shapes, repeated or missing keys, both Tencent spellings."""

import pytest

from openim_sync.callbacks import registry
from openim_sync.models import CallbackEvent, Friend, GroupMember, ImGroup, OnlineSession
from tests.helpers import post_openim, post_tencent


def last_event():
    return CallbackEvent.objects.order_by("-id").first()


def openim(client, command, body, *, shape="path"):
    body = {"callbackCommand": command, **body}
    if shape == "path":  # v3.5+
        response = post_openim(client, f"/{command}", body)
    elif shape == "query":  # v3.0-3.4
        response = post_openim(client, "", body, query={"command": command})
    else:  # v2: the command only in the body
        response = post_openim(client, "", body)
    assert response.status_code == 200, response.content
    return last_event()


def tencent(client, command, body, **query):
    response = post_tencent(client, {"CallbackCommand": command, **body}, **query)
    assert response.status_code == 200, response.content
    return last_event()


def roles(group_id):
    return {
        m.user_id: (m.role_level, m.removed_reason if m.removed_at else None)
        for m in GroupMember.objects.filter(group_id=group_id)
    }


def create_group(client, group_id, members, owner="u1"):
    body = {"groupID": group_id, "groupName": "G", "ownerUserID": owner, "groupType": 2}
    body["initMemberList"] = [{"userID": u, "roleLevel": r} for u, r in members]
    assert openim(client, "callbackAfterCreateGroupCommand", body).status == "processed"


OLD_NAMES = [
    "callbackUserOnlineCommand",
    "callbackUserOfflineCommand",
    "callbackUserKickOffCommand",
    "callbackAfterUserKickOffCommand",
    "callbackQuitGroupCommand",
    "callbackKillGroupCommand",
    "callbackDisMissGroupCommand",
    "callbackAfterSetFriendRemark",
    "callbackAfterTransferGroupOwner",
    "callbackTransferGroupOwnerAfter",
    "callbackAfterSetGroupMemberInfo",
]


@pytest.mark.parametrize("name", OLD_NAMES)
def test_old_names_are_handled(name):
    spec = registry.lookup("openim", name)
    assert spec is not None and not spec.ignored


def test_v3_0_query_shape_quit_and_v2_bare_kick_off(client, db):
    create_group(client, "g", [("u1", 100), ("u2", 20), ("u1", 20)])
    event = openim(
        client, "callbackQuitGroupCommand", {"groupID": "g", "userID": "u2"}, shape="query"
    )
    assert (event.command, event.status) == ("callbackQuitGroupCommand", "processed")
    assert roles("g") == {"u1": (100, None), "u2": (20, "quit")}

    online = {"userID": "u1", "platformID": 2, "platform": "Android", "seq": 5, "token": "t"}
    openim(client, "callbackUserOnlineCommand", online, shape="bare")
    event = openim(client, "callbackUserKickOffCommand", {**online, "seq": 6}, shape="bare")
    assert event.status == "processed"
    session = OnlineSession.objects.get(user_id="u1", platform="Android")
    assert (session.online, session.reason, session.version) == (False, "KickOff", 6)


def test_v3_6_kill_dismiss_and_transfer_names(client, db):
    create_group(client, "g", [("u1", 100), ("u2", 60), ("u3", 20), ("u2", 20), ("u1", 20)])
    openim(client, "callbackKillGroupCommand", {"groupID": "g", "kickedUserIDs": ["u3"]})
    transfer = {"groupID": "g", "oldOwnerUserID": "u1", "newOwnerUserID": "u2"}
    openim(client, "callbackAfterTransferGroupOwner", transfer)
    assert roles("g") == {"u1": (60, None), "u2": (100, None), "u3": (20, "kicked")}
    openim(client, "callbackDisMissGroupCommand", {"groupID": "g", "ownerID": "u2"})
    assert set(roles("g").values()) == {(60, "dismissed"), (100, "dismissed"), (20, "kicked")}
    assert ImGroup.objects.get(group_id="g").status == 2


def test_create_group_drops_the_operator_listed_last(client, db):
    # Created via REST by imAdmin: listed once, with 20, after the owner's repeat.
    members = [("u1", 100), ("u2", 60), ("u3", 20), ("u2", 20), ("u1", 20), ("imAdmin", 20)]
    create_group(client, "g", members)
    assert roles("g") == {"u1": (100, None), "u2": (60, None), "u3": (20, None)}


def test_create_group_without_repeats_keeps_every_member(client, db):
    # The pre-v3.7 shape (like the before-callback): owner, admins, members, each once.
    create_group(client, "g", [("u1", 100), ("u2", 60), ("u3", 20), ("u4", 20)])
    assert roles("g") == {"u1": (100, None), "u2": (60, None), "u3": (20, None), "u4": (20, None)}


def test_transfer_to_an_unknown_member_gives_the_old_owner_member_role(client, db):
    create_group(client, "g", [("u1", 100), ("u1", 20)])
    body = {"groupID": "g", "oldOwnerUserID": "u1", "newOwnerUserID": "u9"}
    openim(client, "callbackAfterTransferGroupOwnerCommand", body)
    assert roles("g") == {"u1": (20, None), "u9": (100, None)}
    assert ImGroup.objects.get(group_id="g").owner_user_id == "u9"


def test_dismiss_with_null_members_tombstones_every_known_member(client, db):
    create_group(client, "g", [("u1", 100), ("u2", 20), ("u1", 20)])
    body = {"groupID": "g", "ownerID": "u1", "groupType": "\u0002", "membersID": None}
    assert openim(client, "callbackAfterDisMissGroupCommand", body).status == "processed"
    assert roles("g") == {"u1": (100, "dismissed"), "u2": (20, "dismissed")}
    assert ImGroup.objects.get(group_id="g").group_type == "2"  # "\u0002" is not stored


def test_join_with_the_docs_user_id_key(client, db):
    openim(client, "callbackAfterJoinGroupCommand", {"groupID": "g", "userID": "u5"})
    assert roles("g") == {"u5": (20, None)}


def test_join_without_any_user_is_rejected_naming_the_field(client, db):
    response = post_openim(
        client, "/callbackAfterJoinGroupCommand", {"groupID": "g", "reqMessage": "hi"}
    )
    assert response.status_code == 400
    event = last_event()
    assert event.status == "rejected" and "inviterUserID" in event.reason
    assert not GroupMember.objects.exists()


def test_add_friend_agree_docs_keys_and_refusal(client, db):
    refused = {"fromUserID": "u1", "blackUserID": "u2", "HandleResult": -1, "HandleMsg": "no"}
    assert openim(client, "callbackAfterAddFriendAgreeCommand", refused).status == "processed"
    assert not Friend.objects.exists()
    docs = {"fromUserID": "u1", "toUserID": "u2", "handleResult": 1, "handleMsg": "ok"}
    openim(client, "callbackAfterAddFriendAgreeCommand", docs)
    assert set(Friend.objects.values_list("owner_user_id", "friend_user_id")) == {
        ("u1", "u2"),
        ("u2", "u1"),
    }


def test_set_group_info_blank_is_unchanged_but_ex_form_clears(client, db):
    body = {"groupID": "g", "groupName": "G", "introduction": "Intro", "ex": "x", "groupType": 2}
    openim(client, "callbackAfterCreateGroupCommand", body)
    legacy = {"groupID": "g", "groupName": "", "introduction": "", "ex": "", "lookMemberInfo": 1}
    openim(client, "callbackAfterSetGroupInfoCommand", legacy)
    group = ImGroup.objects.get(group_id="g")
    assert (group.name, group.introduction, group.ex, group.look_member_info) == (
        "G",
        "Intro",
        "",
        1,
    )
    openim(
        client,
        "callbackAfterSetGroupInfoExCommand",
        {"groupID": "g", "groupName": None, "introduction": "", "lookMemberInfo": None},
    )
    group = ImGroup.objects.get(group_id="g")
    assert (group.name, group.introduction, group.look_member_info) == ("G", "", 1)


def test_tencent_member_field_changed_modified_account_and_string_event_time(client, db):
    group = {"GroupId": "@TGS#q", "Type": "Public"}
    tencent(
        client,
        "Group.CallbackAfterCreateGroup",
        {**group, "Owner_Account": "a", "MemberList": [{"Member_Account": "b"}], "EventTime": 10},
    )
    change = {**group, "Modified_Account": "b", "Role": "Admin", "EventTime": "30"}
    assert tencent(client, "Group.CallbackAfterMemberFieldChanged", change).status == "processed"
    demote = {
        **group,
        "Member_Account": "b",
        "Role": "Member",
        "NameCard": "Bee",
        "EventTime": "20",
    }
    tencent(client, "Group.CallbackAfterMemberFieldChanged", demote)
    member = GroupMember.objects.get(group_id="@TGS#q", user_id="b")
    # The older demotion loses; its NameCard is the only news about that field, so it is kept.
    assert (member.role_level, member.nickname, member.version) == (60, "Bee", 30)


def test_tencent_member_field_changed_needs_an_account(client, db):
    response = post_tencent(
        client,
        {
            "CallbackCommand": "Group.CallbackAfterMemberFieldChanged",
            "GroupId": "g",
            "Role": "Admin",
        },
    )
    assert response.status_code == 400
    assert "Member_Account" in last_event().reason


def test_tencent_state_platform_case_and_logout(client, db):
    login = {"Action": "Login", "To_Account": "a", "Reason": "Register"}
    tencent(client, "State.StateChange", {"EventTime": 1, "Info": login}, OptPlatform="IOS")
    logout = {**login, "Action": "Logout", "Reason": "Unregister"}
    tencent(
        client,
        "State.StateChange",
        {"EventTime": "2", "Info": logout},
        OptPlatform="iOS",
        ClientIP="not-an-ip",
    )
    session = OnlineSession.objects.get()
    assert (session.platform, session.online, session.reason) == ("iOS", False, "Unregister")
    assert session.client_ip == "203.0.113.24"  # the first, valid ClientIP is kept


def test_tencent_destroy_without_member_list(client, db):
    group = {"GroupId": "@TGS#c", "Type": "Community"}
    tencent(
        client,
        "Group.CallbackAfterCreateGroup",
        {**group, "Owner_Account": "a", "MemberList": [{"Member_Account": "b"}], "EventTime": 1},
    )
    tencent(client, "Group.CallbackAfterGroupDestroyed", {**group, "EventTime": 2})
    assert roles("@TGS#c") == {"a": (100, "dismissed"), "b": (20, "dismissed")}


def test_tencent_create_with_admin_role_in_member_list(client, db):
    body = {
        "GroupId": "@TGS#r",
        "Owner_Account": "a",
        "MemberList": [{"Member_Account": "b", "Role": "Admin"}, {"Member_Account": "a"}],
        "EventTime": 1,
    }
    tencent(client, "Group.CallbackAfterCreateGroup", body)
    assert roles("@TGS#r") == {"a": (100, None), "b": (60, None)}
