"""A fake OpenIM Server REST API (port 10002 in production) for tests and the benchmark.

It answers the admin read endpoints reconcile uses the way the vendor's gin + gRPC stack does:

* every call is a POST; the ``operationID`` header is mandatory (errCode 1001 otherwise), then the
  ``token`` header (1001 "header must have token" when absent, 1501 when expired, 1507 when the
  server does not know it). From v3.8.0 the token check is global: an unknown route without a
  token answers 1001, not 404. Unknown routes answer gin's plain-text ``404 page not found``.
* replies are HTTP 200 ``{"errCode", "errMsg", "errDlt", "data"}`` (``data`` omitted when nil);
  every scalar is present, and an empty list is ``null`` (a nil Go slice after the gRPC hop).
* offset pagination: ``pageNumber`` from 1 (``< 1`` → 1001), ``showNumber <= 0`` → an empty page,
  past the end → ``total`` with a ``null`` list.
* version logs (v3.8.0+): per group (members) and per owner (friends); a stale or foreign
  ``versionID`` or more than 200 changes → ``full: true`` with empty lists.

The version decides the routes (``version``: "3.7.0", "3.8.0", "3.8.1", "3.8.2", "3.8.3",
"main"); see ``FEATURES``. Server state lives in :class:`OpenIMState` (``server.state``).

Command line (for the benchmark)::

    python -m openim_sync.testing.fake_openim --port 0 --populate users=10000,groups=1000,...
"""

import hashlib
import itertools
import json
import random
import re
import secrets
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from .http import FakeServer, Reply, run_cli

ROLE_OWNER, ROLE_ADMIN, ROLE_MEMBER = 100, 60, 20
GROUP_OK, GROUP_DISMISSED = 0, 2
INSERT, DELETE, UPDATE = 1, 2, 3
GROUP_CHANGE = ""  # the element id a group-profile change leaves in a member version log
SYNC_LIMIT = 200  # incrversion.syncLimit
BATCH_SYNC_LIMIT = 500  # group.versionSyncLimit
ADMIN_PLATFORM_ID = 10
DEFAULT_TOKEN_TTL = 90 * 86400
SUPERSEDED_TOKEN_SECONDS = 300  # main: an older admin token lives 5 minutes after a newer one

USER_FIELDS = {
    "nickname": "",
    "faceURL": "",
    "ex": "",
    "createTime": None,
    "appMangerLevel": 1,
    "globalRecvMsgOpt": 0,
}
GROUP_FIELDS = {
    "groupName": "",
    "notification": "",
    "introduction": "",
    "faceURL": "",
    "createTime": None,
    "ex": "",
    "status": GROUP_OK,
    "creatorUserID": None,
    "groupType": 2,
    "needVerification": 0,
    "lookMemberInfo": 0,
    "applyMemberFriend": 0,
    "notificationUpdateTime": 0,
    "notificationUserID": "",
}
MEMBER_FIELDS = {
    "roleLevel": ROLE_MEMBER,
    "joinTime": None,
    "nickname": "",
    "faceURL": "",
    "joinSource": 2,
    "operatorUserID": "",
    "ex": "",
    "muteEndTime": 0,
    "inviterUserID": "",
}
FRIEND_FIELDS = {
    "remark": "",
    "createTime": None,
    "addSource": 2,
    "operatorUserID": "",
    "ex": "",
    "isPinned": False,
}
BLACK_FIELDS = {"createTime": None, "addSource": 0, "operatorUserID": "", "ex": ""}

#: Per version: the token endpoint, whether the token check is global (gin middleware) or per
#: route, whether incremental/get_full_* routes exist, get_specified_blacks, gzip, and what
#: get_incremental_blacks does ("stub": the RPC returns nil → a zero reply; "unimplemented":
#: gRPC code 12).
# fmt: off
FEATURES = {
    "3.7.0": dict(token="user_token", global_token=False, incremental=False, specified_blacks=False, gzip=False, blacks=None),
    "3.8.0": dict(token="user_token", global_token=True, incremental=True, specified_blacks=False, gzip=False, blacks="stub"),
    "3.8.1": dict(token="admin_token", global_token=True, incremental=True, specified_blacks=True, gzip=True, blacks="stub"),
    "3.8.2": dict(token="admin_token", global_token=True, incremental=True, specified_blacks=True, gzip=True, blacks="stub"),
    "3.8.3": dict(token="admin_token", global_token=True, incremental=True, specified_blacks=True, gzip=True, blacks="unimplemented"),
    "main": dict(token="admin_token", global_token=True, incremental=True, specified_blacks=True, gzip=True, blacks="unimplemented"),
}
# fmt: on


class OpenIMError(Exception):
    """An OpenIM CodeError: ``errCode``, ``errMsg`` (the code's name) and ``errDlt``."""

    def __init__(self, code, msg, detail=""):
        super().__init__(f"{code} {msg}: {detail}")
        self.code, self.msg, self.detail = code, msg, detail


def args_error(detail):
    return OpenIMError(1001, "ArgsError", detail)


def no_permission(detail):
    return OpenIMError(1002, "NoPermissionError", detail)


def now_ms():
    return int(time.time() * 1000)


def object_id():
    """A fresh Mongo ObjectID in hex: 4 bytes of seconds, then 8 random bytes."""
    return f"{int(time.time()):08x}{secrets.token_hex(8)}"


