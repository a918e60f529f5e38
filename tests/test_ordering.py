"""Ordering through HTTP: the newest event wins per field, tombstones hold, replays are no-ops.

Versions: Tencent ``EventTime``, OpenIM online/offline ``seq``, otherwise the time of receipt.
"""

import pytest
from django.core.management import call_command

from openim_sync.models import CallbackEvent, Friend, GroupMember, ImUser, OnlineSession
from tests.helpers import SDKAPPID, TOKEN, post_openim, post_tencent

pytestmark = pytest.mark.django_db

GROUP = "@TGS#ORDER"


@pytest.fixture(autouse=True)
def tencent_on(openim_settings):
    openim_settings(TENCENT_SDKAPPID=SDKAPPID, TENCENT_TOKENS=[TOKEN])


def tencent(client, command, event_time, **body):
    body = {"CallbackCommand": command, **body}
    if event_time is not None:
        body["EventTime"] = event_time
    response = post_tencent(client, body, token=TOKEN)
    assert response.status_code == 200, response.content
    assert response.json()["ErrorCode"] == 0
    return CallbackEvent.objects.order_by("-id").first()


def openim(client, command, **body):
    response = post_openim(client, f"/{command}", {"callbackCommand": command, **body})
    assert response.status_code == 200, response.content
    assert response.json()["errCode"] == 0
    return CallbackEvent.objects.order_by("-id").first()


def portrait(client, event_time, user="u1", **tags):
    items = [{"Tag": tag, "Value": value} for tag, value in tags.items()]
    return tencent(
        client, "Profile.CallbackPortraitSet", event_time, From_Account=user, ProfileItem=items
    )


def replay(*events):
    call_command("openim_replay", *[f"--id={event.pk}" for event in events], verbosity=0)


def user_row(user_id="u1"):
    return ImUser.objects.get(user_id=user_id)


# --- Tencent EventTime ------------------------------------------------------------------------


def test_older_profile_event_never_overwrites_newer(client):
    newer = portrait(client, 2_000, Tag_Profile_IM_Nick="new", Tag_Profile_Custom_A="new-a")
    older = portrait(
        client,
        1_000,
        Tag_Profile_IM_Nick="old",
        Tag_Profile_Custom_A="old-a",
        Tag_Profile_IM_SelfSignature="only the older event says this",
    )
    user = user_row()
    assert user.nickname == "new"
    assert user.custom == {"Tag_Profile_Custom_A": "new-a"}
    # Per field: what only the older event said still fills an empty field.
    assert user.self_signature == "only the older event says this"
    assert user.version == 2_000
    assert user.versions["nickname"] == [2_000, newer.pk]
    assert user.versions["self_signature"] == [1_000, older.pk]


def test_replaying_an_old_event_changes_nothing_that_moved_on(client):
    first = portrait(client, 1_000, Tag_Profile_IM_Nick="one", Tag_Profile_IM_Location="here")
    portrait(client, 2_000, Tag_Profile_IM_Nick="two")
    before = user_row()
    replay(first)
    after = user_row()
    assert (after.nickname, after.location) == ("two", "here")
    assert after.versions == before.versions
    assert after.last_event_id == before.last_event_id
    assert CallbackEvent.objects.get(pk=first.pk).attempts == 2


def test_same_event_twice_is_idempotent(client):
    portrait(client, 1_000, Tag_Profile_IM_Nick="one")
    portrait(client, 1_000, Tag_Profile_IM_Nick="one")
    assert ImUser.objects.count() == 1
    assert user_row().nickname == "one"


def test_event_time_as_string(client):
    portrait(client, "3000", Tag_Profile_IM_Nick="string time")
    portrait(client, 2_000, Tag_Profile_IM_Nick="older")
    assert user_row().nickname == "string time"
    assert user_row().version == 3_000


def test_late_member_change_cannot_resurrect_an_exited_member(client):
    member = {"Member_Account": "bob"}
    tencent(
        client, "Group.CallbackAfterNewMemberJoin", 1_000, GroupId=GROUP, NewMemberList=[member]
    )
    tencent(
        client,
        "Group.CallbackAfterMemberExit",
        3_000,
        GroupId=GROUP,
        ExitType="Kicked",
        ExitMemberList=[member],
    )
    # Late: an admin promotion that happened before the kick arrives after it.
    tencent(
        client,
        "Group.CallbackAfterMemberFieldChanged",
        2_000,
        GroupId=GROUP,
        Member_Account="bob",
        Role="Admin",
    )
    tencent(
        client, "Group.CallbackAfterNewMemberJoin", 1_500, GroupId=GROUP, NewMemberList=[member]
    )
    row = GroupMember.objects.get(group_id=GROUP, user_id="bob")
    assert row.removed_at is not None
    assert row.removed_reason == "kicked"
    assert not GroupMember.objects.present().filter(user_id="bob").exists()

    # A genuinely newer join brings the member back.
    tencent(
        client, "Group.CallbackAfterNewMemberJoin", 4_000, GroupId=GROUP, NewMemberList=[member]
    )
    row.refresh_from_db()
    assert row.removed_at is None and row.removed_reason == ""


