"""Group memberships: join, leave, kick and member settings."""

from rest_framework import serializers

from openim_sync.models import GroupMember, Protocol
from openim_sync.models.mirror import ID_LENGTH

from .fields import event_time, given, id_list, im_id, integer, many, max_length, renamed, text
from .groups import MEMBER, TENCENT_ROLES, MemberAccountSerializer, member
from .registry import handles

OPENIM, TENCENT = Protocol.OPENIM, Protocol.TENCENT

MEMBER_FIELDS = {
    "nickName": "nickname",
    "faceURL": "face_url",
    "roleLevel": "role_level",
    "ex": "ex",
}


class SetGroupMemberInfoSerializer(serializers.Serializer):
    groupID = im_id()
    userID = im_id()
    nickName = text(max_length(GroupMember, "nickname"))
    faceURL = text(max_length(GroupMember, "face_url"))
    roleLevel = integer(GroupMember, "role_level")
    ex = text()


@handles(
    OPENIM,
    "callbackAfterSetGroupMemberInfoCommand",
    "callbackAfterSetGroupMemberInfo",  # the docs' spelling
    serializer=SetGroupMemberInfoSerializer,
)
def set_group_member_info(data, ctx):
    values = renamed(given(data, *MEMBER_FIELDS), MEMBER_FIELDS)
    # Versioned by receipt time, so a late update must not revive a member who has left:
    # it creates an unknown member but leaves a tombstone alone.
    return [member(data["groupID"], data["userID"], values)]


class JoinGroupSerializer(serializers.Serializer):
    groupID = im_id()
    # The server names the joining user "inviterUserID"; the docs call it userID.
    inviterUserID = im_id(required=False)
    userID = im_id(required=False)
    joinSource = integer(GroupMember, "join_source")
    reqMessage = text()

    def validate(self, data):
        if not (data.get("userID") or data.get("inviterUserID")):
            raise serializers.ValidationError({"inviterUserID": "This field is required."})
        return data


@handles(
    OPENIM,
    "callbackAfterJoinGroupCommand",
    "CallbackAfterJoinGroupCommand",  # early v3 spelling
    serializer=JoinGroupSerializer,
)
def join_group(data, ctx):
    user_id = data.get("userID") or data["inviterUserID"]
    values = {"role_level": MEMBER}
    if data.get("inviterUserID"):
        values["inviter_user_id"] = data["inviterUserID"]
    if data.get("joinSource") is not None:
        values["join_source"] = data["joinSource"]
    return [member(data["groupID"], user_id, values, present=True)]


class QuitGroupSerializer(serializers.Serializer):
    groupID = im_id()
    userID = im_id()


@handles(
    OPENIM,
    "callbackAfterQuitGroupCommand",  # v3.7+
    "callbackQuitGroupCommand",  # v3.0-3.6
    serializer=QuitGroupSerializer,
)
def quit_group(data, ctx):
    return [member(data["groupID"], data["userID"], present=False, removed_reason="quit")]


class KickGroupSerializer(serializers.Serializer):
    groupID = im_id()
    kickedUserIDs = id_list()
    reason = text()


@handles(
    OPENIM,
    "callbackAfterKickGroupCommand",  # v3.7+
    "callbackKillGroupCommand",  # v3.0-3.6
    serializer=KickGroupSerializer,
)
def kick_group(data, ctx):
    return [
        member(data["groupID"], user_id, present=False, removed_reason="kicked")
        for user_id in dict.fromkeys(data.get("kickedUserIDs") or [])
    ]


# Tencent Cloud Chat.


class NewMemberJoinSerializer(serializers.Serializer):
    GroupId = im_id()
    JoinType = text(32)
    Operator_Account = text(ID_LENGTH)
    NewMemberList = many(MemberAccountSerializer)
    EventTime = event_time()


@handles(
    TENCENT,
    "Group.CallbackAfterNewMemberJoin",
    serializer=NewMemberJoinSerializer,
    version_field="EventTime",
)
def tencent_new_member_join(data, ctx):
    values = {"role_level": MEMBER}
    if data.get("JoinType") == "Invited" and data.get("Operator_Account"):
        values["inviter_user_id"] = data["Operator_Account"]
    return [
        member(data["GroupId"], item["Member_Account"], values, present=True)
        for item in data["NewMemberList"]
    ]


class MemberExitSerializer(serializers.Serializer):
    GroupId = im_id()
    ExitType = text(max_length(GroupMember, "removed_reason"))
    ExitMemberList = many(MemberAccountSerializer)
    EventTime = event_time()


@handles(
    TENCENT,
    "Group.CallbackAfterMemberExit",
    serializer=MemberExitSerializer,
    version_field="EventTime",
)
def tencent_member_exit(data, ctx):
    reason = {"Kicked": "kicked", "Quit": "quit"}.get(data.get("ExitType"), data.get("ExitType"))
    return [
        member(data["GroupId"], item["Member_Account"], present=False, removed_reason=reason or "")
        for item in data["ExitMemberList"]
    ]


class MemberFieldChangedSerializer(serializers.Serializer):
    GroupId = im_id()
    # The intl docs say Member_Account, the CN docs Modified_Account.
    Member_Account = im_id(required=False)
    Modified_Account = im_id(required=False)
    Role = serializers.ChoiceField(list(TENCENT_ROLES), required=False, allow_null=True)
    NameCard = text(max_length(GroupMember, "nickname"))
    EventTime = event_time()

    def validate(self, data):
        if not (data.get("Member_Account") or data.get("Modified_Account")):
            raise serializers.ValidationError({"Member_Account": "This field is required."})
        return data


@handles(
    TENCENT,
    "Group.CallbackAfterMemberFieldChanged",
    serializer=MemberFieldChangedSerializer,
    version_field="EventTime",
)
def tencent_member_field_changed(data, ctx):
    user_id = data.get("Member_Account") or data["Modified_Account"]
    values = {}
    if data.get("Role"):
        values["role_level"] = TENCENT_ROLES[data["Role"]]
    if data.get("NameCard") is not None:
        values["nickname"] = data["NameCard"]
    return [member(data["GroupId"], user_id, values, present=True)]
