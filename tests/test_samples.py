"""Every sample body, delivered as its server sends it, checked against the mirror."""

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
from tests.helpers import TOKEN, post_openim, post_tencent, row, sample, sample_commands

MIRROR = (ImUser, ImGroup, GroupMember, Friend, BlockedUser, OnlineSession)
OPENIM_OK = {"actionCode": 0, "errCode": 0, "errMsg": "", "errDlt": "", "nextCode": 0}
TENCENT_OK = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}

# ClientIP and OptPlatform of each Tencent sample (reference/samples/tencent/_request.md).
TENCENT_QUERY = {
    "Profile.CallbackPortraitSet": ("203.0.113.24", "iOS"),
    "State.StateChange": ("203.0.113.24", "IOS"),
    "Sns.CallbackPrevFriendAdd": ("203.0.113.24", "iOS"),
    "Sns.CallbackPrevFriendResponse": ("198.51.100.7", "Android"),
    "Sns.CallbackFriendAdd": ("192.0.2.10", "RESTAPI"),
    "Sns.CallbackFriendDelete": ("203.0.113.24", "iOS"),
    "Sns.CallbackBlackListAdd": ("198.51.100.7", "Android"),
    "Sns.CallbackBlackListDelete": ("198.51.100.7", "Android"),
    "Group.CallbackAfterCreateGroup": ("203.0.113.24", "iOS"),
    "Group.CallbackAfterNewMemberJoin": ("203.0.113.24", "iOS"),
    "Group.CallbackAfterMemberExit": ("203.0.113.24", "iOS"),
    "Group.CallbackAfterGroupInfoChanged": ("203.0.113.25", "Web"),
    "Group.CallbackAfterMemberFieldChanged": ("203.0.113.25", "Web"),
    "Group.CallbackAfterChangeGroupOwner": ("203.0.113.25", "Web"),
    "Group.CallbackAfterGroupDestroyed": ("192.0.2.10", "RESTAPI"),
    "Group.CallbackOnMemberStateChange": (None, None),
}


@pytest.fixture
def signed(openim_settings):
    openim_settings(TENCENT_TOKENS=[TOKEN])


def deliver(client, protocol, command, body=None):
    body = sample(protocol, command) if body is None else body
    if protocol == "openim":
        response = post_openim(
            client, f"/{command}", body, operation_id=body.get("operationID", "")
        )
        expected = OPENIM_OK
    else:
        client_ip, platform = TENCENT_QUERY[command]
        response = post_tencent(client, body, token=TOKEN, ClientIP=client_ip, OptPlatform=platform)
        expected = TENCENT_OK
    assert response.status_code == 200, response.content
    assert response.json() == expected
    return CallbackEvent.objects.order_by("-id").first()


def apply(client, protocol, command, body=None):
    event = deliver(client, protocol, command, body)
    assert (event.command, event.status, event.reason) == (command, "processed", "")
    return event


def member_roles(group_id):
    return {
        m.user_id: (m.role_level, m.removed_reason if m.removed_at else None)
        for m in GroupMember.objects.filter(group_id=group_id)
    }


def edges(model, field):
    return {
        (r.owner_user_id, getattr(r, field)): (r.removed_reason if r.removed_at else None)
        for r in model.objects.all()
    }


GROUP = "3318432212"
TGROUP = "@TGS#2C5SZEAEF"


# OpenIM Server ------------------------------------------------------------------------------


def check_user_register(client):
    apply(client, "openim", "callbackAfterUserRegisterCommand")
    fields = ("nickname", "face_url", "ex", "app_manager_level", "global_recv_msg_opt")
    alice, bob = ImUser.objects.get(user_id="u1001"), ImUser.objects.get(user_id="u1002")
    assert row(alice, *fields, "im_created_at_ms") == {
        "nickname": "Alice",
        "face_url": "https://cdn.example.com/avatars/u1001.png",
        "ex": '{"tier":"gold"}',
        "app_manager_level": 0,
        "global_recv_msg_opt": 0,
        "im_created_at_ms": None,  # createTime 0: not known
    }
    assert row(bob, *fields) == {
        "nickname": "Bob",
        "face_url": "",
        "ex": "",
        "app_manager_level": 0,
        "global_recv_msg_opt": 0,
    }


