"""REST items → :class:`~openim_sync.changes.Change`, per server (``rest-apis.md`` §1.5, §2.5).

REST replies are complete: ``""`` and ``0`` are values here, unlike in callbacks.
"""

from openim_sync.callbacks.groups import TENCENT_ROLES
from openim_sync.callbacks.users import TENCENT_TAGS
from openim_sync.changes import Change, Merge
from openim_sync.models import BlockedUser, Friend, GroupMember, ImGroup, ImUser, OnlineSession

DISMISSED = 2  # OpenIM group status
SECOND = 1000

# -- OpenIM -------------------------------------------------------------------------------------


def openim_user(info):
    values = {
        "nickname": info.get("nickname") or "",
        "face_url": info.get("faceURL") or "",
        "ex": info.get("ex") or "",
        "app_manager_level": info.get("appMangerLevel"),
        "global_recv_msg_opt": info.get("globalRecvMsgOpt"),
    }
    if info.get("createTime"):
        values["im_created_at_ms"] = info["createTime"]
    return Change(ImUser, {"user_id": info["userID"]}, _known(values))


def openim_group(info):
    values = {
        "name": info.get("groupName") or "",
        "notification": info.get("notification") or "",
        "introduction": info.get("introduction") or "",
        "face_url": info.get("faceURL") or "",
        "ex": info.get("ex") or "",
        "owner_user_id": info.get("ownerUserID") or "",
        "creator_user_id": info.get("creatorUserID") or "",
        "status": info.get("status"),
        "need_verification": info.get("needVerification"),
        "look_member_info": info.get("lookMemberInfo"),
        "apply_member_friend": info.get("applyMemberFriend"),
    }
    if info.get("groupType") is not None:
        values["group_type"] = str(info["groupType"])
    if info.get("createTime"):
        values["im_created_at_ms"] = info["createTime"]
    if info.get("status") == DISMISSED:
        return Change(
            ImGroup,
            {"group_id": info["groupID"]},
            _known(values),
            present=False,
            removed_reason="dismissed",
        )
    return Change(ImGroup, {"group_id": info["groupID"]}, _known(values), present=True)


def openim_member(info, profile=None):
    """``profile``: the user's ``(nickname, face_url)``. OpenIM answers a member's empty group
    card with the user's profile, so a value equal to the profile is not taken as the card."""
    values = {
        "role_level": info.get("roleLevel"),
        "ex": info.get("ex") or "",
        "join_source": info.get("joinSource"),
        "inviter_user_id": info.get("inviterUserID") or "",
        "mute_end_ms": info.get("muteEndTime") or 0,
        "joined_at_ms": info.get("joinTime") or None,
    }
    nickname, face_url = info.get("nickname") or "", info.get("faceURL") or ""
    profile_nickname, profile_face = profile or (None, None)
    if profile is None or nickname != profile_nickname:
        values["nickname"] = nickname
    if profile is None or face_url != profile_face:
        values["face_url"] = face_url
    key = {"group_id": info["groupID"], "user_id": info["userID"]}
    return Change(GroupMember, key, _known(values), present=True)


def openim_friend(info, owner=None):
    friend = (info.get("friendUser") or {}).get("userID")
    values = {"remark": info.get("remark") or ""}
    key = {"owner_user_id": info.get("ownerUserID") or owner, "friend_user_id": friend}
    return Change(Friend, key, values, present=True)


def openim_block(info, owner=None):
    blocked = (info.get("blackUserInfo") or {}).get("userID")
    key = {"owner_user_id": info.get("ownerUserID") or owner, "blocked_user_id": blocked}
    return Change(BlockedUser, key, {}, present=True)


def removed(model, key, reason):
    return Change(model, key, {}, present=False, removed_reason=reason)


def session(user_id, platform, *, online, platform_id=None, seen_at=None, conn_id="", reason=""):
    values = {"online": online, "reason": reason, "last_seen_at": seen_at}
    if platform_id is not None:
        values["platform_id"] = platform_id
    key = {"user_id": user_id, "platform": platform, "conn_id": conn_id}
    return Change(OnlineSession, key, values)


# -- Tencent ------------------------------------------------------------------------------------

#: Profile tags reconcile asks for (standard ones; custom tags come back when the app has them).
TENCENT_PROFILE_TAGS = tuple(TENCENT_TAGS)


def tencent_user(user_id, profile):
    values, custom = {}, Merge()
    for tag, value in profile.items():
        if tag in TENCENT_TAGS:
            column, kind = TENCENT_TAGS[tag]
            values[column] = _typed(value, kind)
        elif tag.startswith("Tag_Profile_Custom_"):
            custom[tag] = value
    if custom:
        values["custom"] = custom
    return Change(ImUser, {"user_id": user_id}, values)


def tencent_group(info):
    values = {
        "name": info.get("Name") or "",
        "introduction": info.get("Introduction") or "",
        "notification": info.get("Notification") or "",
        "face_url": info.get("FaceUrl") or "",
        "owner_user_id": info.get("Owner_Account") or "",
        "group_type": info.get("Type") or "",
    }
    if info.get("CreateTime"):
        values["im_created_at_ms"] = int(info["CreateTime"]) * SECOND
    custom = {item["Key"]: item.get("Value") for item in info.get("AppDefinedData") or []}
    if custom:
        values["custom"] = Merge(custom)
    return Change(ImGroup, {"group_id": info["GroupId"]}, values, present=True)


def tencent_member(group_id, info):
    role = (info.get("Role") or "Member").strip()
    values = {
        "role_level": TENCENT_ROLES.get(role, GroupMember.ROLE_MEMBER),
        "nickname": info.get("NameCard") or "",
        "mute_end_ms": int(info.get("MuteUntil") or 0) * SECOND,
    }
    if info.get("JoinTime"):
        values["joined_at_ms"] = int(info["JoinTime"]) * SECOND
    key = {"group_id": group_id, "user_id": info["Member_Account"]}
    return Change(GroupMember, key, values, present=True)


def tencent_friend(owner, item):
    remark = item.get("Tag_SNS_IM_Remark") or ""
    key = {"owner_user_id": owner, "friend_user_id": item["To_Account"]}
    return Change(Friend, key, {"remark": remark}, present=True)


def tencent_block(owner, item):
    key = {"owner_user_id": owner, "blocked_user_id": item["To_Account"]}
    return Change(BlockedUser, key, {}, present=True)


def _typed(value, kind):
    if kind is int:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return "" if value is None else str(value)


def _known(values):
    return {name: value for name, value in values.items() if value is not None}
