"""Friendships, remarks and block lists."""

from rest_framework import serializers

from openim_sync.changes import Change
from openim_sync.models import BlockedUser, Friend, Protocol

from .fields import event_time, id_list, im_id, integer, many, max_length, string, text
from .registry import handles

OPENIM, TENCENT = Protocol.OPENIM, Protocol.TENCENT


def _friend(owner, friend, **kwargs):
    return Change(Friend, {"owner_user_id": owner, "friend_user_id": friend}, **kwargs)


def _blocked(owner, blocked, **kwargs):
    return Change(BlockedUser, {"owner_user_id": owner, "blocked_user_id": blocked}, **kwargs)


class SetFriendRemarkSerializer(serializers.Serializer):
    ownerUserID = im_id()
    friendUserID = im_id()
    remark = string(max_length=max_length(Friend, "remark"), allow_blank=True)


@handles(
    OPENIM,
    "callbackAfterSetFriendRemarkCommand",
    "callbackAfterSetFriendRemark",  # v3.6
    serializer=SetFriendRemarkSerializer,
)
def set_friend_remark(data, ctx):
    key = {"owner_user_id": data["ownerUserID"], "friend_user_id": data["friendUserID"]}
    # Like member info: an unknown friendship is created, a deleted one is not revived.
    return [Change(Friend, key, {"remark": data["remark"]})]


class AddFriendAgreeSerializer(serializers.Serializer):
    fromUserID = im_id()
    # The accepter; the Go struct's json tag says "blackUserID", the docs say "toUserID".
    blackUserID = im_id(required=False)
    toUserID = im_id(required=False)
    HandleResult = integer()
    handleResult = integer()
    HandleMsg = text()

    def validate(self, data):
        if not (data.get("blackUserID") or data.get("toUserID")):
            raise serializers.ValidationError({"blackUserID": "This field is required."})
        return data


@handles(OPENIM, "callbackAfterAddFriendAgreeCommand", serializer=AddFriendAgreeSerializer)
def add_friend_agree(data, ctx):
    result = data.get("HandleResult")
    if result is None:
        result = data.get("handleResult")
    if result is not None and result != 1:
        return []  # a refusal leaves no friendship (the server only sends acceptances)
    requester, accepter = data["fromUserID"], data.get("blackUserID") or data["toUserID"]
    return [_friend(requester, accepter, present=True), _friend(accepter, requester, present=True)]


class DeleteFriendSerializer(serializers.Serializer):
    ownerUserID = im_id()
    friendUserID = im_id()


@handles(
    OPENIM,
    "callbackAfterDeleteFriendCommand",
    "CallbackAfterDeleteFriendCommand",  # early v3 spelling
    serializer=DeleteFriendSerializer,
)
def delete_friend(data, ctx):
    # Only the owner's side is deleted; the friend still lists the owner.
    return [
        _friend(data["ownerUserID"], data["friendUserID"], present=False, removed_reason="deleted")
    ]


class ImportFriendsSerializer(serializers.Serializer):
    ownerUserID = im_id()
    friendUserIDs = id_list()


@handles(
    OPENIM,
    "callbackAfterImportFriendsCommand",
    "CallbackAfterImportFriendsCommand",  # early v3 spelling
    serializer=ImportFriendsSerializer,
)
def import_friends(data, ctx):
    owner, changes = data["ownerUserID"], []
    for friend in dict.fromkeys(data.get("friendUserIDs") or []):
        changes += [_friend(owner, friend, present=True), _friend(friend, owner, present=True)]
    return changes


class RemoveBlackSerializer(serializers.Serializer):
    ownerUserID = im_id()
    blackUserID = im_id()


@handles(
    OPENIM,
    "callbackAfterRemoveBlackCommand",
    "CallbackAfterRemoveBlackCommand",  # early v3 spelling
    serializer=RemoveBlackSerializer,
)
def remove_black(data, ctx):
    return [
        _blocked(
            data["ownerUserID"], data["blackUserID"], present=False, removed_reason="unblocked"
        )
    ]


class PairSerializer(serializers.Serializer):
    From_Account = im_id()
    To_Account = im_id()


class PairListSerializer(serializers.Serializer):
    PairList = many(PairSerializer)
    EventTime = event_time()


def _pairs(data, edge, **kwargs):
    return [edge(pair["From_Account"], pair["To_Account"], **kwargs) for pair in data["PairList"]]


@handles(TENCENT, "Sns.CallbackFriendAdd", serializer=PairListSerializer, version_field="EventTime")
def tencent_friend_add(data, ctx):
    return _pairs(data, _friend, present=True)


@handles(
    TENCENT, "Sns.CallbackFriendDelete", serializer=PairListSerializer, version_field="EventTime"
)
def tencent_friend_delete(data, ctx):
    return _pairs(data, _friend, present=False, removed_reason="deleted")


@handles(
    TENCENT, "Sns.CallbackBlackListAdd", serializer=PairListSerializer, version_field="EventTime"
)
def tencent_black_list_add(data, ctx):
    return _pairs(data, _blocked, present=True)


@handles(
    TENCENT,
    "Sns.CallbackBlackListDelete",
    serializer=PairListSerializer,
    version_field="EventTime",
)
def tencent_black_list_delete(data, ctx):
    return _pairs(data, _blocked, present=False, removed_reason="unblocked")