def check_update_user_info(client):
    apply(client, "openim", "callbackAfterUserRegisterCommand")
    apply(client, "openim", "callbackAfterUpdateUserInfoCommand")
    alice = ImUser.objects.get(user_id="u1001")
    # "" means unchanged in the legacy form.
    assert row(alice, "nickname", "face_url", "ex") == {
        "nickname": "Alice W.",
        "face_url": "https://cdn.example.com/avatars/u1001.png",
        "ex": '{"tier":"gold"}',
    }


def check_update_user_info_ex(client):
    apply(client, "openim", "callbackAfterUserRegisterCommand")
    apply(client, "openim", "callbackAfterUpdateUserInfoExCommand")
    alice = ImUser.objects.get(user_id="u1001")
    assert row(alice, "nickname", "face_url", "ex") == {
        "nickname": "Alice W.",
        "face_url": "https://cdn.example.com/avatars/u1001-v2.png",
        "ex": '{"tier":"gold"}',  # null: unchanged
    }


def session_row(user_id, platform):
    session = OnlineSession.objects.get(user_id=user_id, platform=platform, conn_id="")
    return row(session, "online", "platform_id", "is_app_background", "reason", "version")


def check_user_online(client):
    apply(client, "openim", "callbackAfterUserOnlineCommand")
    assert session_row("u1001", "Android") == {
        "online": True,
        "platform_id": 2,
        "is_app_background": False,
        "reason": "",
        "version": 1751450125021,
    }


def check_user_offline(client):
    apply(client, "openim", "callbackAfterUserOfflineCommand")
    assert session_row("u1001", "Web") == {
        "online": False,
        "platform_id": 5,
        "is_app_background": None,
        "reason": "",
        "version": 1751453900310,
    }


def check_user_kick_off(client):
    apply(
        client,
        "openim",
        "callbackAfterUserOnlineCommand",
        {**sample("openim", "callbackAfterUserOnlineCommand"), "platformID": 1, "platform": "IOS"},
    )
    apply(client, "openim", "callbackAfterUserKickOffCommand")
    assert session_row("u1001", "iOS") == {
        "online": False,
        "platform_id": 1,
        "is_app_background": False,
        "reason": "KickOff",
        "version": 1751453900999,
    }


def check_add_friend_agree(client):
    apply(client, "openim", "callbackAfterAddFriendAgreeCommand")
    assert edges(Friend, "friend_user_id") == {("u1001", "u1002"): None, ("u1002", "u1001"): None}
    assert set(Friend.objects.values_list("remark", flat=True)) == {""}


def check_delete_friend(client):
    apply(client, "openim", "callbackAfterAddFriendAgreeCommand")
    apply(client, "openim", "callbackAfterDeleteFriendCommand")
    # Only the owner's side goes.
    assert edges(Friend, "friend_user_id") == {
        ("u1001", "u1002"): None,
        ("u1002", "u1001"): "deleted",
    }


def check_import_friends(client):
    apply(client, "openim", "callbackAfterImportFriendsCommand")
    assert edges(Friend, "friend_user_id") == {
        ("u1001", "u1003"): None,
        ("u1003", "u1001"): None,
        ("u1001", "u1004"): None,
        ("u1004", "u1001"): None,
    }


def check_set_friend_remark(client):
    apply(client, "openim", "callbackAfterAddFriendAgreeCommand")
    apply(client, "openim", "callbackAfterSetFriendRemarkCommand")
    friend = Friend.objects.get(owner_user_id="u1001", friend_user_id="u1002")
    assert (friend.remark, friend.removed_at) == ("Bob (work)", None)
    assert Friend.objects.get(owner_user_id="u1002", friend_user_id="u1001").remark == ""


def check_remove_black(client):
    apply(client, "openim", "callbackAfterRemoveBlackCommand")
    assert edges(BlockedUser, "blocked_user_id") == {("u1001", "u1005"): "unblocked"}


