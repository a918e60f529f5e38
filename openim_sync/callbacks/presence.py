"""Online sessions."""

import ipaddress

from rest_framework import serializers

from openim_sync.changes import Change
from openim_sync.models import OnlineSession, Protocol

from .fields import event_time, im_id, integer, many, platform_name, query_value, string, text
from .registry import handles

OPENIM, TENCENT = Protocol.OPENIM, Protocol.TENCENT

REASON_LENGTH = OnlineSession._meta.get_field("reason").max_length


class UserOnlineSerializer(serializers.Serializer):
    userID = im_id()
    seq = integer(OnlineSession, "version", min_value=0)
    platformID = integer(OnlineSession, "platform_id")
    platform = text(max_length=32)
    isAppBackground = serializers.BooleanField(required=False, allow_null=True)
    connID = text(max_length=OnlineSession._meta.get_field("conn_id").max_length)


def _session(data, ctx, *, online, reason=""):
    key = {
        "user_id": data["userID"],
        "platform": platform_name(data.get("platform"), data.get("platformID")),
        "conn_id": data.get("connID") or "",
    }
    values = {"online": online, "reason": reason, "last_seen_at": ctx.event.received_at}
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


@handles(
    OPENIM,
    "callbackAfterUserKickOffCommand",  # defined since v3.0, never sent by a v3 release
    "callbackUserKickOffCommand",  # v2
    serializer=UserOnlineSerializer,
    version_field="seq",
)
def user_kick_off(data, ctx):
    return _session(data, ctx, online=False, reason="KickOff")


class StateInfoSerializer(serializers.Serializer):
    Action = serializers.ChoiceField(["Login", "Logout", "Disconnect", "CustomStatusChange"])
    To_Account = im_id()
    Reason = text(REASON_LENGTH)


class KickedDeviceSerializer(serializers.Serializer):
    Platform = string(max_length=32)


class StateChangeSerializer(serializers.Serializer):
    EventTime = event_time()
    Info = StateInfoSerializer()
    KickedDevice = many(KickedDeviceSerializer, required=False, allow_null=True)


@handles(TENCENT, "State.StateChange", serializer=StateChangeSerializer, version_field="EventTime")
def state_change(data, ctx):
    info = data["Info"]
    user_id, seen = info["To_Account"], ctx.event.received_at
    platform = platform_name(query_value(ctx, "OptPlatform"))
    # CustomStatusChange: the user set a status, so they are logged in on that platform.
    values = {
        "online": info["Action"] in ("Login", "CustomStatusChange"),
        "reason": info.get("Reason") or info["Action"],
        "last_seen_at": seen,
    }
    client_ip = _ip(query_value(ctx, "ClientIP"))
    if client_ip:
        values["client_ip"] = client_ip
    changes = [Change(OnlineSession, _tencent_key(user_id, platform), values)]
    for device in data.get("KickedDevice") or []:
        kicked = platform_name(device["Platform"])
        if kicked != platform:
            kicked_values = {"online": False, "reason": "Kicked", "last_seen_at": seen}
            changes.append(Change(OnlineSession, _tencent_key(user_id, kicked), kicked_values))
    return changes


def _tencent_key(user_id, platform):
    return {"user_id": user_id, "platform": platform, "conn_id": ""}


def _ip(value):
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None
