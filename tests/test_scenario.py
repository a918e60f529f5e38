"""A realistic day through both servers, compared with the whole expected mirror."""

import time

import pytest

from openim_sync import pipeline
from openim_sync.models import (
    BlockedUser,
    CallbackEvent,
    Friend,
    GroupMember,
    ImGroup,
    ImUser,
    OnlineSession,
)
from tests.helpers import post_openim, post_tencent


def openim(client, command, body):
    body = {"callbackCommand": command, **body}
    response = post_openim(client, f"/{command}", body)
    assert response.status_code == 200, response.content
    return _processed()


def tencent(client, command, body, *, platform="iOS", client_ip="203.0.113.24"):
    body = {"CallbackCommand": command, **body}
    response = post_tencent(client, body, OptPlatform=platform, ClientIP=client_ip)
    assert response.status_code == 200, response.content
    return _processed()


def _processed():
    event = CallbackEvent.objects.order_by("-id").first()
    assert (event.status, event.reason) == ("processed", ""), event.reason
    return event


def removed(obj):
    return obj.removed_reason if obj.removed_at else None


def mirror():
    """Every mirror table as plain data, keyed by natural key."""
    return {
        "users": {
            u.user_id: {"nickname": u.nickname, "face_url": u.face_url, "ex": u.ex}
            for u in ImUser.objects.all()
        },
        "groups": {
            g.group_id: {
                "name": g.name,
                "owner": g.owner_user_id,
                "notification": g.notification,
                "status": g.status,
                "removed": removed(g),
            }
            for g in ImGroup.objects.all()
        },
        "members": {
            (m.group_id, m.user_id): (m.role_level, m.nickname, removed(m))
            for m in GroupMember.objects.all()
        },
        "friends": {
            (f.owner_user_id, f.friend_user_id): (f.remark, removed(f))
            for f in Friend.objects.all()
        },
        "blocked": {
            (b.owner_user_id, b.blocked_user_id): removed(b) for b in BlockedUser.objects.all()
        },
        "sessions": {
            (s.user_id, s.platform): (s.online, s.reason) for s in OnlineSession.objects.all()
        },
    }


def user(user_id, nickname, face_url="", ex=""):
    return {
        "userID": user_id,
        "nickname": nickname,
        "faceURL": face_url,
        "ex": ex,
        "createTime": 0,
        "appMangerLevel": 0,
        "globalRecvMsgOpt": 0,
    }


def presence(user_id, platform_id, platform, seq):
    return {
        "operationID": f"p_27_{seq}",
        "platformID": platform_id,
        "platform": platform,
        "userID": user_id,
        "seq": seq,
        "isAppBackground": False,
        "connID": "",
    }


def group_info(group_id, name, owner):
    return {
        "groupID": group_id,
        "groupName": name,
        "notification": "",
        "introduction": "",
        "faceURL": "",
        "ownerUserID": owner,
        "createTime": 1751450130456,
        "memberCount": 0,
        "ex": "",
        "status": 0,
        "creatorUserID": owner,
        "groupType": 2,
        "needVerification": 0,
        "lookMemberInfo": 0,
        "applyMemberFriend": 0,
        "notificationUpdateTime": 0,
        "notificationUserID": "",
    }


def init_members(*pairs):
    return [{"userID": user_id, "roleLevel": role} for user_id, role in pairs]