GROUP_FIELDS = (
    "name",
    "notification",
    "introduction",
    "face_url",
    "ex",
    "owner_user_id",
    "creator_user_id",
    "group_type",
    "status",
    "need_verification",
    "look_member_info",
    "apply_member_friend",
    "im_created_at_ms",
    "removed_reason",
)
CREATED_GROUP = {
    "name": "Weekend hikers",
    "notification": "",
    "introduction": "Trips every Saturday",
    "face_url": "",
    "ex": "",
    "owner_user_id": "u1001",
    "creator_user_id": "u1001",
    "group_type": "2",
    "status": 0,
    "need_verification": 0,
    "look_member_info": 0,
    "apply_member_friend": 0,
    "im_created_at_ms": 1751450130456,
    "removed_reason": "",
}


def group_row(group_id=GROUP):
    return row(ImGroup.objects.get(group_id=group_id), *GROUP_FIELDS)


def check_create_group(client):
    apply(client, "openim", "callbackAfterCreateGroupCommand")
    assert group_row() == CREATED_GROUP
    # u1001 and u1002 are listed twice: the highest role wins.
    assert member_roles(GROUP) == {"u1001": (100, None), "u1002": (60, None), "u1003": (20, None)}


def check_join_group(client):
    apply(client, "openim", "callbackAfterJoinGroupCommand")
    joined = GroupMember.objects.get(group_id=GROUP, user_id="u1005")
    assert row(joined, "role_level", "join_source", "inviter_user_id", "removed_at") == {
        "role_level": 20,
        "join_source": 3,
        "inviter_user_id": "u1005",  # the server puts the joining user here
        "removed_at": None,
    }
    assert ImGroup.objects.get(group_id=GROUP).removed_at is None


def check_quit_group(client):
    apply(client, "openim", "callbackAfterCreateGroupCommand")
    apply(client, "openim", "callbackAfterQuitGroupCommand")
    assert member_roles(GROUP) == {
        "u1001": (100, None),
        "u1002": (60, None),
        "u1003": (20, "quit"),
    }


def check_kick_group(client):
    apply(client, "openim", "callbackAfterCreateGroupCommand")
    join = {**sample("openim", "callbackAfterJoinGroupCommand"), "inviterUserID": "u1006"}
    apply(client, "openim", "callbackAfterJoinGroupCommand", join)
    apply(client, "openim", "callbackAfterKickGroupCommand")
    assert member_roles(GROUP) == {
        "u1001": (100, None),
        "u1002": (60, None),
        "u1003": (20, None),
        "u1006": (20, "kicked"),
    }


def check_dismiss_group(client):
    apply(client, "openim", "callbackAfterCreateGroupCommand")
    apply(client, "openim", "callbackAfterDisMissGroupCommand")
    group = ImGroup.objects.get(group_id=GROUP)
    assert group.removed_at is not None
    assert group_row() == {**CREATED_GROUP, "status": 2, "removed_reason": "dismissed"}
    # u1003 is not in membersID but was a member; u1007 was listed but never seen before.
    assert member_roles(GROUP) == {
        "u1001": (100, "dismissed"),
        "u1002": (60, "dismissed"),
        "u1003": (20, "dismissed"),
        "u1007": (None, "dismissed"),
    }


def check_transfer_group_owner(client):
    apply(client, "openim", "callbackAfterCreateGroupCommand")
    apply(client, "openim", "callbackAfterTransferGroupOwnerCommand")
    assert group_row()["owner_user_id"] == "u1002"
    # The old owner takes the new owner's previous role.
    assert member_roles(GROUP) == {"u1001": (60, None), "u1002": (100, None), "u1003": (20, None)}


def check_set_group_info(client):
    apply(client, "openim", "callbackAfterCreateGroupCommand")
    apply(client, "openim", "callbackAfterSetGroupInfoCommand")
    # "" and null are "unchanged": introduction keeps its value.
    assert group_row() == {**CREATED_GROUP, "name": "Weekend hikers (2026)", "need_verification": 1}