def id_hash(ids):
    """``hashutil.IdHash``: the first 8 bytes (big-endian) of the MD5 of the JSON array."""
    if not ids:
        return 0
    data = json.dumps(list(ids), separators=(",", ":"), ensure_ascii=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return int.from_bytes(hashlib.md5(data.encode()).digest()[:8], "big")


def _fields(defaults, given, what):
    unknown = set(given) - set(defaults)
    if unknown:
        raise TypeError(f"unknown {what} field(s): {', '.join(sorted(unknown))}")
    return {**defaults, **given}


def _null(items):
    """Go's nil slice: an empty list goes out as ``null``."""
    return list(items) or None


class VersionLog:
    """One version-log document: an ObjectID, a version number and, per element id, the state
    and version of its last change (dict order = change order)."""

    __slots__ = ("entries", "id", "version")

    def __init__(self):
        self.id = object_id()
        self.version = 1
        self.entries = {}

    def changes_since(self, version):
        """``[(eid, state)]`` changed after ``version``, oldest first."""
        changed = []
        for eid, (state, at) in reversed(self.entries.items()):
            if at <= version:
                break
            changed.append((eid, state))
        changed.reverse()
        return changed


@dataclass
class Caller:
    user_id: str
    is_admin: bool


class OpenIMState:
    """The server's data, keyed like OpenIM's Mongo collections, with a version log per group and
    per owner. Keyword arguments use the REST JSON field names; times are milliseconds except
    friend and black ``createTime`` (seconds, as the REST API returns them).

    Every method takes ``self.lock``; endpoint handlers hold it while they read.
    """

    def __init__(self, admin_user_ids=(), admin_level=3):
        self.lock = threading.RLock()
        self.users = {}
        self.groups = {}
        self.members = {}
        self.joined = defaultdict(set)
        self.friends = {}
        self.friend_of = defaultdict(set)
        self.blacks = {}
        self.blocked_by = defaultdict(set)
        self.online = {}
        self.logs = {}
        self._seq = itertools.count(1)
        self._cache = {}
        for user_id in admin_user_ids:
            self.add_user(user_id, nickname=user_id, appMangerLevel=admin_level)

    # -- users ----------------------------------------------------------------------------------

    def add_user(self, user_id, **fields):
        with self.lock:
            if user_id in self.users:
                raise ValueError(f"user {user_id} exists")
            user = _fields(USER_FIELDS, fields, "user")
            user["userID"] = user_id
            if user["createTime"] is None:
                user["createTime"] = now_ms()
            user["_seq"] = next(self._seq)
            self.users[user_id] = user
            self._forget("users")

    def update_user(self, user_id, **fields):
        """Change a profile; a new nickname or faceURL bumps the version logs of the groups where
        the member shows the profile (own nickname or faceURL empty) and of the user's friends."""
        with self.lock:
            user = self.users[user_id]
            before = (user["nickname"], user["faceURL"])
            user.update(_fields({k: user[k] for k in USER_FIELDS}, fields, "user"))
            self._forget("users")
            if (user["nickname"], user["faceURL"]) == before:
                return
            for group_id in self.joined.get(user_id, ()):
                member = self.members[group_id][user_id]
                if not (member["nickname"] and member["faceURL"]):
                    self._log_change(("group", group_id), [user_id], UPDATE)
            for friend_id in self.friends.get(user_id, {}):
                self._log_change(("friend", friend_id), [user_id], UPDATE)

    def delete_user(self, user_id):
        """Remove a user with their memberships, friend edges (both directions) and blacks."""
        with self.lock:
            self.users.pop(user_id)
            self._forget("users")
            for group_id in list(self.joined.get(user_id, ())):
                self.remove_member(group_id, user_id)
            for friend_id in list(self.friends.get(user_id, {})):
                self.remove_friend(user_id, friend_id)
            for owner in list(self.friend_of.get(user_id, ())):
                self.remove_friend(owner, user_id)
            for blocked in list(self.blacks.get(user_id, {})):
                self.remove_black(user_id, blocked)
            for owner in list(self.blocked_by.get(user_id, ())):
                self.remove_black(owner, user_id)
            for index in (
                self.friends,
                self.blacks,
                self.friend_of,
                self.blocked_by,
                self.joined,
                self.online,
            ):
                index.pop(user_id, None)

    def set_online(self, user_id, platform_ids):
        with self.lock:
            self.online[user_id] = [int(p) for p in platform_ids]
            if not self.online[user_id]:
                del self.online[user_id]

    def set_offline(self, user_id):
        with self.lock:
            self.online.pop(user_id, None)

    # -- groups ---------------------------------------------------------------------------------

    def add_group(self, group_id, ownerUserID, members=(), **fields):
        """Create a group; the owner becomes a member with roleLevel 100. ``members`` are user ids
        or dicts with ``userID`` and member fields. All initial members share one version."""
        with self.lock:
            if group_id in self.groups:
                raise ValueError(f"group {group_id} exists")
            group = _fields(GROUP_FIELDS, fields, "group")
            group["groupID"] = group_id
            group["createTime"] = (
                group["createTime"] if group["createTime"] is not None else now_ms()
            )
            if group["creatorUserID"] is None:
                group["creatorUserID"] = ownerUserID
            group["_seq"] = next(self._seq)
            self.groups[group_id] = group
            self.members[group_id] = {}
            self._forget("groups")
            joined = [self._put_member(group_id, ownerUserID, {"roleLevel": ROLE_OWNER})]
            for member in members:
                spec = {"userID": member} if isinstance(member, str) else dict(member)
                user_id = spec.pop("userID")
                if user_id != ownerUserID:
                    joined.append(self._put_member(group_id, user_id, spec))
            self._log_change(("group", group_id), joined, INSERT)

    def update_group(self, group_id, **fields):
        """Change group fields (a group-profile change in the member log). ``ownerUserID``
        transfers ownership: the old owner becomes a plain member."""
        with self.lock:
            group = self.groups[group_id]
            new_owner = fields.pop("ownerUserID", None)
            group.update(_fields({k: group[k] for k in GROUP_FIELDS}, fields, "group"))
            self._forget("groups")
            if new_owner is not None:
                old_owner = self.owner_of(group_id)
                if old_owner and old_owner != new_owner:
                    self.update_member(group_id, old_owner, roleLevel=ROLE_MEMBER)
                self.update_member(group_id, new_owner, roleLevel=ROLE_OWNER)
            self._log_change(("group", group_id), [GROUP_CHANGE], UPDATE)

    def dismiss_group(self, group_id, delete_members=False):
        """Status 2; members stay unless ``delete_members`` (OpenIM's ``deleteMember``)."""
        with self.lock:
            self.groups[group_id]["status"] = GROUP_DISMISSED
            self._forget("groups")
            if delete_members:
                removed = list(self.members[group_id])
                for user_id in removed:
                    self._drop_member(group_id, user_id)
                if removed:
                    self._log_change(("group", group_id), removed, DELETE)
            self._log_change(("group", group_id), [GROUP_CHANGE], UPDATE)

    def add_member(self, group_id, user_id, **fields):
        with self.lock:
            self._put_member(group_id, user_id, fields)
            self._log_change(("group", group_id), [user_id], INSERT)

    def update_member(self, group_id, user_id, **fields):
        with self.lock:
            member = self.members[group_id][user_id]
            member.update(_fields({k: member[k] for k in MEMBER_FIELDS}, fields, "member"))
            if "roleLevel" in fields:
                self._forget(("members", group_id))
            self._log_change(("group", group_id), [user_id], UPDATE)

    def remove_member(self, group_id, user_id):
        with self.lock:
            self._drop_member(group_id, user_id)
            self._log_change(("group", group_id), [user_id], DELETE)

    def _put_member(self, group_id, user_id, fields):
        members = self.members[group_id]
        if user_id in members:
            raise ValueError(f"{user_id} is already a member of {group_id}")
        member = _fields(MEMBER_FIELDS, fields, "member")
        member["groupID"], member["userID"] = group_id, user_id
        if member["joinTime"] is None:
            member["joinTime"] = now_ms()
        member["_seq"] = next(self._seq)
        members[user_id] = member
        self.joined[user_id].add(group_id)
        self._forget(("members", group_id))
        return user_id

    def _drop_member(self, group_id, user_id):
        del self.members[group_id][user_id]
        self.joined[user_id].discard(group_id)
        self._forget(("members", group_id))

    # -- friends and blacks ---------------------------------------------------------------------

    def add_friend(self, owner, friend, **fields):
        """One directed edge ``owner → friend``; ``createTime`` in seconds."""
        with self.lock:
            self._put_friend(owner, friend, fields)
            self._log_change(("friend", owner), [friend], INSERT)

    def add_friendship(self, a, b, **fields):
        """Both edges ``a → b`` and ``b → a``."""
        with self.lock:
            self.add_friend(a, b, **fields)
            self.add_friend(b, a, **fields)

    def update_friend(self, owner, friend, **fields):
        with self.lock:
            edge = self.friends[owner][friend]
            edge.update(_fields({k: edge[k] for k in FRIEND_FIELDS}, fields, "friend"))
            self._forget(("friends", owner))
            self._log_change(("friend", owner), [friend], UPDATE)

    def remove_friend(self, owner, friend):
        with self.lock:
            del self.friends[owner][friend]
            self.friend_of[friend].discard(owner)
            self._forget(("friends", owner))
            self._log_change(("friend", owner), [friend], DELETE)

    def add_black(self, owner, blocked, **fields):
        """``owner`` blocks ``blocked``; ``createTime`` in seconds."""
        with self.lock:
            self._put_black(owner, blocked, fields)
            self._log_change(("black", owner), [blocked], INSERT)

    def remove_black(self, owner, blocked):
        with self.lock:
            del self.blacks[owner][blocked]
            self.blocked_by[blocked].discard(owner)
            self._log_change(("black", owner), [blocked], DELETE)

    def _put_friend(self, owner, friend, fields):
        edges = self.friends.setdefault(owner, {})
        if friend in edges:
            raise ValueError(f"{friend} is already a friend of {owner}")
        edge = _fields(FRIEND_FIELDS, fields, "friend")
        edge["ownerUserID"], edge["friendUserID"] = owner, friend
        if edge["createTime"] is None:
            edge["createTime"] = int(time.time())
        edge["_seq"] = next(self._seq)
        edges[friend] = edge
        self.friend_of[friend].add(owner)
        self._forget(("friends", owner))

    def _put_black(self, owner, blocked, fields):
        edges = self.blacks.setdefault(owner, {})
        if blocked in edges:
            raise ValueError(f"{owner} already blocks {blocked}")
        edge = _fields(BLACK_FIELDS, fields, "black")
        edge["ownerUserID"], edge["blockUserID"] = owner, blocked
        if edge["createTime"] is None:
            edge["createTime"] = int(time.time())
        edge["_seq"] = next(self._seq)
        edges[blocked] = edge
        self.blocked_by[blocked].add(owner)

    # -- version logs ---------------------------------------------------------------------------

    def _log_change(self, key, eids, state):
        """``IncrVersion``: a new document starts at version 1, later changes add one."""
        log = self.logs.get(key)
        if log is None:
            log = self.logs[key] = VersionLog()
        else:
            log.version += 1
        for eid in eids:
            log.entries.pop(eid, None)
            log.entries[eid] = (state, log.version)

    def version_log(self, key):
        """The log for ``("group", id)``, ``("friend", owner)`` or ``("black", owner)``; created
        (version 1, no changes) on first read, as the server does."""
        with self.lock:
            log = self.logs.get(key)
            if log is None:
                log = self.logs[key] = VersionLog()
            return log

    def truncate_log(self, group_id=None, owner=None):
        """Drop version logs (the server's clean-up of old logs): the next incremental call
        answers ``full: true`` with a new versionID. No arguments: every log."""
        with self.lock:
            if group_id is None and owner is None:
                self.logs.clear()
                return
            if group_id is not None:
                self.logs.pop(("group", group_id), None)
            if owner is not None:
                self.logs.pop(("friend", owner), None)
                self.logs.pop(("black", owner), None)

    # -- ordered views (cached until the next change) -------------------------------------------

    def _forget(self, key):
        """Drop cached views: ``"users"``, ``"groups"`` or ``("members"|"friends", id)``."""
        keys = {
            "users": ("users", "ordinary_users"),
            "groups": (("groups", True), ("groups", False)),
        }
        for cached in keys.get(key, (key,)) if isinstance(key, str) else (key,):
            self._cache.pop(cached, None)

    def _cached(self, key, build):
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = build()
        return value

    def user_ids(self):
        """Every user id in insertion (Mongo natural) order."""
        return self._cached("users", lambda: list(self.users))

    def ordinary_user_ids(self):
        """Users with appMangerLevel 0 or 1 (what ``get_users`` lists)."""
        return self._cached(
            "ordinary_users",
            lambda: [u for u, user in self.users.items() if user["appMangerLevel"] in (0, 1)],
        )

    def listed_group_ids(self, newest_first):
        """Groups that are not dismissed; by createTime descending (v3.8.3+) or natural order."""

        def build():
            ids = [g for g, group in self.groups.items() if group["status"] != GROUP_DISMISSED]
            if newest_first:
                ids.sort(key=lambda g: (-self.groups[g]["createTime"], self.groups[g]["_seq"]))
            return ids

        return self._cached(("groups", newest_first), build)

    def member_ids(self, group_id):
        """Member ids by roleLevel descending, then join order (``memberSort``)."""

        def build():
            members = self.members.get(group_id, {})
            return sorted(members, key=lambda u: (-members[u]["roleLevel"], members[u]["_seq"]))

        return self._cached(("members", group_id), build)

    def friend_ids(self, owner):
        """Friend ids by isPinned descending, then ``_id`` (insertion) order."""

        def build():
            edges = self.friends.get(owner, {})
            return sorted(edges, key=lambda f: (not edges[f]["isPinned"], edges[f]["_seq"]))

        return self._cached(("friends", owner), build)

    def owner_of(self, group_id):
        ids = self.member_ids(group_id)
        members = self.members.get(group_id, {})
        if ids and members[ids[0]]["roleLevel"] == ROLE_OWNER:
            return ids[0]
        return ""

    # -- REST shapes ----------------------------------------------------------------------------

    def user_info(self, user_id):
        user = self.users[user_id]
        return {k: user[k] for k in ("userID", *USER_FIELDS)}

    def group_info(self, group_id):
        group = self.groups[group_id]
        info = {k: group[k] for k in ("groupID", *GROUP_FIELDS)}
        info["ownerUserID"] = self.owner_of(group_id)
        info["memberCount"] = len(self.members.get(group_id, {}))
        return info

    def member_info(self, group_id, user_id):
        """``GroupMemberFullInfo``; an empty nickname or faceURL shows the user's profile value
        (``PopulateGroupMember``)."""
        member = self.members[group_id][user_id]
        info = {k: member[k] for k in ("groupID", "userID", *MEMBER_FIELDS)}
        info["appMangerLevel"] = 0
        user = self.users.get(user_id)
        if user is not None:
            info["nickname"] = info["nickname"] or user["nickname"]
            info["faceURL"] = info["faceURL"] or user["faceURL"]
        return info

    def _public_user(self, user_id):
        user = self.users.get(user_id) or {"nickname": "", "faceURL": "", "ex": ""}
        return {
            "userID": user_id,
            "nickname": user["nickname"],
            "faceURL": user["faceURL"],
            "ex": user["ex"],
        }

    def friend_info(self, owner, friend):
        """``FriendInfo``: ``createTime`` in seconds, ``friendUser`` with the profile fields."""
        edge = self.friends[owner][friend]
        friend_user = {**self._public_user(friend), "createTime": 0, "appMangerLevel": 0}
        friend_user["globalRecvMsgOpt"] = 0
        return {
            "ownerUserID": owner,
            "remark": edge["remark"],
            "createTime": edge["createTime"],
            "friendUser": friend_user,
            "addSource": edge["addSource"],
            "operatorUserID": edge["operatorUserID"],
            "ex": edge["ex"],
            "isPinned": edge["isPinned"],
        }

    def black_info(self, owner, blocked, create_time_ms=False):
        """``BlackInfo``; ``createTime`` in seconds (``get_specified_blacks``: milliseconds)."""
        edge = self.blacks[owner][blocked]
        created = edge["createTime"] * 1000 if create_time_ms else edge["createTime"]
        return {
            "ownerUserID": owner,
            "createTime": created,
            "blackUserInfo": self._public_user(blocked) if blocked in self.users else None,
            "addSource": edge["addSource"],
            "operatorUserID": edge["operatorUserID"],
            "ex": edge["ex"],
        }

    # -- bulk data ------------------------------------------------------------------------------

    def populate(self, users=0, groups=0, members=0, friends=0, blacks=0, seed=0):
        """Add a deterministic data set: ``users`` users, ``groups`` groups whose sizes (owners
        included, ``members`` rows in all) follow a skewed spread, ``friends`` directed friend
        edges (mostly mutual pairs) and ``blacks`` directed blocks. Ids: ``u00001``, ``g0001``."""
        rng = random.Random(seed)
        with self.lock:
            base = now_ms() - 86_400_000
            user_ids = [f"u{i:05d}" for i in range(1, users + 1)]
            for i, user_id in enumerate(user_ids):
                self.add_user(
                    user_id,
                    nickname=f"User {i + 1}",
                    faceURL=f"https://example.invalid/face/{i + 1}.png" if i % 3 == 0 else "",
                    createTime=base + i,
                )
            if groups and user_ids:
                self._populate_groups(rng, user_ids, groups, members, base)
            self._populate_edges(rng, user_ids, friends, blacks)

    def _populate_groups(self, rng, user_ids, groups, members, base):
        extra = max(members - groups, 0)
        weights = [1 / (i + 1) ** 0.7 for i in range(groups)]
        sizes = [1] * groups
        for index in rng.choices(range(groups), weights=weights, k=extra):
            sizes[index] += 1
        for i, size in enumerate(sizes):
            group_id = f"g{i + 1:04d}"
            chosen = rng.sample(user_ids, min(size, len(user_ids)))
            specs = []
            for j, user_id in enumerate(chosen[1:]):
                spec = {"userID": user_id, "joinTime": base + i * 1000 + j}
                if rng.random() < 0.3:
                    spec["nickname"] = f"Card {j} in {group_id}"
                if j % 10 == 0:
                    spec["roleLevel"] = ROLE_ADMIN
                specs.append(spec)
            self.add_group(
                group_id,
                chosen[0],
                members=specs,
                groupName=f"Group {i + 1}",
                createTime=base + i * 1000,
            )

    def _populate_edges(self, rng, user_ids, friends, blacks):
        if len(user_ids) < 2:
            return
        now = int(time.time())
        made = 0
        while made < friends:
            a, b = rng.sample(user_ids, 2)
            if b in self.friends.get(a, ()):
                continue
            self.add_friend(a, b, createTime=now - made)
            made += 1
            if made < friends and a not in self.friends.get(b, ()):
                self.add_friend(b, a, createTime=now - made)
                made += 1
        made = 0
        while made < blacks:
            a, b = rng.sample(user_ids, 2)
            if b not in self.blacks.get(a, ()):
                self.add_black(a, b, createTime=now - made)
                made += 1


@dataclass
class Token:
    user_id: str
    platform_id: int
    expires_at: float
    expired: bool = False
    superseded_at: float = None


class FakeOpenIMServer(FakeServer):
    """``FakeOpenIMServer(version="3.8.3", secret="openIM123", admin_user_ids=("imAdmin",
    "openim-sync"))``; the admin users exist from the start (appMangerLevel 3, on main 2).

    ``working_incremental_blacks=True`` serves ``/friend/get_incremental_blacks`` from the black
    version log instead of what the vendor does (see ``FEATURES``).
    """

    side_calls = ("fail_next", "reset_counts", "expire_tokens")

    def __init__(
        self,
        version="3.8.3",
        secret="openIM123",
        admin_user_ids=("imAdmin", "openim-sync"),
        token_ttl_seconds=DEFAULT_TOKEN_TTL,
        working_incremental_blacks=False,
    ):
        super().__init__()
        if version not in FEATURES:
            raise ValueError(f"unknown OpenIM version {version!r}; one of {', '.join(FEATURES)}")
        self.version, self.secret = version, secret
        self.admin_user_ids = tuple(admin_user_ids)
        self.token_ttl_seconds = token_ttl_seconds
        self.features = dict(FEATURES[version])
        if working_incremental_blacks and self.features["incremental"]:
            self.features["blacks"] = "working"
        self.gzip_responses = self.features["gzip"]
        self.state = OpenIMState(self.admin_user_ids, admin_level=2 if version == "main" else 3)
        self._tokens = {}
        self._tokens_lock = threading.Lock()
        self.routes = self._build_routes()

    # -- tokens ---------------------------------------------------------------------------------

    def expire_tokens(self):
        """Every token issued so far answers 1501 TokenExpired from now on."""
        with self._tokens_lock:
            for token in self._tokens.values():
                token.expired = True

    def _issue_token(self, user_id, platform_id):
        now = time.time()
        with self._tokens_lock:
            if self.version == "main":
                for token in self._tokens.values():
                    if token.user_id == user_id and token.superseded_at is None:
                        token.superseded_at = now
            value = secrets.token_urlsafe(32)
            self._tokens[value] = Token(user_id, platform_id, now + self.token_ttl_seconds)
        return {"token": value, "expireTimeSeconds": self.token_ttl_seconds}

    def _caller(self, request):
        value = request.header("token")
        if not value:
            raise args_error("header must have token")
        with self._tokens_lock:
            token = self._tokens.get(value)
        now = time.time()
        if token is None:
            raise OpenIMError(1507, "TokenNotExistError")
        if token.expired or now >= token.expires_at:
            raise OpenIMError(1501, "TokenExpiredError")
        if (
            token.superseded_at is not None
            and now >= token.superseded_at + SUPERSEDED_TOKEN_SECONDS
        ):
            raise OpenIMError(1507, "TokenNotExistError")
        return Caller(token.user_id, token.user_id in self.admin_user_ids)

    # -- dispatch -------------------------------------------------------------------------------

    def _build_routes(self):
        f = self.features
        routes = {
            "/user/get_all_users_uid": self.get_all_users_uid,
            "/user/get_users": self.get_users,
            "/user/get_users_info": self.get_users_info,
            "/user/account_check": self.account_check,
            "/user/get_users_online_status": self.get_users_online_status,
            "/user/get_users_status": self.get_users_status,
            "/group/get_groups": self.get_groups,
            "/group/get_groups_info": self.get_groups_info,
            "/group/get_group_member_list": self.get_group_member_list,
            "/group/get_group_members_info": self.get_group_members_info,
            "/group/get_group_member_user_id": self.get_group_member_user_id,
            "/friend/get_friend_list": self.get_friend_list,
            "/friend/get_designated_friends": self.get_designated_friends,
            "/friend/get_friend_id": self.get_friend_id,
            "/friend/get_black_list": self.get_black_list,
        }
        if f["token"] == "admin_token":
            routes["/auth/get_admin_token"] = self.get_admin_token
        else:
            routes["/auth/user_token"] = self.user_token
        if f["incremental"]:
            routes["/group/get_incremental_group_members"] = self.get_incremental_group_members
            routes["/group/get_incremental_group_members_batch"] = (
                self.get_incremental_members_batch
            )
            routes["/group/get_full_group_member_user_ids"] = self.get_full_group_member_user_ids
            routes["/friend/get_incremental_friends"] = self.get_incremental_friends
            routes["/friend/get_full_friend_user_ids"] = self.get_full_friend_user_ids
            routes["/friend/get_incremental_blacks"] = self.get_incremental_blacks
        if f["specified_blacks"]:
            routes["/friend/get_specified_blacks"] = self.get_specified_blacks
        return routes

    def _needs_token(self, path, known):
        """v3.8.0+: gin middleware on every POST but the whitelist (prefix match); before: only
        the routes that carry the ``ParseToken`` handler."""
        whitelist = ("/auth/get_admin_token", "/auth/parse_token")
        if self.features["token"] == "user_token":
            whitelist = ("/user/user_register", "/auth/user_token", "/auth/parse_token")
        if any(path.startswith(prefix) for prefix in whitelist):
            return False
        return self.features["global_token"] or known

    def handle(self, request):
        if request.method != "POST":
            return self._not_found()
        route = self.routes.get(request.path)
        try:
            if not request.header("operationID"):
                raise args_error("header must have operationID")
            caller = None
            if self._needs_token(request.path, route is not None):
                caller = self._caller(request)
            if route is None:
                return self._not_found()
            body = _parse_body(request.body)
            with self.state.lock:
                data = route(caller, body)
        except OpenIMError as exc:
            return Reply.json(_envelope(exc.code, exc.msg, exc.detail or exc.msg))
        return Reply.json(_envelope(0, "", "", data))

    def _not_found(self):
        return Reply.text("404 page not found", 404)

    def failure_reply(self, request, status):
        """500: gin's panic recovery (empty body); 429: main's BBR limiter."""
        if status == 429:
            body = _envelope(429, "too many requests, please try again later", "")
            headers = {
                "Retry-After": "1",
                "X-RateLimit-Policy": "BBR",
                "X-RateLimit-Remaining": "0",
            }
            return Reply.json(body, 429, headers)
        return Reply(status, b"")

    # -- auth -----------------------------------------------------------------------------------

    def get_admin_token(self, caller, body):
        """v3.8.1+: the secret, an admin user id that exists as a user; platform 10."""
        if _str(body, "secret") != self.secret:
            raise no_permission("secret invalid")
        user_id = _str(body, "userID")
        if user_id not in self.admin_user_ids:
            raise args_error("userID is error.")
        self._check_user(user_id)
        return self._issue_token(user_id, ADMIN_PLATFORM_ID)

    def user_token(self, caller, body):
        """Up to v3.8.0: the secret and any existing user, on the platform asked for."""
        if _str(body, "secret") != self.secret:
            raise no_permission("secret invalid")
        user_id = _str(body, "userID")
        self._check_user(user_id)
        return self._issue_token(user_id, _int(body, "platformID"))

    def _check_user(self, user_id):
        if user_id not in self.state.users:
            raise OpenIMError(1101, "UserIDNotFoundError", "user not found")

    # -- users ----------------------------------------------------------------------------------

    def get_all_users_uid(self, caller, body):
        """All users, admins and robots included, in natural order."""
        ids = self.state.user_ids()
        return {"total": len(ids), "userIDs": _null(_page(ids, _pagination(body)))}

    def get_users(self, caller, body):
        """Users with appMangerLevel 0/1 only; ``userID``/``nickName`` are case-insensitive
        regexes (either may match)."""
        page = _pagination(body)
        user_id, nickname = _str(body, "userID"), _str(body, "nickName")
        ids = self.state.ordinary_user_ids()
        if user_id or nickname:
            ids = [u for u in ids if _matches(self.state.users[u], user_id, nickname)]
        users = [self.state.user_info(u) for u in _page(ids, page)]
        return {"total": len(ids), "users": _null(users)}

    def get_users_info(self, caller, body):
        """Known users in natural order; unknown ids are absent."""
        ids = _strs(body, "userIDs", required="UserIDs is empty")
        found = sorted({u for u in ids if u in self.state.users}, key=self._user_seq)
        return {"usersInfo": _null(self.state.user_info(u) for u in found)}

    def account_check(self, caller, body):
        ids = _strs(body, "checkUserIDs", required="CheckUserIDs is empty")
        if len(set(ids)) != len(ids):
            raise args_error("userID repeated")
        _require(caller.is_admin, "only app manager")
        results = [{"userID": u, "accountStatus": int(u in self.state.users)} for u in ids]
        return {"results": _null(results)}

    def get_users_online_status(self, caller, body):
        """The gateway fan-out: an array, one entry per requested id (unknown ids offline);
        offline entries have ``detailPlatformStatus: null``. Admin only."""
        _require(caller.is_admin, "only app manager")
        result = []
        for user_id in _strs(body, "userIDs") or []:
            platforms = self.state.online.get(user_id)
            details = None
            if platforms:
                details = [_connection(user_id, p) for p in platforms]
            result.append(
                {"userID": user_id, "status": int(bool(platforms)), "detailPlatformStatus": details}
            )
        return _null(result)

    def get_users_status(self, caller, body):
        """The online cache: ``{userID, status, platformIDs}`` per requested id."""
        ids = _strs(body, "userIDs")
        if not ids:
            raise args_error("UserIDs is empty")
        statuses = []
        for user_id in ids:
            platforms = self.state.online.get(user_id)
            statuses.append(
                {
                    "userID": user_id,
                    "status": int(bool(platforms)),
                    "platformIDs": _null(platforms or ()),
                }
            )
        return {"statusList": statuses}

    def _user_seq(self, user_id):
        return self.state.users[user_id]["_seq"]

    # -- groups ---------------------------------------------------------------------------------

    def get_groups(self, caller, body):
        """Groups not dismissed (``groupName`` is a regex); with ``groupID``: that group
        whatever its status. ``groupOwnerUserName`` is the owner member's own nickname."""
        page = _pagination(body)
        group_id, name = _str(body, "groupID"), _str(body, "groupName")
        if group_id:
            ids = [group_id] if group_id in self.state.groups else []
            total, shown = len(ids), ids
        else:
            ids = self.state.listed_group_ids(newest_first=self.version in ("3.8.3", "main"))
            if name:
                pattern = _regex(name)
                ids = [g for g in ids if pattern.search(self.state.groups[g]["groupName"])]
            total, shown = len(ids), _page(ids, page)
        groups = []
        for gid in shown:
            owner = self.state.owner_of(gid)
            owner_name = self.state.members[gid][owner]["nickname"] if owner else ""
            groups.append(
                {
                    "groupInfo": self.state.group_info(gid),
                    "groupOwnerUserName": owner_name,
                    "groupOwnerUserID": owner,
                }
            )
        return {"total": total, "groups": _null(groups)}

    def get_groups_info(self, caller, body):
        """Dismissed groups included (status 2); unknown ids absent."""
        ids = _strs(body, "groupIDs")
        if not ids:
            raise args_error("groupID is empty")
        found = sorted(
            {g for g in ids if g in self.state.groups}, key=lambda g: self.state.groups[g]["_seq"]
        )
        return {"groupInfos": _null(self.state.group_info(g) for g in found)}

    def get_group_member_list(self, caller, body):
        """Members by roleLevel desc then join order, paged in memory; ``keyword`` searches the
        members' own nicknames. ``filter`` is checked (0-5) but not used."""
        group_id = _str(body, "groupID")
        if not group_id:
            raise args_error("groupID is empty")
        page = _pagination(body)
        if not 0 <= _int(body, "filter") <= 5:
            raise args_error("filter is invalid")
        self._require_member(caller, group_id)
        ids = self.state.member_ids(group_id)
        keyword = _str(body, "keyword")
        if keyword:
            pattern = _regex(keyword)
            members = self.state.members[group_id]
            ids = [u for u in ids if pattern.search(members[u]["nickname"])]
        shown = [self.state.member_info(group_id, u) for u in _page(ids, page)]
        return {"total": len(ids), "members": _null(shown)}

    def get_group_members_info(self, caller, body):
        group_id = _str(body, "groupID")
        if not group_id:
            raise args_error("groupID is empty")
        ids = _strs(body, "userIDs")
        if not ids:
            raise args_error("userIDs empty")
        self._require_member(caller, group_id)
        return {"members": _null(self._members_info(group_id, ids))}

    def get_group_member_user_id(self, caller, body):
        group_id = _str(body, "groupID")
        if not group_id:
            raise args_error("GroupID is empty")
        ids = self.state.member_ids(group_id)
        _require(
            caller.is_admin or caller.user_id in self.state.members.get(group_id, {}),
            "no permission",
        )
        return {"userIDs": _null(ids)}

    def get_full_group_member_user_ids(self, caller, body):
        group_id = _str(body, "groupID")
        ids = self.state.member_ids(group_id)
        _require(
            caller.is_admin or caller.user_id in self.state.members.get(group_id, {}),
            "no permission",
        )
        log = self.state.version_log(("group", group_id))
        digest = id_hash(ids)
        equal = _int(body, "idHash") == digest
        return {
            "version": log.version,
            "versionID": log.id,
            "equal": equal,
            "userIDs": None if equal else _null(ids),
        }

    def get_incremental_group_members(self, caller, body):
        """Deltas since ``(versionID, version)``; 1004 for an unknown group, 1204 for a dismissed
        one; ``group`` is filled when the answer is full or anything changed."""
        return self._member_increment(caller, body)

    def get_incremental_members_batch(self, caller, body):
        """Several groups; dismissed groups are left out and it stops once 500 changes have been
        collected (the group that crossed the limit is included). ``respList`` is omitted when
        empty (a map field)."""
        answers, changes = {}, 0
        for item in _list(body, "reqList"):
            item = _lower(item) if isinstance(item, dict) else {}
            group_id = _str(item, "groupID")
            if group_id in answers:
                continue
            try:
                answer = self._member_increment(caller, item)
            except OpenIMError as exc:
                if exc.code == 1204:
                    continue
                raise
            answers[group_id] = answer
            changes += (
                len(answer["insert"] or ())
                + len(answer["update"] or ())
                + len(answer["delete"] or ())
            )
            if changes >= BATCH_SYNC_LIMIT:
                break
        return {"respList": answers} if answers else {}

    def _member_increment(self, caller, body):
        group_id = _str(body, "groupID")
        self._require_member(caller, group_id)
        group = self.state.groups.get(group_id)
        if group is None:
            raise OpenIMError(1004, "RecordNotFoundError", "record not found")
        if group["status"] == GROUP_DISMISSED:
            raise OpenIMError(1204, "DismissedAlreadyError")
        log = self.state.version_log(("group", group_id))
        answer, changes = _increment(log, body)
        group_changed = any(eid == GROUP_CHANGE for eid, _ in changes)
        changes = [(eid, state) for eid, state in changes if eid != GROUP_CHANGE]
        self._fill(answer, changes, lambda ids: self._members_info(group_id, ids))
        answer["group"] = None
        if answer["full"] or group_changed or changes:
            answer["group"] = self.state.group_info(group_id)
        answer["sortVersion"] = 0
        return answer

    def _members_info(self, group_id, user_ids):
        members = self.state.members.get(group_id, {})
        found = sorted({u for u in user_ids if u in members}, key=lambda u: members[u]["_seq"])
        return [self.state.member_info(group_id, u) for u in found]

    def _require_member(self, caller, group_id):
        if not caller.is_admin and caller.user_id not in self.state.members.get(group_id, {}):
            raise no_permission("op user not in group")

    # -- friends and blacks ---------------------------------------------------------------------

    def get_friend_list(self, caller, body):
        """Friends by isPinned desc then ``_id``; ``createTime`` in seconds."""
        page = _pagination(body)
        owner = _str(body, "userID")
        if not owner:
            raise args_error("userID is empty")
        self._require_self(caller, owner)
        ids = self.state.friend_ids(owner)
        shown = [self.state.friend_info(owner, f) for f in _page(ids, page)]
        return {"friendsInfo": _null(shown), "total": len(ids)}

    def get_designated_friends(self, caller, body):
        owner = _str(body, "ownerUserID")
        if not owner:
            raise args_error("ownerUserID is empty")
        ids = _strs(body, "friendUserIDs", required="friendUserIDS is empty")
        self._require_self(caller, owner)
        if len(set(ids)) != len(ids):
            raise args_error("friend userID repeated")
        return {"friendsInfo": _null(self._friends_info(owner, ids))}

    def get_friend_id(self, caller, body):
        owner = _str(body, "userID")
        if not owner:
            raise args_error("userID is empty")
        self._require_self(caller, owner)
        return {"friendIDs": _null(self.state.friend_ids(owner))}

    def get_full_friend_user_ids(self, caller, body):
        owner = _str(body, "userID")
        self._require_self(caller, owner)
        ids = self.state.friend_ids(owner)
        log = self.state.version_log(("friend", owner))
        equal = _int(body, "idHash") == id_hash(ids)
        return {
            "version": log.version,
            "versionID": log.id,
            "equal": equal,
            "userIDs": None if equal else _null(ids),
        }

    def get_incremental_friends(self, caller, body):
        owner = _str(body, "userID")
        self._require_self(caller, owner)
        answer, changes = _increment(self.state.version_log(("friend", owner)), body)
        self._fill(answer, changes, lambda ids: self._friends_info(owner, ids))
        answer["sortVersion"] = 0
        return answer

    def get_black_list(self, caller, body):
        """Blocks in natural order; ``createTime`` in seconds."""
        owner = _str(body, "userID")
        if not owner:
            raise args_error("userID is empty")
        page = _pagination(body)
        self._require_self(caller, owner)
        ids = list(self.state.blacks.get(owner, {}))
        shown = [self.state.black_info(owner, b) for b in _page(ids, page)]
        return {"blacks": _null(shown), "total": len(ids)}

    def get_specified_blacks(self, caller, body):
        """v3.8.1+: in request order; here ``createTime`` is in milliseconds."""
        owner = _str(body, "ownerUserID")
        self._require_self(caller, owner)
        ids = _strs(body, "userIDList")
        if not ids:
            raise args_error("userIDList is empty")
        if len(set(ids)) != len(ids):
            raise args_error("userIDList repeated")
        edges = self.state.blacks.get(owner, {})
        blacks = [self.state.black_info(owner, b, create_time_ms=True) for b in ids if b in edges]
        return {"blacks": _null(blacks), "total": len(blacks)}

    def get_incremental_blacks(self, caller, body):
        """What the vendor does: v3.8.0-v3.8.2 the RPC is a stub returning nil (a zero reply
        that looks like "no changes"), v3.8.3 and main do not implement it (errCode 12)."""
        mode = self.features["blacks"]
        if mode == "unimplemented":
            raise OpenIMError(12, "method GetIncrementalBlacks not implemented")
        if mode == "stub":
            return {
                "version": 0,
                "versionID": "",
                "full": False,
                "delete": None,
                "insert": None,
                "update": None,
            }
        owner = _str(body, "userID")
        self._require_self(caller, owner)
        answer, changes = _increment(self.state.version_log(("black", owner)), body)
        edges = self.state.blacks.get(owner, {})
        self._fill(
            answer,
            changes,
            lambda ids: [self.state.black_info(owner, b) for b in ids if b in edges],
        )
        return answer

    def _friends_info(self, owner, friend_ids):
        edges = self.state.friends.get(owner, {})
        found = sorted({f for f in friend_ids if f in edges}, key=lambda f: edges[f]["_seq"])
        return [self.state.friend_info(owner, f) for f in found]

    def _require_self(self, caller, user_id):
        if not caller.is_admin and caller.user_id != user_id:
            raise no_permission("no permission")

    @staticmethod
    def _fill(answer, changes, find):
        inserted = [eid for eid, state in changes if state == INSERT]
        updated = [eid for eid, state in changes if state == UPDATE]
        answer["delete"] = _null(eid for eid, state in changes if state == DELETE)
        answer["insert"] = _null(find(inserted)) if inserted else None
        answer["update"] = _null(find(updated)) if updated else None


def _increment(log, body):
    """``incrversion.Option.Build``: ``(answer, changes)``; full when the stored version is not a
    valid ObjectID + version > 0, the id differs, the version is ahead, or more than 200
    elements changed."""
    version_id, version = _str(body, "versionID"), _int(body, "version")
    answer = {"version": log.version, "versionID": log.id, "full": True}
    valid = (
        bool(re.fullmatch(r"[0-9a-f]{24}", version_id)) and version_id != "0" * 24 and version > 0
    )
    if not valid or version_id != log.id or version > log.version:
        return answer, []
    answer["full"] = False
    if version == log.version:
        return answer, []
    changes = log.changes_since(version)
    if len(changes) > SYNC_LIMIT:
        answer["full"] = True
        return answer, []
    return answer, changes


# -- request helpers ------------------------------------------------------------------------------


def _envelope(code, msg, detail, data=None):
    reply = {"errCode": code, "errMsg": msg, "errDlt": detail}
    if data is not None:
        reply["data"] = data
    return reply


def _parse_body(raw):
    """Go's ``encoding/json`` into the request struct: field names match case-insensitively."""
    try:
        body = json.loads(raw or b"")
    except ValueError as exc:
        raise OpenIMError(1001, str(exc) or "unexpected end of JSON input") from None
    if not isinstance(body, dict):
        raise OpenIMError(1001, "json: cannot unmarshal into Go value of type struct")
    return _lower(body)


def _lower(mapping):
    return {str(key).lower(): value for key, value in mapping.items()}


def _str(body, name):
    value = body.get(name.lower())
    if value is None:
        return ""
    if not isinstance(value, str):
        raise args_error(f"json: cannot unmarshal into Go struct field .{name} of type string")
    return value


def _int(body, name):
    value = body.get(name.lower())
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise args_error(f"json: cannot unmarshal into Go struct field .{name} of type int")
    return value


def _list(body, name):
    value = body.get(name.lower())
    if value is None:
        return []
    if not isinstance(value, list):
        raise args_error(f"json: cannot unmarshal into Go struct field .{name} of type slice")
    return value


def _strs(body, name, required=None):
    """A list of strings; an empty list is nil after the gRPC hop, so ``required`` rejects both."""
    values = _list(body, name)
    if any(not isinstance(v, str) for v in values):
        raise args_error(f"json: cannot unmarshal into Go struct field .{name} of type string")
    if required and not values:
        raise args_error(required)
    return values


def _pagination(body):
    """``(pageNumber, showNumber)``; no pagination or ``pageNumber < 1`` → 1001."""
    pagination = body.get("pagination")
    if not isinstance(pagination, dict):
        raise args_error("pagination is empty")
    pagination = _lower(pagination)
    number = _int(pagination, "pageNumber")
    if number < 1:
        raise args_error("pageNumber is invalid")
    return number, _int(pagination, "showNumber")


def _page(items, pagination):
    number, size = pagination
    if size <= 0:
        return []
    start = (number - 1) * size
    return items[start : start + size]


def _require(allowed, detail):
    if not allowed:
        raise no_permission(detail)


def _regex(pattern, flags=0):
    try:
        return re.compile(pattern, flags)
    except re.error:
        return re.compile(re.escape(pattern), flags)


def _matches(user, user_id, nickname):
    return bool(
        (user_id and _regex(user_id, re.I).search(user["userID"]))
        or (nickname and _regex(nickname, re.I).search(user["nickname"]))
    )


def _connection(user_id, platform_id):
    digest = hashlib.sha1(f"{user_id}/{platform_id}".encode()).hexdigest()
    return {
        "platformID": platform_id,
        "connID": digest[:16],
        "isBackground": False,
        "token": f"fake-login-token-{digest[16:32]}",
    }


def main(argv=None):
    def add_arguments(parser):
        parser.add_argument("--version", default="3.8.3", choices=list(FEATURES))
        parser.add_argument("--secret", default="openIM123")
        parser.add_argument("--admin", action="append", help="admin user id (repeatable)")
        parser.add_argument(
            "--working-incremental-blacks",
            action="store_true",
            help="serve get_incremental_blacks from a version log, as the API is documented "
            "(no release implements it)",
        )

    def build(args):
        admins = tuple(args.admin or ("imAdmin", "openim-sync"))
        return FakeOpenIMServer(
            version=args.version,
            secret=args.secret,
            admin_user_ids=admins,
            working_incremental_blacks=args.working_incremental_blacks,
        )

    return run_cli(
        "python -m openim_sync.testing.fake_openim",
        "A fake OpenIM Server REST API for tests and benchmarks.",
        build,
        argv,
        add_arguments,
    )


if __name__ == "__main__":
    sys.exit(main())