def openim_day(client):
    seq = int(time.time() * 1000)
    openim(
        client,
        "callbackAfterUserRegisterCommand",
        {"users": [user("alice", "Alice"), user("bob", "Bob"), user("carol", "Carol")]},
    )
    openim(client, "callbackAfterUserRegisterCommand", {"users": [user("dave", "Dave")]})

    openim(client, "callbackAfterUserOnlineCommand", presence("alice", 2, "Android", seq + 1))
    openim(client, "callbackAfterUserOnlineCommand", presence("alice", 5, "Web", seq + 2))
    openim(client, "callbackUserOnlineCommand", presence("bob", 1, "IOS", seq + 3))  # v3.6 name

    openim(
        client,
        "callbackAfterAddFriendAgreeCommand",
        {"fromUserID": "alice", "blackUserID": "bob", "HandleResult": 1, "HandleMsg": "ok"},
    )
    openim(
        client,
        "callbackAfterImportFriendsCommand",
        {"ownerUserID": "carol", "friendUserIDs": ["alice", "dave"]},
    )
    openim(
        client,
        "callbackAfterSetFriendRemarkCommand",
        {"ownerUserID": "alice", "friendUserID": "bob", "remark": "Bobby"},
    )
    openim(
        client,
        "callbackAfterDeleteFriendCommand",
        {"ownerUserID": "dave", "friendUserID": "carol"},
    )
    openim(
        client,
        "callbackAfterRemoveBlackCommand",
        {"ownerUserID": "alice", "blackUserID": "eve"},
    )

    # Created through the REST API by imAdmin, who is listed last but is not a member.
    members = init_members(
        ("alice", 100),
        ("bob", 60),
        ("carol", 20),
        ("bob", 20),
        ("alice", 20),
        ("imAdmin", 20),
    )
    openim(
        client,
        "callbackAfterCreateGroupCommand",
        {**group_info("g1", "Hikers", "alice"), "initMemberList": members},
    )
    openim(
        client,
        "callbackAfterJoinGroupCommand",
        {
            "operationID": "op-join",
            "groupID": "g1",
            "reqMessage": "hi",
            "joinSource": 3,
            "inviterUserID": "dave",
        },
    )
    openim(
        client,
        "callbackAfterSetGroupMemberInfoCommand",
        {
            "groupID": "g1",
            "userID": "carol",
            "nickName": "Cee",
            "faceURL": None,
            "roleLevel": 60,
            "ex": None,
        },
    )
    openim(
        client,
        "callbackAfterSetGroupInfoExCommand",
        {
            "operationID": "",
            "groupID": "g1",
            "groupName": None,
            "notification": "Meet at 8",
            "introduction": None,
            "faceURL": None,
            "ex": None,
            "needVerification": None,
            "lookMemberInfo": None,
            "applyMemberFriend": None,
        },
    )
    openim(
        client,
        "callbackAfterTransferGroupOwnerCommand",
        {"groupID": "g1", "oldOwnerUserID": "alice", "newOwnerUserID": "carol"},
    )
    openim(
        client,
        "callbackKillGroupCommand",  # v3.6 name of the kick callback
        {"groupID": "g1", "kickedUserIDs": ["bob"], "reason": ""},
    )
    openim(client, "callbackAfterQuitGroupCommand", {"groupID": "g1", "userID": "dave"})

    openim(
        client,
        "callbackAfterCreateGroupCommand",
        {
            **group_info("g2", "Short-lived", "bob"),
            "initMemberList": init_members(("bob", 100), ("alice", 20), ("bob", 20)),
        },
    )
    openim(
        client,
        "callbackAfterDisMissGroupCommand",
        {"groupID": "g2", "ownerID": "bob", "groupType": "\u0002", "membersID": None},
    )

    openim(client, "callbackAfterUserOfflineCommand", presence("alice", 5, "Web", seq + 4))
    openim(
        client,
        "callbackAfterUpdateUserInfoExCommand",
        {"userID": "bob", "nickName": "Robert", "faceURL": None, "ex": None},
    )


def tencent_day(client, t):
    tencent(
        client,
        "Profile.CallbackPortraitSet",
        {
            "Operator_Account": "tom",
            "From_Account": "tom",
            "EventTime": t,
            "ProfileItem": [{"Tag": "Tag_Profile_IM_Nick", "Value": "Tom"}],
        },
    )
    login = {"Action": "Login", "To_Account": "tom", "Reason": "Register"}
    tencent(client, "State.StateChange", {"EventTime": t + 1, "Info": login}, platform="IOS")
    tencent(client, "State.StateChange", {"EventTime": t + 2, "Info": login}, platform="Web")
    tencent(
        client,
        "State.StateChange",
        {"EventTime": t + 3, "Info": {**login, "Action": "Disconnect", "Reason": "LinkClose"}},
        platform="iOS",
    )

    pairs = [
        {"From_Account": "tom", "To_Account": "una"},
        {"From_Account": "una", "To_Account": "tom"},
    ]
    tencent(client, "Sns.CallbackFriendAdd", {"PairList": pairs, "ClientCmd": "friend_add"})
    tencent(client, "Sns.CallbackFriendDelete", {"PairList": pairs[1:]})
    tencent(
        client,
        "Sns.CallbackBlackListAdd",
        {"PairList": [{"From_Account": "una", "To_Account": "vic"}]},
    )

    group = {"GroupId": "@TGS#day", "Type": "Public"}
    tencent(
        client,
        "Group.CallbackAfterCreateGroup",
        {
            **group,
            "Operator_Account": "tom",
            "Owner_Account": "tom",
            "Name": "Day trip",
            "MemberList": [{"Member_Account": "una"}, {"Member_Account": "vic"}],
            "UserDefinedDataList": [{"Key": "Region", "Value": "north"}],
            "EventTime": str(t + 10),  # as in Tencent's group doc samples
        },
    )
    tencent(
        client,
        "Group.CallbackAfterNewMemberJoin",
        {
            **group,
            "JoinType": "Invited",
            "Operator_Account": "tom",
            "NewMemberList": [{"Member_Account": "wes"}],
            "EventTime": t + 11,
        },
    )
    tencent(
        client,
        "Group.CallbackAfterMemberFieldChanged",
        {
            **group,
            "Operator_Account": "tom",
            "Modified_Account": "una",  # the CN docs' name
            "Role": "Admin",
            "NameCard": "U",
            "EventTime": t + 12,
        },
    )
    tencent(
        client,
        "Group.CallbackAfterChangeGroupOwner",
        {
            **group,
            "Operator_Account": "tom",
            "OldOwner_Account": "tom",
            "NewOwner_Account": "una",
            "EventTime": t + 13,
        },
    )
    for account, exit_type, at in (("vic", "Quit", t + 14), ("wes", "Kicked", t + 15)):
        tencent(
            client,
            "Group.CallbackAfterMemberExit",
            {
                **group,
                "ExitType": exit_type,
                "Operator_Account": "una",
                "ExitMemberList": [{"Member_Account": account}],
                "EventTime": at,
            },
        )
    tencent(
        client,
        "Group.CallbackAfterGroupInfoChanged",
        {**group, "Operator_Account": "una", "Notification": "Bring water", "EventTime": t + 16},
    )

    gone = {"GroupId": "@TGS#gone", "Type": "Community"}
    tencent(
        client,
        "Group.CallbackAfterCreateGroup",
        {
            **gone,
            "Operator_Account": "una",
            "Owner_Account": "una",
            "Name": "Gone",
            "MemberList": [{"Member_Account": "tom"}],
            "EventTime": t + 20,
        },
    )
    # Community groups are destroyed without a MemberList.
    tencent(
        client,
        "Group.CallbackAfterGroupDestroyed",
        {**gone, "Owner_Account": "una", "Name": "Gone", "EventTime": t + 21},
        platform="RESTAPI",
    )

    # Late deliveries of older events change nothing.
    tencent(
        client,
        "Group.CallbackAfterGroupInfoChanged",
        {**group, "Operator_Account": "tom", "Notification": "stale", "EventTime": t + 15},
    )
    tencent(
        client,
        "Group.CallbackAfterNewMemberJoin",
        {
            **gone,
            "JoinType": "Apply",
            "Operator_Account": "xan",
            "NewMemberList": [{"Member_Account": "tom"}, {"Member_Account": "xan"}],
            "EventTime": t + 20,
        },
    )