def check_set_group_info_ex(client):
    apply(client, "openim", "callbackAfterCreateGroupCommand")
    apply(client, "openim", "callbackAfterSetGroupInfoExCommand")
    assert group_row() == {
        **CREATED_GROUP,
        "notification": "Meet at 8am at the north gate",
        "face_url": "https://cdn.example.com/groups/3318432212.png",
        "apply_member_friend": 1,
    }


def check_set_group_member_info(client):
    apply(client, "openim", "callbackAfterCreateGroupCommand")
    apply(client, "openim", "callbackAfterSetGroupMemberInfoCommand")
    member = GroupMember.objects.get(group_id=GROUP, user_id="u1003")
    assert row(member, "nickname", "face_url", "role_level", "ex", "removed_at") == {
        "nickname": "Trail boss",
        "face_url": "",
        "role_level": 60,
        "ex": "",
        "removed_at": None,
    }


# Tencent Cloud Chat -------------------------------------------------------------------------


def check_portrait_set(client):
    apply(client, "tencent", "Profile.CallbackPortraitSet")
    alice = ImUser.objects.get(user_id="user_alice")
    assert row(
        alice,
        "nickname",
        "gender",
        "birthday",
        "self_signature",
        "allow_type",
        "language",
        "face_url",
        "level",
        "custom",
        "version",
    ) == {
        "nickname": "Alice W.",
        "gender": "Gender_Type_Female",
        "birthday": 19940512,
        "self_signature": "Coffee first, code second.",
        "allow_type": "AllowType_Type_NeedConfirm",
        "language": 2,
        "face_url": "https://cdn.example.com/avatars/user_alice_v3.png",
        "level": 7,
        "custom": {"Tag_Profile_Custom_City": "Shenzhen"},
        "version": 1767225600123,
    }


def check_state_change(client):
    apply(client, "tencent", "State.StateChange")
    fields = ("online", "reason", "client_ip", "platform_id", "version")
    # OptPlatform=IOS is the iOS session; the kicked Android device goes offline.
    assert row(OnlineSession.objects.get(user_id="user_alice", platform="iOS"), *fields) == {
        "online": True,
        "reason": "Register",
        "client_ip": "203.0.113.24",
        "platform_id": None,
        "version": 1767225660456,
    }
    kicked = OnlineSession.objects.get(user_id="user_alice", platform="Android")
    assert row(kicked, "online", "reason", "version") == {
        "online": False,
        "reason": "Kicked",
        "version": 1767225660456,
    }
    assert OnlineSession.objects.count() == 2


def check_friend_add(client):
    apply(client, "tencent", "Sns.CallbackFriendAdd")
    # One directed edge per pair, no implied reverse edge.
    assert edges(Friend, "friend_user_id") == {
        ("user_alice", "user_carol"): None,
        ("user_alice", "user_dave"): None,
    }


def check_friend_delete(client):
    apply(client, "tencent", "Sns.CallbackFriendAdd")
    apply(client, "tencent", "Sns.CallbackFriendDelete")
    assert edges(Friend, "friend_user_id") == {
        ("user_alice", "user_carol"): None,
        ("user_alice", "user_dave"): "deleted",
    }


def check_black_list_add(client):
    apply(client, "tencent", "Sns.CallbackBlackListAdd")
    assert edges(BlockedUser, "blocked_user_id") == {("user_bob", "user_eve"): None}


def check_black_list_delete(client):
    apply(client, "tencent", "Sns.CallbackBlackListAdd")
    apply(client, "tencent", "Sns.CallbackBlackListDelete")
    assert edges(BlockedUser, "blocked_user_id") == {("user_bob", "user_eve"): "unblocked"}


TENCENT_GROUP = {
    "name": "Weekend Hikers",
    "notification": "",
    "introduction": "",
    "face_url": "",
    "ex": "",
    "owner_user_id": "user_alice",
    "creator_user_id": "user_alice",
    "group_type": "Public",
    "status": None,
    "need_verification": None,
    "look_member_info": None,
    "apply_member_friend": None,
    "im_created_at_ms": 1767226080345,
    "removed_reason": "",
}


