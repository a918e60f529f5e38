"""The benchmark's workload: a realistic stream of OpenIM callbacks and the mirror it must produce.

:class:`World` plays the IM server. It keeps the true state (who is in which group, who is whose
friend, who is online where) and emits only callbacks that server could send from that state:
member info only for members, remarks only for friends, quits only for members, offline only for
sessions that are online, with a rising ``seq``. Every event names the mirror rows it touches
(``keys``); the load generator never has two events with a shared key in flight at once and sends
them in generation order per key, so the final mirror does not depend on scheduling.

:func:`expected_mirror` folds the sent events, in generation order, into the mirror the receiver
must end with. Only commands the receiver handles are folded in (the runner asks the registry), so
a command that is not implemented yet is still sent (and must be stored as ``ignored``) without
making the check fail.
"""

import base64
import json
import random
from dataclasses import dataclass

#: Default command mix, weights in percent of deliveries.
DEFAULT_MIX = {
    "callbackAfterUpdateUserInfoExCommand": 8,
    "callbackAfterUpdateUserInfoCommand": 3,
    "callbackAfterSetGroupMemberInfoCommand": 8,
    "callbackAfterSetFriendRemarkCommand": 5,
    "callbackAfterUserOnlineCommand": 14,
    "callbackAfterUserOfflineCommand": 10,
    "callbackAfterCreateGroupCommand": 3,
    "callbackAfterJoinGroupCommand": 6,
    "callbackAfterQuitGroupCommand": 4,
    "callbackAfterAddFriendAgreeCommand": 6,
    "callbackAfterDeleteFriendCommand": 3,
    "callbackAfterSendSingleMsgCommand": 15,
    "callbackAfterSendGroupMsgCommand": 15,
}

#: Commands whose effect :func:`expected_mirror` models.
MODELLED = {
    "callbackAfterUpdateUserInfoExCommand",
    "callbackAfterUpdateUserInfoCommand",
    "callbackAfterSetGroupMemberInfoCommand",
    "callbackAfterSetFriendRemarkCommand",
    "callbackAfterUserOnlineCommand",
    "callbackAfterUserOfflineCommand",
    "callbackAfterCreateGroupCommand",
    "callbackAfterJoinGroupCommand",
    "callbackAfterQuitGroupCommand",
    "callbackAfterAddFriendAgreeCommand",
    "callbackAfterDeleteFriendCommand",
}

#: OpenIM platform id → the name OpenIM sends, and the mirror's spelling of it.
PLATFORMS = [
    (1, "IOS", "iOS"),
    (2, "Android", "Android"),
    (3, "Windows", "Windows"),
    (5, "Web", "Web"),
]
NAMES = ["Alice", "Bob", "Chen Wei", "Dara", "Émile", "Fatma", "Gō", "Hanna", "Ivo", "Jun 测试"]


def parse_mix(text):
    """``"callbackAfterUserOnlineCommand=20,callbackAfterSendSingleMsgCommand=5"`` → a mix dict.

    ``default`` (or empty) is :data:`DEFAULT_MIX`; ``default,cmd=N`` overrides single weights;
    ``none,cmd=N,...`` starts from an empty mix;
    a command not in the default mix is sent with a minimal body (``callbackCommand`` only).
    """
    mix = dict(DEFAULT_MIX)
    for part in (text or "default").split(","):
        part = part.strip()
        if not part or part == "default":
            continue
        if part == "none":
            mix = {}
            continue
        name, _, weight = part.partition("=")
        mix[name] = float(weight or 1)
    return {name: weight for name, weight in mix.items() if weight > 0}


@dataclass(slots=True)
class Event:
    idx: int
    command: str
    path: str  # '/<command>' plus the query string OpenIM adds
    body: bytes
    operation_id: str
    keys: tuple
    op: tuple  # what expected_mirror needs: (kind, *args)