EXPECTED = {
    "users": {
        "alice": {"nickname": "Alice", "face_url": "", "ex": ""},
        "bob": {"nickname": "Robert", "face_url": "", "ex": ""},
        "carol": {"nickname": "Carol", "face_url": "", "ex": ""},
        "dave": {"nickname": "Dave", "face_url": "", "ex": ""},
        "tom": {"nickname": "Tom", "face_url": "", "ex": ""},
    },
    "groups": {
        "g1": {
            "name": "Hikers",
            "owner": "carol",
            "notification": "Meet at 8",
            "status": 0,
            "removed": None,
        },
        "g2": {
            "name": "Short-lived",
            "owner": "bob",
            "notification": "",
            "status": 2,
            "removed": "dismissed",
        },
        "@TGS#day": {
            "name": "Day trip",
            "owner": "una",
            "notification": "Bring water",
            "status": None,
            "removed": None,
        },
        "@TGS#gone": {
            "name": "Gone",
            "owner": "una",
            "notification": "",
            "status": None,
            "removed": "dismissed",
        },
    },
    "members": {
        ("g1", "alice"): (60, "", None),  # took carol's role when carol became owner
        ("g1", "bob"): (60, "", "kicked"),
        ("g1", "carol"): (100, "Cee", None),
        ("g1", "dave"): (20, "", "quit"),
        ("g2", "bob"): (100, "", "dismissed"),
        ("g2", "alice"): (20, "", "dismissed"),
        ("@TGS#day", "tom"): (20, "", None),
        ("@TGS#day", "una"): (100, "U", None),
        ("@TGS#day", "vic"): (20, "", "quit"),
        ("@TGS#day", "wes"): (20, "", "kicked"),
        ("@TGS#gone", "una"): (100, "", "dismissed"),
        ("@TGS#gone", "tom"): (20, "", "dismissed"),
        ("@TGS#gone", "xan"): (20, "", "dismissed"),
    },
    "friends": {
        ("alice", "bob"): ("Bobby", None),
        ("bob", "alice"): ("", None),
        ("carol", "alice"): ("", None),
        ("alice", "carol"): ("", None),
        ("carol", "dave"): ("", None),
        ("dave", "carol"): ("", "deleted"),
        ("tom", "una"): ("", None),
        ("una", "tom"): ("", "deleted"),
    },
    "blocked": {("alice", "eve"): "unblocked", ("una", "vic"): None},
    "sessions": {
        ("alice", "Android"): (True, ""),
        ("alice", "Web"): (False, ""),
        ("bob", "iOS"): (True, ""),
        ("tom", "iOS"): (False, "LinkClose"),
        ("tom", "Web"): (True, "Register"),
    },
}


