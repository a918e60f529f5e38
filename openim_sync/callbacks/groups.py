"""Groups and their members."""

from rest_framework import serializers

from openim_sync.models import GroupMember, Protocol
from openim_sync.writer import Change

from .fields import given, im_id, integer, max_length, renamed, text
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
    roleLevel = integer()
    ex = text()


@handles(
    OPENIM,
    "callbackAfterSetGroupMemberInfoCommand",
    "callbackAfterSetGroupMemberInfo",  # the docs' spelling
    serializer=SetGroupMemberInfoSerializer,
)
def set_group_member_info(data, ctx):
    key = {"group_id": data["groupID"], "user_id": data["userID"]}
    values = renamed(given(data, *MEMBER_FIELDS), MEMBER_FIELDS)
    return [Change(GroupMember, key, values, present=True)]