def check_tencent_create_group(client):
    apply(client, "tencent", "Group.CallbackAfterCreateGroup")
    assert group_row(TGROUP) == TENCENT_GROUP
    group = ImGroup.objects.get(group_id=TGROUP)
    assert (group.custom, group.version) == ({"Region": "south"}, 1767226080345)
    # The owner is not in MemberList but is a member.
    assert member_roles(TGROUP) == {
        "user_alice": (100, None),
        "user_bob": (20, None),
        "user_carol": (20, None),
    }


def check_new_member_join(client):
    apply(client, "tencent", "Group.CallbackAfterCreateGroup")
    apply(client, "tencent", "Group.CallbackAfterNewMemberJoin")
    assert member_roles(TGROUP) == {
        "user_alice": (100, None),
        "user_bob": (20, None),
        "user_carol": (20, None),
        "user_dave": (20, None),
        "user_frank": (20, None),
    }
    dave = GroupMember.objects.get(group_id=TGROUP, user_id="user_dave")
    assert (dave.inviter_user_id, dave.version) == ("user_alice", 1767226140678)


def check_member_exit(client):
    apply(client, "tencent", "Group.CallbackAfterCreateGroup")
    apply(client, "tencent", "Group.CallbackAfterNewMemberJoin")
    apply(client, "tencent", "Group.CallbackAfterMemberExit")
    roles = member_roles(TGROUP)
    assert roles["user_frank"] == (20, "kicked")
    assert roles["user_dave"] == (20, None)


def check_group_info_changed(client):
    apply(client, "tencent", "Group.CallbackAfterCreateGroup")
    apply(client, "tencent", "Group.CallbackAfterGroupInfoChanged")
    assert group_row(TGROUP) == {
        **TENCENT_GROUP,
        "name": "Weekend Hikers 2026",
        "face_url": "https://cdn.example.com/groups/weekend_hikers.png",
    }


def check_member_field_changed(client):
    apply(client, "tencent", "Group.CallbackAfterCreateGroup")
    apply(client, "tencent", "Group.CallbackAfterMemberFieldChanged")
    bob = GroupMember.objects.get(group_id=TGROUP, user_id="user_bob")
    assert row(bob, "role_level", "nickname", "version") == {
        "role_level": 60,
        "nickname": "Bob (route lead)",
        "version": 1767226320567,
    }


def check_change_group_owner(client):
    apply(client, "tencent", "Group.CallbackAfterCreateGroup")
    apply(client, "tencent", "Group.CallbackAfterChangeGroupOwner")
    assert group_row(TGROUP)["owner_user_id"] == "user_bob"
    assert member_roles(TGROUP) == {
        "user_alice": (20, None),
        "user_bob": (100, None),
        "user_carol": (20, None),
    }


def check_group_destroyed(client):
    apply(client, "tencent", "Group.CallbackAfterCreateGroup")
    apply(client, "tencent", "Group.CallbackAfterGroupDestroyed")
    assert group_row(TGROUP) == {
        **TENCENT_GROUP,
        "name": "Weekend Hikers 2026",
        "owner_user_id": "user_bob",
        "removed_reason": "dismissed",
    }
    assert ImGroup.objects.get(group_id=TGROUP).removed_at is not None
    assert member_roles(TGROUP) == {
        "user_alice": (100, "dismissed"),
        "user_bob": (20, "dismissed"),
        "user_carol": (20, "dismissed"),
        "user_dave": (None, "dismissed"),
    }