def test_late_join_after_group_destroyed_stays_removed(client):
    tencent(
        client,
        "Group.CallbackAfterGroupDestroyed",
        5_000,
        GroupId=GROUP,
        Owner_Account="owner",
        MemberList=[{"Member_Account": "owner"}],
    )
    tencent(
        client,
        "Group.CallbackAfterNewMemberJoin",
        4_000,
        GroupId=GROUP,
        NewMemberList=[{"Member_Account": "late"}],
    )
    assert not GroupMember.objects.present().filter(group_id=GROUP).exists()


def test_friend_delete_then_late_add(client):
    pair = {"From_Account": "alice", "To_Account": "carol"}
    tencent(client, "Sns.CallbackFriendDelete", 2_000, PairList=[pair])
    tencent(client, "Sns.CallbackFriendAdd", 1_000, PairList=[pair])
    friend = Friend.objects.get(owner_user_id="alice", friend_user_id="carol")
    assert friend.removed_at is not None
    tencent(client, "Sns.CallbackFriendAdd", 3_000, PairList=[pair])
    friend.refresh_from_db()
    assert friend.removed_at is None


# --- OpenIM seq -------------------------------------------------------------------------------


def session(user="u1"):
    return OnlineSession.objects.get(user_id=user)


def presence(client, online, seq, user="u1"):
    command = "callbackAfterUserOnlineCommand" if online else "callbackAfterUserOfflineCommand"
    return openim(client, command, userID=user, platformID=2, seq=seq, connID="c1")


def test_online_offline_by_seq(client):
    presence(client, True, 5)
    presence(client, False, 3)  # late
    assert session().online is True
    assert session().version == 5
    presence(client, False, 7)
    presence(client, True, 6)  # late
    assert session().online is False
    assert session().version == 7


def test_seq_replay_is_a_no_op(client):
    old = presence(client, True, 1)
    presence(client, False, 2)
    replay(old)
    assert session().online is False


# --- receipt time (OpenIM commands without a version of their own) ----------------------------


def test_receipt_time_orders_updates_and_replay_is_a_no_op(client):
    first = openim(client, "callbackAfterUpdateUserInfoCommand", userID="u1", nickName="A", ex="x")
    second = openim(client, "callbackAfterUpdateUserInfoCommand", userID="u1", nickName="B")
    assert second.received_ms >= first.received_ms
    replay(first)
    user = user_row()
    assert (user.nickname, user.ex) == ("B", "x")
    assert user.versions["nickname"] == [second.received_ms, second.pk]


def test_quit_is_a_tombstone_against_replayed_member_info(client):
    info = openim(
        client,
        "callbackAfterSetGroupMemberInfoCommand",
        groupID="g1",
        userID="u1",
        nickName="card",
        roleLevel=60,
    )
    openim(client, "callbackAfterQuitGroupCommand", groupID="g1", userID="u1")
    replay(info)
    row = GroupMember.objects.get(group_id="g1", user_id="u1")
    assert row.removed_at is not None
    assert row.removed_reason == "quit"


def test_friend_remark_replay_after_delete(client):
    remark = openim(
        client,
        "callbackAfterSetFriendRemarkCommand",
        ownerUserID="o",
        friendUserID="f",
        remark="buddy",
    )
    openim(client, "callbackAfterDeleteFriendCommand", ownerUserID="o", friendUserID="f")
    replay(remark)
    assert Friend.objects.get(owner_user_id="o", friend_user_id="f").removed_at is not None
    assert not Friend.objects.present().exists()


def test_late_openim_member_info_after_quit_does_not_revive_the_member(client):
    member = {"groupID": "g1", "userID": "u2"}
    openim(client, "callbackAfterSetGroupMemberInfoCommand", **member, nickName="old", roleLevel=20)
    openim(client, "callbackAfterQuitGroupCommand", **member)
    # Sent before the quit, delivered after it (two OpenIM workers, no ordering).
    openim(client, "callbackAfterSetGroupMemberInfoCommand", **member, nickName="late")

    row = GroupMember.objects.get(group_id="g1", user_id="u2")
    assert row.removed_at is not None and row.removed_reason == "quit"
    assert row.nickname == "late"


def test_late_openim_remark_after_delete_does_not_revive_the_friend(client):
    edge = {"ownerUserID": "u1", "friendUserID": "u2"}
    openim(client, "callbackAfterSetFriendRemarkCommand", **edge, remark="Bob")
    openim(client, "callbackAfterDeleteFriendCommand", **edge)
    openim(client, "callbackAfterSetFriendRemarkCommand", **edge, remark="late")

    assert Friend.objects.get(owner_user_id="u1", friend_user_id="u2").removed_at is not None


def test_member_info_for_an_unknown_member_creates_a_present_member(client):
    openim(
        client, "callbackAfterSetGroupMemberInfoCommand", groupID="g9", userID="u9", roleLevel=60
    )

    row = GroupMember.objects.get(group_id="g9", user_id="u9")
    assert row.removed_at is None and row.role_level == 60
