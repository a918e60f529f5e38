"""Online sessions."""

from rest_framework import serializers

from openim_sync.models import OnlineSession, Protocol
from openim_sync.writer import Change

from .fields import im_id, integer, platform_name, text
from .registry import handles

OPENIM, TENCENT = Protocol.OPENIM, Protocol.TENCENT


class UserOnlineSerializer(serializers.Serializer):
    userID = im_id()
    seq = integer(min_value=0)
    platformID = integer()
    platform = text(max_length=32)
    isAppBackground = serializers.BooleanField(required=False, allow_null=True)
    connID = text(max_length=OnlineSession._meta.get_field("conn_id").max_length)


def _session(data, ctx, *, online):
    key = {
        "user_id": data["userID"],
        "platform": platform_name(data.get("platform"), data.get("platformID")),
        "conn_id": data.get("connID") or "",
    }
    values = {"online": online, "last_seen_at": ctx.event.received_at}
    if data.get("platformID") is not None:
        values["platform_id"] = data["platformID"]
    if data.get("isAppBackground") is not None:
        values["is_app_background"] = data["isAppBackground"]
    return [Change(OnlineSession, key, values)]


@handles(
    OPENIM,
    "callbackAfterUserOnlineCommand",  # v3.7+
    "callbackUserOnlineCommand",  # v2, v3.0-3.6 and the docs
    serializer=UserOnlineSerializer,
    version_field="seq",
)
def user_online(data, ctx):
    return _session(data, ctx, online=True)


@handles(
    OPENIM,
    "callbackAfterUserOfflineCommand",
    "callbackUserOfflineCommand",
    serializer=UserOnlineSerializer,
    version_field="seq",
)
def user_offline(data, ctx):
    return _session(data, ctx, online=False)