APPLIED = {
    ("openim", "callbackAfterUserRegisterCommand"): check_user_register,
    ("openim", "callbackAfterUpdateUserInfoCommand"): check_update_user_info,
    ("openim", "callbackAfterUpdateUserInfoExCommand"): check_update_user_info_ex,
    ("openim", "callbackAfterUserOnlineCommand"): check_user_online,
    ("openim", "callbackAfterUserOfflineCommand"): check_user_offline,
    ("openim", "callbackAfterUserKickOffCommand"): check_user_kick_off,
    ("openim", "callbackAfterAddFriendAgreeCommand"): check_add_friend_agree,
    ("openim", "callbackAfterDeleteFriendCommand"): check_delete_friend,
    ("openim", "callbackAfterImportFriendsCommand"): check_import_friends,
    ("openim", "callbackAfterSetFriendRemarkCommand"): check_set_friend_remark,
    ("openim", "callbackAfterRemoveBlackCommand"): check_remove_black,
    ("openim", "callbackAfterCreateGroupCommand"): check_create_group,
    ("openim", "callbackAfterJoinGroupCommand"): check_join_group,
    ("openim", "callbackAfterQuitGroupCommand"): check_quit_group,
    ("openim", "callbackAfterKickGroupCommand"): check_kick_group,
    ("openim", "callbackAfterDisMissGroupCommand"): check_dismiss_group,
    ("openim", "callbackAfterTransferGroupOwnerCommand"): check_transfer_group_owner,
    ("openim", "callbackAfterSetGroupInfoCommand"): check_set_group_info,
    ("openim", "callbackAfterSetGroupInfoExCommand"): check_set_group_info_ex,
    ("openim", "callbackAfterSetGroupMemberInfoCommand"): check_set_group_member_info,
    ("tencent", "Profile.CallbackPortraitSet"): check_portrait_set,
    ("tencent", "State.StateChange"): check_state_change,
    ("tencent", "Sns.CallbackFriendAdd"): check_friend_add,
    ("tencent", "Sns.CallbackFriendDelete"): check_friend_delete,
    ("tencent", "Sns.CallbackBlackListAdd"): check_black_list_add,
    ("tencent", "Sns.CallbackBlackListDelete"): check_black_list_delete,
    ("tencent", "Group.CallbackAfterCreateGroup"): check_tencent_create_group,
    ("tencent", "Group.CallbackAfterNewMemberJoin"): check_new_member_join,
    ("tencent", "Group.CallbackAfterMemberExit"): check_member_exit,
    ("tencent", "Group.CallbackAfterGroupInfoChanged"): check_group_info_changed,
    ("tencent", "Group.CallbackAfterMemberFieldChanged"): check_member_field_changed,
    ("tencent", "Group.CallbackAfterChangeGroupOwner"): check_change_group_owner,
    ("tencent", "Group.CallbackAfterGroupDestroyed"): check_group_destroyed,
}
ALL_SAMPLES = [(p, c) for p in ("openim", "tencent") for c in sample_commands(p)]
IGNORED = [key for key in ALL_SAMPLES if key not in APPLIED]


def test_every_sample_is_covered():
    assert set(APPLIED) <= set(ALL_SAMPLES)
    assert len(ALL_SAMPLES) == len(APPLIED) + len(IGNORED) == 68
    assert all(
        c.startswith(("callbackBefore", "Sns.CallbackPrev"))
        or (p, c)
        in {
            ("openim", "callbackAfterAddFriendCommand"),
            ("openim", "callbackAfterCreateGroupChatConversationsCommand"),
            ("openim", "callbackAfterCreateSingleChatConversationsCommand"),
            ("openim", "callbackAfterGroupMsgReadCommand"),
            ("openim", "callbackAfterMsgSaveDBCommand"),
            ("openim", "callbackAfterSendGroupMsgCommand"),
            ("openim", "callbackAfterSendSingleMsgCommand"),
            ("openim", "callbackAfterSingleMsgReadCommand"),
            ("tencent", "Group.CallbackOnMemberStateChange"),
        }
        for p, c in IGNORED
    )


@pytest.mark.parametrize(("protocol", "command"), list(APPLIED), ids=lambda v: v)
def test_state_changing_sample(client, db, signed, protocol, command):
    APPLIED[(protocol, command)](client)


def snapshot():
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in MIRROR}


@pytest.fixture
def full_mirror(client, db, signed):
    """A mirror holding what every state-changing sample says."""
    for protocol, command in APPLIED:
        deliver(client, protocol, command)
    state = snapshot()
    assert all(state.values())
    return state


@pytest.mark.parametrize(("protocol", "command"), IGNORED, ids=lambda v: v)
def test_ignored_sample_changes_nothing(client, full_mirror, protocol, command):
    event = deliver(client, protocol, command)
    assert (event.command, event.status) == (command, "ignored")
    assert event.reason and "Unknown" not in event.reason
    assert event.payload == sample(protocol, command)
    assert snapshot() == full_mirror
