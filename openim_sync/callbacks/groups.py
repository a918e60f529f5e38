"""Groups: creation, settings, ownership and dismissal (memberships: members.py)."""

from rest_framework import serializers

from openim_sync.changes import Change, Merge, Previous
from openim_sync.models import GroupMember, ImGroup, Protocol
from openim_sync.models.mirror import ID_LENGTH

from .fields import (
    event_time,
    given,
    id_list,
    im_id,
    integer,
    many,
    max_length,
    renamed,
    string,
    text,
)
from .registry import handles

OPENIM, TENCENT = Protocol.OPENIM, Protocol.TENCENT
OWNER, ADMIN, MEMBER = GroupMember.ROLE_OWNER, GroupMember.ROLE_ADMIN, GroupMember.ROLE_MEMBER
DISMISSED = 2  # OpenIM group status

GROUP_FIELDS = {
    "groupName": "name",
    "notification": "notification",
    "introduction": "introduction",
    "faceURL": "face_url",
    "ex": "ex",
    "needVerification": "need_verification",
    "lookMemberInfo": "look_member_info",
    "applyMemberFriend": "apply_member_friend",
}
GROUP_STRINGS = ("groupName", "notification", "introduction", "faceURL")
GROUP_NUMBERS = ("needVerification", "lookMemberInfo", "applyMemberFriend")


def group(group_id, values=None, **kwargs):
    return Change(ImGroup, {"group_id": group_id}, values or {}, **kwargs)


def member(group_id, user_id, values=None, **kwargs):
    return Change(GroupMember, {"group_id": group_id, "user_id": user_id}, values or {}, **kwargs)


def dismissal(group_id, member_ids, values=None):
    """The group and the members the server lists become tombstones; the writer removes every
    other present member with the group (``GroupMember.mirror_parent``)."""
    reason = "dismissed"
    changes = [group(group_id, values, present=False, removed_reason=reason)]
    changes += [
        member(group_id, user_id, present=False, removed_reason=reason) for user_id in member_ids
    ]
    return changes


def ownership(group_id, new_owner, old_owner, old_owner_role):
    changes = [
        group(group_id, {"owner_user_id": new_owner}),
        member(group_id, new_owner, {"role_level": OWNER}, present=True),
    ]
    if old_owner and old_owner != new_owner:
        changes.append(member(group_id, old_owner, {"role_level": old_owner_role}, present=True))
    return changes


class GroupInfoSerializer(serializers.Serializer):
    groupID = im_id()
    groupName = text(max_length(ImGroup, "name"))
    notification = text()
    introduction = text()
    faceURL = text(max_length(ImGroup, "face_url"))
    ex = text()
    needVerification = integer(ImGroup, "need_verification")
    lookMemberInfo = integer(ImGroup, "look_member_info")
    applyMemberFriend = integer(ImGroup, "apply_member_friend")


class InitMemberSerializer(serializers.Serializer):
    userID = im_id()
    roleLevel = integer(GroupMember, "role_level")


class CreateGroupSerializer(GroupInfoSerializer):
    ownerUserID = text(ID_LENGTH)
    creatorUserID = text(ID_LENGTH)
    createTime = integer(ImGroup, "im_created_at_ms")
    status = integer(ImGroup, "status")
    groupType = integer()  # stored as text
    initMemberList = many(InitMemberSerializer, required=False, allow_null=True)


def initial_members(entries, owner):
    """``{user_id: role_level}`` from ``initMemberList``, which repeats users.

    v3.7+ lists the owner (100) and admins (60), then every user ID again with 20: members,
    admins, the owner and, last, the operator when it is not in the list (e.g. the REST admin),
    who does not become a member.
    """
    roles = {}
    for entry in entries:
        user_id = entry["userID"]
        roles[user_id] = max(roles.get(user_id, 0), entry.get("roleLevel") or MEMBER)
    ids = [entry["userID"] for entry in entries]
    if owner and ids.count(owner) > 1:
        after_owner = ids[len(ids) - ids[::-1].index(owner) :]
        for user_id in after_owner:
            if ids.count(user_id) == 1 and roles[user_id] == MEMBER:
                del roles[user_id]
    return roles