def compact(payload):
    """Go's ``json.NewEncoder(w).Encode(v)``: compact, HTML-escaped, UTF-8, trailing newline."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.encode() + b"\n"


class World:
    """The IM server's true state and a reproducible stream of callbacks derived from it."""

    def __init__(self, users=2000, groups=200, mix=None, seed=1, seq_base=1_760_000_000_000):
        self.rng = random.Random(seed)
        self.users = [f"u{n:06d}" for n in range(users)]
        self.group_ids = [f"g{n:05d}" for n in range(groups)]
        self.mix = mix or dict(DEFAULT_MIX)
        self.commands = list(self.mix)
        self.weights = [self.mix[c] for c in self.commands]
        self.members = {}  # group id → {user id: role level}
        self.friends = set()  # (owner, friend) directed edges
        self.friend_list = []  # the same edges, for random choice (lazily pruned)
        self.online = {}  # (user, platform index) → True
        self.online_list = []
        self.seq = seq_base
        self.idx = 0
        self.msg = 0

    # -- helpers ---------------------------------------------------------------------------

    def _user(self):
        return self.rng.choice(self.users)

    def _name(self):
        return f"{self.rng.choice(NAMES)} {self.rng.randrange(10_000)}"

    def _existing_group(self):
        if not self.members:
            return None
        for _ in range(4):
            group = self.rng.choice(self.group_ids)
            if group in self.members:
                return group
        return next(iter(self.members))

    def _member(self):
        group = self._existing_group()
        if group is None or not self.members[group]:
            return None, None
        return group, self.rng.choice(list(self.members[group]))

    def _friend_edge(self):
        while self.friend_list:
            i = self.rng.randrange(len(self.friend_list))
            edge = self.friend_list[i]
            if edge in self.friends:
                return edge
            self.friend_list[i] = self.friend_list[-1]
            self.friend_list.pop()
        return None

    def _event(self, command, payload, keys, op, query=""):
        self.idx += 1
        payload = {"callbackCommand": command, **payload}
        op_id = f"{self.rng.getrandbits(40):010x}-bench"
        return Event(self.idx, command, f"/{command}{query}", compact(payload), op_id, keys, op)

    # -- the stream ------------------------------------------------------------------------

    def next_event(self):
        for _ in range(10):
            command = self.rng.choices(self.commands, self.weights)[0]
            make = getattr(self, "_" + command, None)
            event = make() if make else self._event(command, {}, (), ("none",))
            if event is not None:
                return event
        return self._callbackAfterUpdateUserInfoExCommand()

    def _callbackAfterUpdateUserInfoExCommand(self):
        user, name = self._user(), self._name()
        face = f"https://cdn.example.com/a/{user}-{self.rng.randrange(999)}.png"
        if self.rng.random() < 0.3:
            face = None  # not part of this update
        payload = {"userID": user, "nickName": name, "faceURL": face, "ex": None}
        return self._event(
            "callbackAfterUpdateUserInfoExCommand",
            payload,
            (("user", user),),
            ("user", user, {"nickname": name, **({"face_url": face} if face is not None else {})}),
        )

    def _callbackAfterUpdateUserInfoCommand(self):
        # The legacy API: "" means "not changed".
        user, name = self._user(), self._name()
        face = f"https://cdn.example.com/b/{user}-{self.rng.randrange(999)}.png"
        if self.rng.random() < 0.5:
            face = ""
        payload = {"userID": user, "nickName": name, "faceURL": face, "ex": ""}
        return self._event(
            "callbackAfterUpdateUserInfoCommand",
            payload,
            (("user", user),),
            ("user", user, {"nickname": name, **({"face_url": face} if face else {})}),
        )

    def _callbackAfterSetGroupMemberInfoCommand(self):
        group, user = self._member()
        if group is None:
            return None
        nick = self._name() if self.rng.random() < 0.8 else None
        role = self.rng.choice([20, 60]) if self.rng.random() < 0.3 else None
        if self.members[group][user] == 100:
            role = None  # the owner is not demoted through member info
        if role is not None:
            self.members[group][user] = role
        payload = {
            "groupID": group,
            "userID": user,
            "nickName": nick,
            "faceURL": None,
            "roleLevel": role,
            "ex": None,
        }
        values = {}
        if nick is not None:
            values["nickname"] = nick
        if role is not None:
            values["role_level"] = role
        return self._event(
            "callbackAfterSetGroupMemberInfoCommand",
            payload,
            (("member", group, user),),
            ("member", group, user, values),
        )

    def _callbackAfterSetFriendRemarkCommand(self):
        edge = self._friend_edge()
        if edge is None:
            return None
        remark = f"{self.rng.choice(NAMES)} (remark {self.rng.randrange(1000)})"
        payload = {"ownerUserID": edge[0], "friendUserID": edge[1], "remark": remark}
        return self._event(
            "callbackAfterSetFriendRemarkCommand",
            payload,
            (("friend", *edge),),
            ("remark", edge, remark),
        )

    def _presence(self, command, online):
        if online or not self.online_list:
            user, p = self._user(), self.rng.randrange(len(PLATFORMS))
            if not online:
                return None
        else:
            i = self.rng.randrange(len(self.online_list))
            user, p = self.online_list[i]
            self.online_list[i] = self.online_list[-1]
            self.online_list.pop()
        if online and (user, p) not in self.online:
            self.online[(user, p)] = True
            self.online_list.append((user, p))
        elif not online:
            self.online.pop((user, p), None)
        self.seq += self.rng.randrange(1, 50)
        pid, wire_name, mirror_name = PLATFORMS[p]
        payload = {
            "operationID": f"p_27_{self.seq % 100000}",
            "platformID": pid,
            "platform": wire_name,
            "userID": user,
            "seq": self.seq,
        }
        if online:
            payload["isAppBackground"] = False
        payload["connID"] = ""
        return self._event(
            command,
            payload,
            (("session", user, mirror_name),),
            ("session", user, mirror_name, online),
        )

    def _callbackAfterUserOnlineCommand(self):
        return self._presence("callbackAfterUserOnlineCommand", True)

    def _callbackAfterUserOfflineCommand(self):
        return self._presence("callbackAfterUserOfflineCommand", False)

    def _callbackAfterCreateGroupCommand(self):
        free = [g for g in self.rng.sample(self.group_ids, min(8, len(self.group_ids)))]
        free = [g for g in free if g not in self.members]
        if not free:
            return self._callbackAfterJoinGroupCommand()
        group = free[0]
        people = self.rng.sample(self.users, min(len(self.users), self.rng.randrange(3, 9)))
        owner, admins, rest = people[0], people[1:2], people[2:]
        roles = {owner: 100, **dict.fromkeys(admins, 60), **dict.fromkeys(rest, 20)}
        self.members[group] = dict(roles)
        name = f"Group {group} {self.rng.choice(NAMES)}"
        # OpenIM's list: owner (100), admins (60), then every user again with 20: members,
        # admins, the owner (openim-callbacks.md §3.4).
        init = [{"userID": owner, "roleLevel": 100}]
        init += [{"userID": u, "roleLevel": 60} for u in admins]
        init += [{"userID": u, "roleLevel": 20} for u in [*rest, *admins, owner]]
        payload = {
            "groupID": group,
            "groupName": name,
            "notification": "",
            "introduction": "",
            "faceURL": "",
            "ownerUserID": owner,
            "createTime": self.seq,
            "memberCount": len(people),
            "ex": "",
            "status": 0,
            "creatorUserID": owner,
            "groupType": 2,
            "needVerification": 2,
            "lookMemberInfo": 0,
            "applyMemberFriend": 0,
            "notificationUpdateTime": 0,
            "notificationUserID": "",
            "initMemberList": init,
        }
        keys = (("group", group), *(("member", group, u) for u in people))
        return self._event(
            "callbackAfterCreateGroupCommand", payload, keys, ("create", group, name, roles)
        )

    def _callbackAfterJoinGroupCommand(self):
        group = self._existing_group()
        if group is None:
            return None
        user = self._user()
        if user in self.members[group]:
            return None
        self.members[group][user] = 20
        payload = {
            "operationID": f"{self.seq}-join",
            "groupID": group,
            "reqMessage": "hi",
            "joinSource": 3,
            "inviterUserID": user,  # OpenIM puts the joining user here
        }
        return self._event(
            "callbackAfterJoinGroupCommand",
            payload,
            (("member", group, user),),
            ("join", group, user),
        )

    def _callbackAfterQuitGroupCommand(self):
        group, user = self._member()
        if group is None or self.members[group][user] == 100:
            return None
        del self.members[group][user]
        return self._event(
            "callbackAfterQuitGroupCommand",
            {"groupID": group, "userID": user},
            (("member", group, user),),
            ("quit", group, user),
        )

    def _callbackAfterAddFriendAgreeCommand(self):
        a, b = self._user(), self._user()
        if a == b or (a, b) in self.friends:
            return None
        for edge in ((a, b), (b, a)):
            if edge not in self.friends:
                self.friends.add(edge)
                self.friend_list.append(edge)
        payload = {"fromUserID": a, "blackUserID": b, "HandleResult": 1, "HandleMsg": "ok"}
        return self._event(
            "callbackAfterAddFriendAgreeCommand",
            payload,
            (("friend", a, b), ("friend", b, a)),
            ("befriend", a, b),
        )

    def _callbackAfterDeleteFriendCommand(self):
        edge = self._friend_edge()
        if edge is None:
            return None
        self.friends.discard(edge)
        return self._event(
            "callbackAfterDeleteFriendCommand",
            {"ownerUserID": edge[0], "friendUserID": edge[1]},
            (("friend", *edge),),
            ("unfriend", edge),
        )

    def _message(self, command, target):
        self.msg += 1
        sender = self._user()
        key = {"sendID": sender, "recvID": "", "groupID": ""}
        body = {
            "sendID": sender,
            "callbackCommand": command,
            "serverMsgID": f"{self.msg:032x}",
            "clientMsgID": f"{self.rng.getrandbits(128):032x}",
            "operationID": f"{self.seq}-msg",
            "senderPlatformID": 2,
            "senderNickname": self.rng.choice(NAMES),
            "sessionType": 1 if "recvID" in target else 3,
            "msgFrom": 100,
            "contentType": 101,
            "status": 1,
            "sendTime": self.seq,
            "createTime": self.seq,
            "content": json.dumps({"content": f"hello <{self.msg}> & bye"}),
            "seq": 0,
            "atUserList": None,
            "faceURL": "https://cdn.example.com/a/x.png",
            "ex": "",
            **target,
        }
        key.update(target)
        query = "?key=" + base64.b64encode(compact(key)[:-1]).decode().replace("=", "%3D")
        event = self._event(command, {}, (), ("none",), query=query)
        del body["callbackCommand"]
        event.body = compact({"callbackCommand": command, **body})
        return event

    def _callbackAfterSendSingleMsgCommand(self):
        return self._message("callbackAfterSendSingleMsgCommand", {"recvID": self._user()})

    def _callbackAfterSendGroupMsgCommand(self):
        group = self._existing_group() or self.group_ids[0]
        return self._message("callbackAfterSendGroupMsgCommand", {"groupID": group})