def test_a_day_through_both_servers(client, db):
    openim_day(client)
    tencent_day(client, int(time.time() * 1000) - 3_600_000)
    assert mirror() == EXPECTED
    assert not GroupMember.objects.filter(user_id="imAdmin").exists()


def test_replaying_the_whole_day_changes_nothing(client, db):
    openim_day(client)
    tencent_day(client, int(time.time() * 1000) - 3_600_000)
    before = mirror()
    for event in CallbackEvent.objects.order_by("id"):
        assert pipeline.process(event).status == "processed"
    assert mirror() == before == EXPECTED


# Ordering ------------------------------------------------------------------------------------

T = 1767226080345
GROUP = {"GroupId": "@TGS#order", "Type": "Public"}


@pytest.fixture
def tencent_group(client, db):
    tencent(
        client,
        "Group.CallbackAfterCreateGroup",
        {
            **GROUP,
            "Operator_Account": "amy",
            "Owner_Account": "amy",
            "Name": "Order",
            "MemberList": [{"Member_Account": "ben"}],
            "EventTime": T,
        },
    )


def test_older_event_time_after_newer_changes_nothing(client, tencent_group):
    newer = {**GROUP, "Name": "Newer", "Introduction": "new", "EventTime": T + 20}
    tencent(client, "Group.CallbackAfterGroupInfoChanged", newer)
    row = ImGroup.objects.get(group_id="@TGS#order")
    tencent(
        client,
        "Group.CallbackAfterGroupInfoChanged",
        {**GROUP, "Name": "Older", "Notification": "older", "EventTime": str(T + 10)},
    )
    after = ImGroup.objects.get(group_id="@TGS#order")
    assert (after.name, after.introduction) == ("Newer", "new")
    # A field the newer event did not carry is still taken from the older one.
    assert after.notification == "older"
    assert after.versions["name"] == row.versions["name"]


def test_older_logout_after_newer_login_keeps_the_session_online(client, db):
    info = {"To_Account": "amy", "Reason": "Register", "Action": "Login"}
    tencent(client, "State.StateChange", {"EventTime": T + 20, "Info": info})
    tencent(
        client,
        "State.StateChange",
        {"EventTime": T + 10, "Info": {**info, "Action": "Logout", "Reason": "Unregister"}},
    )
    session = OnlineSession.objects.get(user_id="amy", platform="iOS")
    assert (session.online, session.reason, session.version) == (True, "Register", T + 20)


def test_older_member_exit_after_rejoin_keeps_the_member(client, tencent_group):
    join = {**GROUP, "JoinType": "Apply", "NewMemberList": [{"Member_Account": "cat"}]}
    exit_ = {**GROUP, "ExitType": "Quit", "ExitMemberList": [{"Member_Account": "cat"}]}
    tencent(client, "Group.CallbackAfterNewMemberJoin", {**join, "EventTime": T + 30})
    tencent(client, "Group.CallbackAfterMemberExit", {**exit_, "EventTime": T + 20})
    assert GroupMember.objects.get(group_id="@TGS#order", user_id="cat").removed_at is None


def test_late_older_join_after_destroy_does_not_resurrect(client, tencent_group):
    tencent(client, "Group.CallbackAfterGroupDestroyed", {**GROUP, "EventTime": T + 30})
    tencent(
        client,
        "Group.CallbackAfterNewMemberJoin",
        {
            **GROUP,
            "JoinType": "Invited",
            "Operator_Account": "amy",
            "NewMemberList": [{"Member_Account": "ben"}, {"Member_Account": "cat"}],
            "EventTime": T + 20,
        },
    )
    members = {m.user_id: removed(m) for m in GroupMember.objects.filter(group_id="@TGS#order")}
    assert members == {"amy": "dismissed", "ben": "dismissed", "cat": "dismissed"}
    assert removed(ImGroup.objects.get(group_id="@TGS#order")) == "dismissed"


def test_replayed_openim_join_after_dismiss_does_not_resurrect(client, db):
    create = {**group_info("g9", "Nine", "amy"), "initMemberList": init_members(("amy", 100))}
    openim(client, "callbackAfterCreateGroupCommand", create)
    join = openim(
        client, "callbackAfterJoinGroupCommand", {"groupID": "g9", "inviterUserID": "ben"}
    )
    openim(
        client, "callbackDisMissGroupCommand", {"groupID": "g9", "ownerID": "amy", "membersID": []}
    )
    # The join was received before the dismissal, so replaying it is a late, older event.
    assert pipeline.process(join).status == "processed"
    members = {m.user_id: removed(m) for m in GroupMember.objects.filter(group_id="g9")}
    assert members == {"amy": "dismissed", "ben": "dismissed"}
    assert ImGroup.objects.get(group_id="g9").status == 2