@handles(OPENIM, "callbackAfterCreateGroupCommand", serializer=CreateGroupSerializer)
def create_group(data, ctx):
    group_id, entries = data["groupID"], data.get("initMemberList") or []
    owner = data.get("ownerUserID") or next(
        (e["userID"] for e in entries if e.get("roleLevel") == OWNER), ""
    )
    values = renamed(given(data, *GROUP_FIELDS), GROUP_FIELDS)
    values |= renamed(
        given(data, "creatorUserID", "status"),
        {"creatorUserID": "creator_user_id", "status": "status"},
    )
    if owner:
        values["owner_user_id"] = owner
    if data.get("groupType") is not None:
        values["group_type"] = str(data["groupType"])
    if data.get("createTime"):
        values["im_created_at_ms"] = data["createTime"]
    changes = [group(group_id, values, present=True)]
    for user_id, role in initial_members(entries, owner).items():
        changes.append(member(group_id, user_id, {"role_level": role}, present=True))
    return changes


@handles(
    OPENIM,
    "callbackAfterSetGroupInfoCommand",
    "CallbackAfterSetGroupInfoCommand",  # early v3 spelling
    serializer=GroupInfoSerializer,
)
def set_group_info(data, ctx):
    # The legacy API cannot clear its four strings: "" means "unchanged"; null as well.
    values = given(data, *GROUP_STRINGS, blank_is_unchanged=True)
    values |= given(data, "ex", *GROUP_NUMBERS)
    return [group(data["groupID"], renamed(values, GROUP_FIELDS))]


@handles(OPENIM, "callbackAfterSetGroupInfoExCommand", serializer=GroupInfoSerializer)
def set_group_info_ex(data, ctx):
    # Wrapper values: null means "not part of the update", "" clears the field.
    return [group(data["groupID"], renamed(given(data, *GROUP_FIELDS), GROUP_FIELDS))]


class DismissGroupSerializer(serializers.Serializer):
    groupID = im_id()
    ownerID = text(ID_LENGTH)
    membersID = id_list()  # null when the server deleted the members first


@handles(
    OPENIM,
    "callbackAfterDisMissGroupCommand",  # v3.7+
    "callbackDisMissGroupCommand",  # v3.0-3.6
    serializer=DismissGroupSerializer,
)
def dismiss_group(data, ctx):
    return dismissal(data["groupID"], data.get("membersID") or [], {"status": DISMISSED})


class TransferGroupOwnerSerializer(serializers.Serializer):
    groupID = im_id()
    oldOwnerUserID = text(ID_LENGTH)
    newOwnerUserID = im_id()


@handles(
    OPENIM,
    "callbackAfterTransferGroupOwnerCommand",  # v3.7+
    "callbackAfterTransferGroupOwner",  # v3.6
    "callbackTransferGroupOwnerAfter",  # v3.4-3.5
    serializer=TransferGroupOwnerSerializer,
)
def transfer_group_owner(data, ctx):
    group_id, new_owner = data["groupID"], data["newOwnerUserID"]
    # The old owner takes the new owner's previous role (a swap).
    new_owner_key = {"group_id": group_id, "user_id": new_owner}
    old_role = Previous(GroupMember, new_owner_key, "role_level", default=MEMBER)
    return ownership(group_id, new_owner, data.get("oldOwnerUserID"), old_role)


# Tencent Cloud Chat.

TENCENT_ROLES = {"Owner": OWNER, "Admin": ADMIN, "Member": MEMBER}


class MemberAccountSerializer(serializers.Serializer):
    Member_Account = im_id()
    Role = serializers.ChoiceField(list(TENCENT_ROLES), required=False, allow_null=True)