def key_str(*parts):
    return "|".join(str(p) for p in parts)


def expected_mirror(ops, handled):
    """Fold ``(command, op)`` pairs (generation order) into the expected mirror.

    Returns ``{"users": {user: {field: value}}, "sessions": {user|platform: online},
    "members": {group|user: {"present": bool, field: value}}, "friends": {owner|friend:
    {"present": bool, "remark": ...}}, "groups": {group: {"name": ...}}}``; only the fields some
    handled event set are listed, so the check compares exactly what the receiver was told.
    """
    users, sessions, members, friends, groups = {}, {}, {}, {}, {}
    for command, op in ops:
        if command not in handled or command not in MODELLED:
            continue
        kind = op[0]
        if kind == "user":
            users.setdefault(op[1], {}).update(op[2])
        elif kind == "session":
            sessions[key_str(op[1], op[2])] = op[3]
        elif kind == "member":
            row = members.setdefault(key_str(op[1], op[2]), {})
            row["present"] = True
            row.update(op[3])
        elif kind == "remark":
            row = friends.setdefault(key_str(*op[1]), {})
            row["present"] = True
            row["remark"] = op[2]
        elif kind == "create":
            _, group, name, roles = op
            groups.setdefault(group, {})["name"] = name
            for user, role in roles.items():
                row = members.setdefault(key_str(group, user), {})
                row["present"] = True
                row["role_level"] = role
        elif kind == "join":
            row = members.setdefault(key_str(op[1], op[2]), {})
            row["present"], row["role_level"] = True, 20
        elif kind == "quit":
            members.setdefault(key_str(op[1], op[2]), {})["present"] = False
        elif kind == "befriend":
            for edge in ((op[1], op[2]), (op[2], op[1])):
                friends.setdefault(key_str(*edge), {})["present"] = True
        elif kind == "unfriend":
            friends.setdefault(key_str(*op[1]), {})["present"] = False
    return {
        "users": users,
        "sessions": sessions,
        "members": members,
        "friends": friends,
        "groups": groups,
    }
