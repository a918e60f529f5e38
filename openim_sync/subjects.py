"""Who and what a delivery is about, read from its payload when it is received.

Stored in the event's indexed ``subject_user_id``, ``subject_group_id`` and ``subject_peer_id``
columns so that events can be found by user or group exactly (admin search, filters,
``openim_replay --user``). The first key present wins; nested places are Tencent's ``Info`` (state
changes) and the first entry of a list (``PairList``, ``MemberList``...).
"""

SUBJECT_LENGTH = 64

USER_KEYS = (
    "userID",
    "sendID",
    "fromUserID",
    "ownerUserID",
    "opUserID",
    "inviterUserID",
    "oldOwnerUserID",
    "From_Account",
    "Member_Account",
    "Modified_Account",
    "Operator_Account",
    "Owner_Account",
    "OldOwner_Account",
    "Requestor_Account",
)
INFO_USER_KEYS = ("To_Account",)  # Tencent State.StateChange: Info.To_Account is the user
GROUP_KEYS = ("groupID", "GroupId")
PEER_KEYS = (
    "friendUserID",
    "blackUserID",
    "toUserID",
    "recvID",
    "newOwnerUserID",
    "NewOwner_Account",
    "To_Account",
)
LIST_KEYS = ("PairList", "NewMemberList", "ExitMemberList", "MemberList", "kickedUserIDs")


def subjects(payload):
    """``(user_id, group_id, peer_id)``, each "" when the payload names none."""
    if not isinstance(payload, dict):
        return "", "", ""
    info = payload.get("Info")
    info_places = [info] if isinstance(info, dict) else []
    places = [payload, *info_places]
    for key in LIST_KEYS:
        items = payload.get(key)
        if isinstance(items, list) and items and isinstance(items[0], dict):
            places.append(items[0])
    user = _first(places, USER_KEYS) or _first(info_places, INFO_USER_KEYS)
    return user, _first(places, GROUP_KEYS), _first(places, PEER_KEYS, exclude=user)


def _first(places, keys, exclude=""):
    for place in places:
        for key in keys:
            value = place.get(key)
            if isinstance(value, str) and value and value != exclude:
                return value[:SUBJECT_LENGTH]
    return ""
