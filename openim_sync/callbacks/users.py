"""Users and their profiles."""

from rest_framework import serializers

from openim_sync.changes import Change, Merge
from openim_sync.models import ImUser, Protocol

from .fields import (
    column_range,
    event_time,
    given,
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

PROFILE_FIELDS = {"nickName": "nickname", "faceURL": "face_url", "ex": "ex"}


class UpdateUserInfoSerializer(serializers.Serializer):
    userID = im_id()
    nickName = text(max_length(ImUser, "nickname"))
    faceURL = text(max_length(ImUser, "face_url"))
    ex = text()


@handles(OPENIM, "callbackAfterUpdateUserInfoCommand", serializer=UpdateUserInfoSerializer)
def update_user_info(data, ctx):
    # The legacy API only stores non-empty strings, so "" means "not changed" here.
    values = given(data, *PROFILE_FIELDS, blank_is_unchanged=True)
    return [Change(ImUser, {"user_id": data["userID"]}, renamed(values, PROFILE_FIELDS))]


@handles(OPENIM, "callbackAfterUpdateUserInfoExCommand", serializer=UpdateUserInfoSerializer)
def update_user_info_ex(data, ctx):
    # Wrapper values: null means "not part of the update", "" clears the field.
    values = given(data, *PROFILE_FIELDS)
    return [Change(ImUser, {"user_id": data["userID"]}, renamed(values, PROFILE_FIELDS))]


class RegisteredUserSerializer(serializers.Serializer):
    userID = im_id()
    nickname = text(max_length(ImUser, "nickname"))
    faceURL = text(max_length(ImUser, "face_url"))
    ex = text()
    createTime = integer(ImUser, "im_created_at_ms")
    appMangerLevel = integer(ImUser, "app_manager_level")
    globalRecvMsgOpt = integer(ImUser, "global_recv_msg_opt")


class UserRegisterSerializer(serializers.Serializer):
    users = many(RegisteredUserSerializer, allow_empty=True)


REGISTER_FIELDS = {
    "nickname": "nickname",
    "faceURL": "face_url",
    "ex": "ex",
    "appMangerLevel": "app_manager_level",
    "globalRecvMsgOpt": "global_recv_msg_opt",
}


@handles(OPENIM, "callbackAfterUserRegisterCommand", serializer=UserRegisterSerializer)
def user_register(data, ctx):
    changes = []
    for user in data["users"]:
        values = renamed(given(user, *REGISTER_FIELDS), REGISTER_FIELDS)
        if user.get("createTime"):  # the caller's request: usually 0, i.e. "now"
            values["im_created_at_ms"] = user["createTime"]
        changes.append(Change(ImUser, {"user_id": user["userID"]}, values))
    return changes


# Tencent Cloud Chat standard profile tags → (column, kind).
TENCENT_TAGS = {
    "Tag_Profile_IM_Nick": ("nickname", str),
    "Tag_Profile_IM_Gender": ("gender", str),
    "Tag_Profile_IM_BirthDay": ("birthday", int),
    "Tag_Profile_IM_Location": ("location", str),
    "Tag_Profile_IM_SelfSignature": ("self_signature", str),
    "Tag_Profile_IM_AllowType": ("allow_type", str),
    "Tag_Profile_IM_Language": ("language", int),
    "Tag_Profile_IM_Image": ("face_url", str),
    "Tag_Profile_IM_MsgSettings": ("msg_settings", int),
    "Tag_Profile_IM_AdminForbidType": ("admin_forbid_type", str),
    "Tag_Profile_IM_Level": ("level", int),
    "Tag_Profile_IM_Role": ("role", int),
}


class ProfileItemSerializer(serializers.Serializer):
    Tag = string(max_length=128)
    Value = serializers.JSONField()

    def validate(self, item):
        tag, value = item["Tag"], item["Value"]
        if tag not in TENCENT_TAGS:
            return item
        column, kind = TENCENT_TAGS[tag]
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise serializers.ValidationError({"Value": f"{tag} needs an integer."})
            try:
                value = int(value)
            except ValueError:
                raise serializers.ValidationError({"Value": f"{tag} needs an integer."}) from None
            low, high = column_range(ImUser, column)
            if not max(low, 0) <= value <= high:
                raise serializers.ValidationError({"Value": f"{tag} is out of range."})
        else:
            if not isinstance(value, str):
                raise serializers.ValidationError({"Value": f"{tag} needs a string."})
            limit = max_length(ImUser, column)
            if len(value) > limit:
                raise serializers.ValidationError(
                    {"Value": f"{tag} has more than {limit} characters."}
                )
        return {"Tag": tag, "Value": value}


class PortraitSetSerializer(serializers.Serializer):
    From_Account = im_id()
    Operator_Account = text()
    EventTime = event_time()
    ProfileItem = many(ProfileItemSerializer)


@handles(
    TENCENT,
    "Profile.CallbackPortraitSet",
    serializer=PortraitSetSerializer,
    version_field="EventTime",
)
def portrait_set(data, ctx):
    values, custom = {}, Merge()
    for item in data["ProfileItem"]:
        if item["Tag"] in TENCENT_TAGS:
            values[TENCENT_TAGS[item["Tag"]][0]] = item["Value"]
        else:
            custom[item["Tag"]] = item["Value"]
    if custom:
        values["custom"] = custom
    return [Change(ImUser, {"user_id": data["From_Account"]}, values)]
