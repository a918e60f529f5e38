"""Friendships, remarks and block lists."""

from rest_framework import serializers

from openim_sync.models import Friend, Protocol
from openim_sync.writer import Change

from .fields import im_id, max_length
from .registry import handles

OPENIM, TENCENT = Protocol.OPENIM, Protocol.TENCENT


class SetFriendRemarkSerializer(serializers.Serializer):
    ownerUserID = im_id()
    friendUserID = im_id()
    remark = serializers.CharField(
        max_length=max_length(Friend, "remark"), allow_blank=True, trim_whitespace=False
    )


@handles(
    OPENIM,
    "callbackAfterSetFriendRemarkCommand",
    "callbackAfterSetFriendRemark",  # v3.6
    serializer=SetFriendRemarkSerializer,
)
def set_friend_remark(data, ctx):
    key = {"owner_user_id": data["ownerUserID"], "friend_user_id": data["friendUserID"]}
    return [Change(Friend, key, {"remark": data["remark"]}, present=True)]