class UserDefinedDataSerializer(serializers.Serializer):
    Key = string(max_length=128)
    Value = serializers.JSONField()


class TencentGroupSerializer(serializers.Serializer):
    GroupId = im_id()
    Type = text(max_length(ImGroup, "group_type"))
    Operator_Account = text(ID_LENGTH)
    Owner_Account = text(ID_LENGTH)
    Name = text(max_length(ImGroup, "name"))
    MemberList = many(MemberAccountSerializer, required=False, allow_null=True)
    EventTime = event_time()


class TencentCreateGroupSerializer(TencentGroupSerializer):
    UserDefinedDataList = many(UserDefinedDataSerializer, required=False, allow_null=True)


def _tencent_group_values(data):
    values = renamed(given(data, "Name", "Type"), {"Name": "name", "Type": "group_type"})
    if data.get("Owner_Account"):
        values["owner_user_id"] = data["Owner_Account"]
    return values


@handles(
    TENCENT,
    "Group.CallbackAfterCreateGroup",
    serializer=TencentCreateGroupSerializer,
    version_field="EventTime",
)
def tencent_create_group(data, ctx):
    group_id, owner = data["GroupId"], data.get("Owner_Account")
    values = _tencent_group_values(data)
    if data.get("Operator_Account"):
        values["creator_user_id"] = data["Operator_Account"]
    if data.get("EventTime"):
        values["im_created_at_ms"] = data["EventTime"]
    custom = Merge({item["Key"]: item["Value"] for item in data.get("UserDefinedDataList") or []})
    if custom:
        values["custom"] = custom
    changes = [group(group_id, values, present=True)]
    # The owner is not in MemberList.
    roles = {owner: OWNER} if owner else {}
    for item in data.get("MemberList") or []:
        role = TENCENT_ROLES.get(item.get("Role"), MEMBER)
        roles[item["Member_Account"]] = max(roles.get(item["Member_Account"], 0), role)
    for user_id, role in roles.items():
        changes.append(member(group_id, user_id, {"role_level": role}, present=True))
    return changes


@handles(
    TENCENT,
    "Group.CallbackAfterGroupDestroyed",
    serializer=TencentGroupSerializer,
    version_field="EventTime",
)
def tencent_group_destroyed(data, ctx):
    # MemberList is absent for Community groups.
    member_ids = [item["Member_Account"] for item in data.get("MemberList") or []]
    return dismissal(data["GroupId"], member_ids, _tencent_group_values(data))


class TencentGroupInfoSerializer(serializers.Serializer):
    GroupId = im_id()
    Name = text(max_length(ImGroup, "name"))
    Introduction = text()
    Notification = text()
    FaceUrl = text(max_length(ImGroup, "face_url"))
    EventTime = event_time()


TENCENT_GROUP_INFO = {
    "Name": "name",
    "Introduction": "introduction",
    "Notification": "notification",
    "FaceUrl": "face_url",
}


@handles(
    TENCENT,
    "Group.CallbackAfterGroupInfoChanged",
    serializer=TencentGroupInfoSerializer,
    version_field="EventTime",
)
def tencent_group_info_changed(data, ctx):
    # Only the changed fields are present; "" is a cleared value.
    values = renamed(given(data, *TENCENT_GROUP_INFO), TENCENT_GROUP_INFO)
    return [group(data["GroupId"], values)]


class TencentChangeOwnerSerializer(serializers.Serializer):
    GroupId = im_id()
    OldOwner_Account = text(ID_LENGTH)
    NewOwner_Account = im_id()
    EventTime = event_time()


@handles(
    TENCENT,
    "Group.CallbackAfterChangeGroupOwner",
    serializer=TencentChangeOwnerSerializer,
    version_field="EventTime",
)
def tencent_change_group_owner(data, ctx):
    # Tencent makes the old owner an ordinary member.
    return ownership(
        data["GroupId"], data["NewOwner_Account"], data.get("OldOwner_Account"), MEMBER
    )
