"""A fake Tencent Cloud Chat (TIM) REST API for tests and the benchmark.

Calls are ``POST /v4/<service>/<command>?sdkappid=&identifier=&usersig=&random=&contenttype=json``
with a JSON body (``{}`` at least). The fake checks the query like Tencent does: the SDKAppID
(60012 missing, 60006 wrong), the UserSig (decoded with Tencent's base64 alphabet, zlib and
JSON, then the HMAC-SHA256 recomputed with the secret key: 70003 unreadable, 70014 other
SDKAppID, 70013 other identifier, 70009 bad signature, 70001 expired), the identifier (60010
when not the app admin) and ``random`` (a 32-bit unsigned integer; every value seen is kept in
``server.randoms``). Replies are HTTP 200 with ``ActionStatus``/``ErrorCode``/``ErrorInfo``
(+ ``ErrorDisplay`` on sns and profile). Each API has a per-second limit (100/s account_check,
1/s get_appid_group_list, 200/s the others) answered with 60007 beyond it.

Command line (for the benchmark)::

    python -m openim_sync.testing.fake_tencent --port 0 --populate users=10000,groups=1000,...
"""

import base64
import bisect
import collections
import hashlib
import hmac
import itertools
import json
import random
import sys
import threading
import time
import zlib

from .http import FakeServer, Reply, run_cli

DEFAULT_SDKAPPID = 1400000000
DEFAULT_KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
NEXT_BASE = 1 << 57  # cursors are 64-bit integers, beyond 2**53
MAX_REPLY_BYTES = 1 << 20
DEFAULT_RATE = 200
RATE_LIMITS = {
    "v4/im_open_login_svc/account_check": 100,
    "v4/group_open_http_svc/get_appid_group_list": 1,
}
GROUP_TYPES = ("Private", "Public", "ChatRoom", "AVChatRoom", "Community", "Work", "Meeting")
DEFAULT_JOIN_OPTION = {
    "Public": "NeedPermission",
    "Private": "DisableApply",
    "Work": "DisableApply",
}
DEFAULT_MAX_MEMBERS = {
    "Private": 200,
    "Work": 200,
    "Public": 2000,
    "ChatRoom": 6000,
    "Meeting": 6000,
}
GROUP_BASE_FIELDS = (
    "Type",
    "Name",
    "Appid",
    "Introduction",
    "Notification",
    "FaceUrl",
    "Owner_Account",
    "CreateTime",
    "InfoSeq",
    "LastInfoTime",
    "LastMsgTime",
    "NextMsgSeq",
    "MemberNum",
    "MaxMemberNum",
    "ApplyJoinOption",
    "ShutUpAllMember",
)
GROUP_FIELDS = {
    "Name": "",
    "Introduction": "",
    "Notification": "",
    "FaceUrl": "",
    "CreateTime": None,
    "InfoSeq": 1,
    "LastInfoTime": None,
    "LastMsgTime": 0,
    "NextMsgSeq": 1,
    "MaxMemberNum": None,
    "ApplyJoinOption": None,
    "ShutUpAllMember": "Off",
    "AppDefinedData": None,
}
MEMBER_FIELDS = {
    "Role": "Member",
    "NameCard": "",
    "JoinTime": None,
    "MuteUntil": 0,
    "MsgFlag": "AcceptAndNotify",
    "MsgSeq": 0,
    "LastSendMsgTime": 0,
    "AppMemberDefinedData": None,
}
MEMBER_INFO_FIELDS = (
    "Role",
    "JoinTime",
    "MsgSeq",
    "MsgFlag",
    "LastSendMsgTime",
    "MuteUntil",
    "NameCard",
)
FRIEND_TAGS = {
    "Tag_SNS_IM_Group": (),
    "Tag_SNS_IM_Remark": "",
    "Tag_SNS_IM_AddSource": "AddSource_Type_Server",
    "Tag_SNS_IM_AddWording": "",
    "Tag_SNS_IM_AddTime": None,
}
PROFILE_TAGS = (
    "Tag_Profile_IM_Nick",
    "Tag_Profile_IM_Gender",
    "Tag_Profile_IM_BirthDay",
    "Tag_Profile_IM_Location",
    "Tag_Profile_IM_SelfSignature",
    "Tag_Profile_IM_AllowType",
    "Tag_Profile_IM_Language",
    "Tag_Profile_IM_Image",
    "Tag_Profile_IM_MsgSettings",
    "Tag_Profile_IM_AdminForbidType",
    "Tag_Profile_IM_Level",
    "Tag_Profile_IM_Role",
)
_FROM_TENCENT = str.maketrans({"*": "+", "-": "/", "_": "="})


class TencentError(Exception):
    def __init__(self, code, info):
        super().__init__(f"{code} {info}")
        self.code, self.info = code, info


def param_error(info, code=10004):
    return TencentError(code, info)


# -- UserSig ----------------------------------------------------------------------------------------


def decode_usersig(usersig):
    """The JSON document inside a UserSig: Tencent's base64 (``*-_`` for ``+/=``), then zlib."""
    raw = base64.b64decode(usersig.translate(_FROM_TENCENT), validate=True)
    document = json.loads(zlib.decompress(raw))
    if not isinstance(document, dict):
        raise ValueError("not a UserSig document")
    return document


def usersig_signature(secret_key, identifier, sdkappid, issued_at, expire, userbuf=None):
    """``TLS.sig``: base64 of HMAC-SHA256 over the ``TLS.<name>:<value>\\n`` lines."""
    content = (
        f"TLS.identifier:{identifier}\n"
        f"TLS.sdkappid:{sdkappid}\n"
        f"TLS.time:{issued_at}\n"
        f"TLS.expire:{expire}\n"
    )
    if userbuf is not None:
        content += f"TLS.userbuf:{userbuf}\n"
    digest = hmac.new(secret_key.encode(), content.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def check_usersig(usersig, sdkappid, secret_key, identifier, now=None):
    """Raise the TencentError Tencent answers for ``usersig``, or return its document."""
    try:
        document = decode_usersig(usersig)
        signed_appid = int(document["TLS.sdkappid"])
        signed_identifier = str(document["TLS.identifier"])
        issued_at, expire = int(document["TLS.time"]), int(document["TLS.expire"])
        signature = str(document["TLS.sig"])
    except (ValueError, KeyError, TypeError, zlib.error):
        raise TencentError(70003, "UserSig parse failed, check that it is complete") from None
    if signed_appid != sdkappid:
        raise TencentError(70014, "SDKAppID in the UserSig does not match the request")
    if signed_identifier != identifier:
        raise TencentError(70013, "identifier in the UserSig does not match the request")
    expected = usersig_signature(
        secret_key,
        document["TLS.identifier"],
        document["TLS.sdkappid"],
        document["TLS.time"],
        document["TLS.expire"],
        document.get("TLS.userbuf"),
    )
    if not hmac.compare_digest(expected, signature):
        raise TencentError(70009, "UserSig verification failed: wrong key or tampered signature")
    now = time.time() if now is None else now
    if now > issued_at + expire:
        raise TencentError(70001, "UserSig expired, generate a new one")
    return document


# -- state ------------------------------------------------------------------------------------------


def _fields(defaults, given, what):
    unknown = set(given) - set(defaults)
    if unknown:
        raise TypeError(f"unknown {what} field(s): {', '.join(sorted(unknown))}")
    return {**defaults, **given}


def _defined(data):
    """App-defined data as a dict (from a dict or ``[{"Key", "Value"}]``)."""
    if not data:
        return {}
    if isinstance(data, dict):
        return dict(data)
    return {item["Key"]: item["Value"] for item in data}


def _profile_tags(tags):
    for tag in tags:
        if not (tag in PROFILE_TAGS or tag.startswith("Tag_Profile_Custom_")):
            raise TypeError(f"{tag} is not a profile tag")
    return dict(tags)


class TencentState:
    """Accounts (profile tags), groups, members, friends, blacks and presence, keyed by the
    REST field and tag names. Times are Unix seconds. Every method takes ``self.lock``."""

    def __init__(self, admin=None):
        self.lock = threading.RLock()
        self.accounts = {}
        self.groups = {}
        self.members = {}
        self.friends = {}
        self.friend_sequence = collections.Counter()
        self.custom_sequence = collections.Counter()
        self.blacks = {}
        self.black_sequence = collections.Counter()
        self.online = {}
        self._seq = itertools.count(1)
        self._cache = {}
        if admin:
            self.add_account(admin)

    # -- accounts -------------------------------------------------------------------------------

    def add_account(self, user_id, **profile_tags):
        with self.lock:
            if user_id in self.accounts:
                raise ValueError(f"account {user_id} exists")
            self.accounts[user_id] = _profile_tags(profile_tags)

    def set_profile(self, user_id, **tags):
        with self.lock:
            self.accounts[user_id].update(_profile_tags(tags))

    def delete_account(self, user_id):
        """Remove the account with its memberships, friend edges (both ways) and blacks."""
        with self.lock:
            del self.accounts[user_id]
            for group_id, members in self.members.items():
                if user_id in members:
                    self.remove_member(group_id, user_id)
            for owner in list(self.friends):
                if user_id in self.friends[owner]:
                    self.remove_friend(owner, user_id)
            self.friends.pop(user_id, None)
            for owner in list(self.blacks):
                self.blacks[owner].pop(user_id, None)
            self.blacks.pop(user_id, None)
            self.online.pop(user_id, None)

    def set_online(self, user_id, status="Online", platforms=(("iPhone", "Online"),)):
        """``status``: Online or PushOnline; ``platforms``: ``(platform, status)`` pairs."""
        with self.lock:
            self.online[user_id] = (status, [tuple(p) for p in platforms])

    def set_offline(self, user_id):
        with self.lock:
            self.online.pop(user_id, None)

    # -- groups ---------------------------------------------------------------------------------

    def add_group(self, group_id, Owner_Account, Type="Public", members=(), **fields):
        """Create a group; the owner becomes a member with Role Owner. ``members`` are user ids
        or dicts with ``Member_Account`` and member fields."""
        with self.lock:
            if group_id in self.groups:
                raise ValueError(f"group {group_id} exists")
            if Type not in GROUP_TYPES:
                raise ValueError(f"unknown group type {Type}")
            group = _fields(GROUP_FIELDS, fields, "group")
            now = int(time.time())
            group.update(GroupId=group_id, Type=Type, Owner_Account=Owner_Account or "")
            group["CreateTime"] = group["CreateTime"] if group["CreateTime"] is not None else now
            if group["LastInfoTime"] is None:
                group["LastInfoTime"] = group["CreateTime"]
            if group["MaxMemberNum"] is None:
                group["MaxMemberNum"] = DEFAULT_MAX_MEMBERS.get(Type, 100000)
            if group["ApplyJoinOption"] is None:
                group["ApplyJoinOption"] = DEFAULT_JOIN_OPTION.get(Type, "FreeAccess")
            group["AppDefinedData"] = _defined(group["AppDefinedData"])
            group["_seq"] = next(self._seq)
            self.groups[group_id] = group
            self.members[group_id] = {}
            self._cache.clear()
            if Owner_Account:
                self.add_member(group_id, Owner_Account, Role="Owner")
            for member in members:
                spec = {"Member_Account": member} if isinstance(member, str) else dict(member)
                user_id = spec.pop("Member_Account")
                if user_id != Owner_Account:
                    self.add_member(group_id, user_id, **spec)

    def update_group(self, group_id, **fields):
        """Change group fields; ``Owner_Account`` transfers ownership (the old owner becomes a
        Member). ``LastInfoTime`` and ``InfoSeq`` move unless given."""
        with self.lock:
            group = self.groups[group_id]
            new_owner = fields.pop("Owner_Account", None)
            if "AppDefinedData" in fields:
                fields["AppDefinedData"] = {
                    **group["AppDefinedData"],
                    **_defined(fields["AppDefinedData"]),
                }
            fields.setdefault("LastInfoTime", int(time.time()))
            fields.setdefault("InfoSeq", group["InfoSeq"] + 1)
            _fields(GROUP_FIELDS, fields, "group")
            group.update(fields)
            if new_owner is not None and new_owner != group["Owner_Account"]:
                if group["Owner_Account"] in self.members[group_id]:
                    self.members[group_id][group["Owner_Account"]]["Role"] = "Member"
                self.members[group_id][new_owner]["Role"] = "Owner"
                group["Owner_Account"] = new_owner

    def destroy_group(self, group_id):
        """The group is gone: get_group_info answers 10010 for it from now on."""
        with self.lock:
            del self.groups[group_id]
            del self.members[group_id]
            self._cache.clear()

    def add_member(self, group_id, user_id, **fields):
        with self.lock:
            members = self.members[group_id]
            if user_id in members:
                raise ValueError(f"{user_id} is already a member of {group_id}")
            member = _fields(MEMBER_FIELDS, fields, "member")
            member["Member_Account"] = user_id
            if member["JoinTime"] is None:
                member["JoinTime"] = int(time.time())
            member["AppMemberDefinedData"] = _defined(member["AppMemberDefinedData"])
            member["_seq"] = next(self._seq)
            members[user_id] = member
            self._cache.pop(("members", group_id), None)

    def update_member(self, group_id, user_id, **fields):
        with self.lock:
            member = self.members[group_id][user_id]
            if "AppMemberDefinedData" in fields:
                fields["AppMemberDefinedData"] = {
                    **member["AppMemberDefinedData"],
                    **_defined(fields["AppMemberDefinedData"]),
                }
            _fields(MEMBER_FIELDS, fields, "member")
            member.update(fields)

    def remove_member(self, group_id, user_id):
        with self.lock:
            del self.members[group_id][user_id]
            self._cache.pop(("members", group_id), None)

    # -- friends and blacks ---------------------------------------------------------------------

    def add_friend(self, owner, friend, **tags):
        """One directed edge with the standard ``Tag_SNS_IM_*`` tags (``Tag_SNS_IM_AddTime`` in
        seconds, now by default) and any ``Tag_SNS_Custom_*``."""
        with self.lock:
            edges = self.friends.setdefault(owner, {})
            if friend in edges:
                raise ValueError(f"{friend} is already a friend of {owner}")
            custom = {t: v for t, v in tags.items() if t.startswith("Tag_SNS_Custom_")}
            edge = _fields(
                FRIEND_TAGS, {t: v for t, v in tags.items() if t not in custom}, "friend"
            )
            if edge["Tag_SNS_IM_AddTime"] is None:
                edge["Tag_SNS_IM_AddTime"] = int(time.time())
            edge["Tag_SNS_IM_Group"] = list(edge["Tag_SNS_IM_Group"])
            edge.update(custom)
            edges[friend] = edge
            self.friend_sequence[owner] += 1
            if custom:
                self.custom_sequence[owner] += 1

    def update_friend(self, owner, friend, **tags):
        with self.lock:
            edge = self.friends[owner][friend]
            custom = {t for t in tags if t.startswith("Tag_SNS_Custom_")}
            _fields(FRIEND_TAGS, {t: v for t, v in tags.items() if t not in custom}, "friend")
            edge.update(tags)
            self.friend_sequence[owner] += 1
            if custom:
                self.custom_sequence[owner] += 1

    def remove_friend(self, owner, friend):
        with self.lock:
            del self.friends[owner][friend]
            self.friend_sequence[owner] += 1

    def add_black(self, owner, blocked, AddBlackTimeStamp=None):
        with self.lock:
            edges = self.blacks.setdefault(owner, {})
            if blocked in edges:
                raise ValueError(f"{owner} already blocks {blocked}")
            edges[blocked] = int(time.time()) if AddBlackTimeStamp is None else AddBlackTimeStamp
            self.black_sequence[owner] += 1

    def remove_black(self, owner, blocked):
        with self.lock:
            del self.blacks[owner][blocked]
            self.black_sequence[owner] += 1

    # -- ordered views --------------------------------------------------------------------------

    def group_cursor_list(self, group_type=""):
        """``(seqs, ids)`` of the groups (of one type) in creation order, for ``Next`` paging."""

        def build():
            pairs = [
                (g["_seq"], gid)
                for gid, g in self.groups.items()
                if not group_type or g["Type"] == group_type
            ]
            return [s for s, _ in pairs], [gid for _, gid in pairs]

        return self._cached(("groups", group_type), build)

    def member_cursor_list(self, group_id):
        """``(seqs, ids)`` of a group's members in join order."""

        def build():
            members = self.members[group_id]
            return [m["_seq"] for m in members.values()], list(members)

        return self._cached(("members", group_id), build)

    def _cached(self, key, build):
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = build()
        return value

    # -- bulk data ------------------------------------------------------------------------------

    def populate(self, users=0, groups=0, members=0, friends=0, blacks=0, seed=0):
        """A deterministic data set like ``OpenIMState.populate``: accounts ``u00001``…, groups
        ``g0001``… (mostly Public; every 20th Community, some ChatRoom and Private), ``members``
        rows in all (owners included), ``friends`` directed edges, ``blacks`` blocks."""
        rng = random.Random(seed)
        with self.lock:
            base = int(time.time()) - 86400
            user_ids = [f"u{i:05d}" for i in range(1, users + 1)]
            for i, user_id in enumerate(user_ids):
                tags = {"Tag_Profile_IM_Nick": f"User {i + 1}"}
                if i % 3 == 0:
                    tags["Tag_Profile_IM_Image"] = f"https://example.invalid/face/{i + 1}.png"
                self.add_account(user_id, **tags)
            if groups and user_ids:
                self._populate_groups(rng, user_ids, groups, members, base)
            self._populate_edges(rng, user_ids, friends, blacks, base)

    def _populate_groups(self, rng, user_ids, groups, members, base):
        weights = [1 / (i + 1) ** 0.7 for i in range(groups)]
        sizes = [1] * groups
        for index in rng.choices(range(groups), weights=weights, k=max(members - groups, 0)):
            sizes[index] += 1
        for i, size in enumerate(sizes):
            kind = (
                "Community"
                if i % 20 == 0
                else "ChatRoom"
                if i % 20 in (1, 2)
                else "Private"
                if i % 20 in (3, 4, 5)
                else "Public"
            )
            chosen = rng.sample(user_ids, min(size, len(user_ids)))
            specs = []
            for j, user_id in enumerate(chosen[1:]):
                spec = {"Member_Account": user_id, "JoinTime": base + i + j}
                if rng.random() < 0.3:
                    spec["NameCard"] = f"Card {j}"
                if j % 10 == 0:
                    spec["Role"] = "Admin"
                specs.append(spec)
            self.add_group(
                f"g{i + 1:04d}",
                chosen[0],
                Type=kind,
                members=specs,
                Name=f"Group {i + 1}",
                CreateTime=base + i,
            )

    def _populate_edges(self, rng, user_ids, friends, blacks, base):
        if len(user_ids) < 2:
            return
        made = 0
        while made < friends:
            a, b = rng.sample(user_ids, 2)
            if b in self.friends.get(a, ()):
                continue
            self.add_friend(a, b, Tag_SNS_IM_AddTime=base + made)
            made += 1
            if made < friends and a not in self.friends.get(b, ()):
                self.add_friend(b, a, Tag_SNS_IM_AddTime=base + made)
                made += 1
        made = 0
        while made < blacks:
            a, b = rng.sample(user_ids, 2)
            if b not in self.blacks.get(a, ()):
                self.add_black(a, b, AddBlackTimeStamp=base + made)
                made += 1


# -- server -----------------------------------------------------------------------------------------


class FakeTencentServer(FakeServer):
    """``FakeTencentServer(sdkappid=1400000000, secret_key=..., admin="administrator",
    enforce_rate_limits=True)``; the admin account exists from the start.

    ``friend_page_size`` is how many friends one ``friend_get`` page holds (Tencent picks it).
    ``throttle_next(path, times, code)`` answers ``code`` (60007 by default) to the next calls.
    """

    side_calls = ("fail_next", "reset_counts", "throttle_next")
    friend_page_size = 100

    def __init__(
        self,
        sdkappid=DEFAULT_SDKAPPID,
        secret_key=DEFAULT_KEY,
        admin="administrator",
        enforce_rate_limits=True,
    ):
        super().__init__()
        self.sdkappid, self.secret_key, self.admin = int(sdkappid), secret_key, admin
        self.enforce_rate_limits = enforce_rate_limits
        self.state = TencentState(admin)
        self.randoms = []
        #: Calls refused with 60007 because they were over the per-API limit.
        self.rate_limited = 0
        self._calls = collections.defaultdict(collections.deque)
        self._throttles = {}
        self.routes = {
            "v4/im_open_login_svc/account_check": self.account_check,
            "v4/profile/portrait_get": self.portrait_get,
            "v4/sns/friend_get": self.friend_get,
            "v4/sns/friend_get_list": self.friend_get_list,
            "v4/sns/black_list_get": self.black_list_get,
            "v4/group_open_http_svc/get_appid_group_list": self.get_appid_group_list,
            "v4/group_open_http_svc/get_group_info": self.get_group_info,
            "v4/group_open_http_svc/get_group_member_info": self.get_group_member_info,
            "v4/openim/query_online_status": self.query_online_status,
            "v4/openim/querystate": self.querystate,
        }

    def count_key(self, path):
        return path.lstrip("/")

    def throttle_next(self, path, times=1, code=60007):
        """Answer ErrorCode ``code`` to the next ``times`` calls of ``path``."""
        with self._lock:
            self._throttles[self.count_key(path)] = [int(times), int(code)]

    def failure_reply(self, request, status):
        page = f"<html><body><h1>{status}</h1></body></html>"
        return Reply(status, page.encode(), "text/html")

    # -- dispatch -------------------------------------------------------------------------------

    def handle(self, request):
        display = request.key.startswith(("v4/sns/", "v4/profile/"))
        try:
            if request.method != "POST":
                raise TencentError(60002, "HTTP parse error: only POST is supported")
            self._authenticate(request.query)
            route = self.routes.get(request.key)
            if route is None:
                raise TencentError(60009, f"invalid request URL: {request.key}")
            self._limit(request.key)
            body = _parse_body(request.body)
            with self.state.lock:
                result = route(body)
            return Reply.json(_envelope(0, "", display, result))
        except TencentError as exc:
            return Reply.json(_envelope(exc.code, exc.info, display))

    def _authenticate(self, query):
        appid = query.get("sdkappid", "")
        if not appid:
            raise TencentError(60012, "SDKAppID is missing from the URL")
        if not appid.isdigit() or int(appid) != self.sdkappid:
            raise TencentError(60006, "SDKAppID is invalid")
        identifier = query.get("identifier", "")
        check_usersig(query.get("usersig", ""), self.sdkappid, self.secret_key, identifier)
        if identifier != self.admin:
            raise TencentError(60010, "this request requires app admin permissions")
        value = query.get("random", "")
        if not value.isdigit() or int(value) >= 2**32:
            raise TencentError(60002, "random must be a 32-bit unsigned integer")
        if query.get("contenttype", "json") != "json":
            raise TencentError(60002, "contenttype must be json")
        with self._lock:
            self.randoms.append(int(value))

    def _limit(self, key):
        """Injected throttles first, then the per-API calls-per-rolling-second limit."""
        now = time.monotonic()
        with self._lock:
            throttle = self._throttles.get(key)
            if throttle:
                throttle[0] -= 1
                if throttle[0] <= 0:
                    del self._throttles[key]
                raise TencentError(throttle[1], "REST API call frequency exceeded")
            if not self.enforce_rate_limits:
                return
            calls = self._calls[key]
            while calls and calls[0] <= now - 1:
                calls.popleft()
            if len(calls) >= RATE_LIMITS.get(key, DEFAULT_RATE):
                self.rate_limited += 1
                raise TencentError(60007, "REST API call frequency exceeded")
            calls.append(now)

    # -- accounts and profiles ------------------------------------------------------------------

    def account_check(self, body):
        """At most 100 ``CheckItem``; AccountStatus Imported or NotImported."""
        items = body.get("CheckItem")
        if not isinstance(items, list) or not items or len(items) > 100:
            raise param_error("CheckItem must hold 1 to 100 items", 70402)
        results = []
        for item in items:
            user_id = item.get("UserID") if isinstance(item, dict) else None
            if not isinstance(user_id, str):
                raise param_error("UserID must be a string", 70402)
            status = "Imported" if user_id in self.state.accounts else "NotImported"
            results.append(
                {"UserID": user_id, "ResultCode": 0, "ResultInfo": "", "AccountStatus": status}
            )
        return {"ResultItem": results}

    def portrait_get(self, body):
        """Profiles of at most 100 accounts; only tags that are set come back; unknown accounts
        get ResultCode 40003 and are listed in ``Fail_Account``."""
        accounts, tags = (
            _string_list(body, "To_Account", 40001),
            _string_list(body, "TagList", 40001),
        )
        if len(accounts) > 100:
            raise param_error("To_Account holds more than 100 accounts", 40001)
        for tag in tags:
            if not (tag in PROFILE_TAGS or tag.startswith("Tag_Profile_Custom_")):
                raise param_error(f"unknown tag {tag}", 40009)
        items, failed = [], []
        for user_id in accounts:
            profile = self.state.accounts.get(user_id)
            if profile is None:
                failed.append(user_id)
                items.append(
                    {"To_Account": user_id, "ResultCode": 40003, "ResultInfo": "account not found"}
                )
                continue
            values = [{"Tag": t, "Value": profile[t]} for t in tags if t in profile]
            items.append(
                {"To_Account": user_id, "ProfileItem": values, "ResultCode": 0, "ResultInfo": ""}
            )
        result = {"UserProfileItem": items}
        if failed:
            result["Fail_Account"] = failed
        return result

    # -- friends and blacks ---------------------------------------------------------------------

    def friend_get(self, body):
        """One server-sized page from ``StartIndex``; ``CompleteFlag`` 1 on the last page (then
        ``NextStartIndex`` 0). A ``StandardSequence``/``CustomSequence`` equal to the server's
        leaves out the standard/custom tags."""
        owner = self._sns_account(body)
        start = _int(body, "StartIndex", 30001)
        edges = self.state.friends.get(owner, {})
        ids = list(edges)[start : start + self.friend_page_size]
        standard, custom = self.state.friend_sequence[owner], self.state.custom_sequence[owner]
        skip_standard = standard and _int(body, "StandardSequence", 30001) == standard
        skip_custom = custom and _int(body, "CustomSequence", 30001) == custom
        items = []
        for friend in ids:
            values = []
            for tag, value in edges[friend].items():
                is_custom = tag.startswith("Tag_SNS_Custom_")
                if not (skip_custom if is_custom else skip_standard):
                    values.append({"Tag": tag, "Value": value})
            items.append({"To_Account": friend, "ValueItem": values})
        complete = start + len(ids) >= len(edges)
        return {
            "UserDataItem": items,
            "StandardSequence": standard,
            "CustomSequence": custom,
            "FriendNum": len(edges),
            "CompleteFlag": int(complete),
            "NextStartIndex": 0 if complete else start + len(ids),
        }

    def friend_get_list(self, body):
        """Chosen friends (at most 100) with the asked SNS tags and profile tags; a non-friend
        gets ResultCode 30001 and is listed in ``Fail_Account``."""
        owner = self._sns_account(body)
        accounts, tags = (
            _string_list(body, "To_Account", 30001),
            _string_list(body, "TagList", 30001),
        )
        if len(accounts) > 100:
            raise param_error("To_Account holds more than 100 accounts", 30001)
        edges = self.state.friends.get(owner, {})
        items, failed = [], []
        for friend in accounts:
            edge = edges.get(friend)
            if edge is None:
                failed.append(friend)
                items.append(
                    {"To_Account": friend, "ResultCode": 30001, "ResultInfo": "not a friend"}
                )
                continue
            profile = self.state.accounts.get(friend, {})
            values = []
            for tag in tags:
                source = profile if tag.startswith("Tag_Profile_") else edge
                if tag in source:
                    values.append({"Tag": tag, "Value": source[tag]})
            items.append(
                {"To_Account": friend, "SnsProfileItem": values, "ResultCode": 0, "ResultInfo": ""}
            )
        result = {"InfoItem": items}
        if failed:
            result["Fail_Account"] = failed
        return result

    def black_list_get(self, body):
        """``MaxLimited`` blocks from ``StartIndex`` (all four fields required); the next
        ``StartIndex`` is 0 once the list is complete. ``CurruentSequence`` (sic)."""
        owner = self._sns_account(body)
        for name in ("StartIndex", "MaxLimited", "LastSequence"):
            if name not in body:
                raise param_error(f"{name} is required", 30001)
        start, limit = _int(body, "StartIndex", 30001), _int(body, "MaxLimited", 30001)
        if limit <= 0:
            raise param_error("MaxLimited must be positive", 30001)
        edges = self.state.blacks.get(owner, {})
        ids = list(edges)[start : start + limit]
        following = start + len(ids)
        return {
            "BlackListItem": [{"To_Account": b, "AddBlackTimeStamp": edges[b]} for b in ids],
            "StartIndex": following if following < len(edges) else 0,
            "CurruentSequence": self.state.black_sequence[owner],
        }

    def _sns_account(self, body):
        owner = body.get("From_Account")
        if not isinstance(owner, str) or not owner:
            raise param_error("From_Account is required", 30001)
        if owner not in self.state.accounts:
            raise TencentError(30003, f"account {owner} does not exist")
        return owner

    # -- groups ---------------------------------------------------------------------------------

    def get_appid_group_list(self, body):
        """At most ``Limit`` (≤ 10000) ids per call, in creation order; ``Next`` is a 64-bit
        integer cursor, 0 when done."""
        limit = _int(body, "Limit", 10004) if "Limit" in body else 10000
        if not 0 < limit <= 10000:
            raise param_error("Limit must be 1 to 10000")
        cursor = _int(body, "Next", 10004)
        if cursor and cursor < NEXT_BASE:
            raise param_error("Next is invalid")
        group_type = body.get("GroupType") or ""
        if group_type and group_type not in GROUP_TYPES:
            raise param_error(f"GroupType {group_type} is invalid")
        seqs, ids = self.state.group_cursor_list(group_type)
        first = bisect.bisect_right(seqs, cursor - NEXT_BASE) if cursor else 0
        shown = ids[first : first + limit]
        more = first + limit < len(ids)
        return {
            "TotalCount": len(ids),
            "GroupIdList": [{"GroupId": g} for g in shown],
            "Next": NEXT_BASE + seqs[first + limit - 1] if more else 0,
        }

    def get_group_info(self, body):
        """At most 50 groups, each with its own ErrorCode (10010 for a group that does not
        exist or was destroyed). Without ``ResponseFilter`` everything; with it, the base
        fields in ``GroupBaseInfoFilter`` (all if absent), ``MemberList`` only for a non-empty
        ``MemberInfoFilter``, app-defined data limited by its filters."""
        ids = body.get("GroupIdList")
        if not isinstance(ids, list) or not ids or len(ids) > 50:
            raise param_error("GroupIdList must hold 1 to 50 group ids")
        response_filter = body.get("ResponseFilter")
        infos = [self._group_info(gid, response_filter) for gid in ids]
        return _checked_size({"GroupInfo": infos})

    def _group_info(self, group_id, response_filter):
        if not isinstance(group_id, str) or not group_id:
            return {"GroupId": group_id, "ErrorCode": 10015, "ErrorInfo": "invalid group id"}
        group = self.state.groups.get(group_id)
        if group is None:
            return {
                "GroupId": group_id,
                "ErrorCode": 10010,
                "ErrorInfo": "the group does not exist or was disbanded",
            }
        filters = response_filter if isinstance(response_filter, dict) else None
        members = self.state.members[group_id]
        values = {**group, "Appid": self.sdkappid, "MemberNum": len(members)}
        base = GROUP_BASE_FIELDS
        if filters is not None and filters.get("GroupBaseInfoFilter"):
            base = [f for f in GROUP_BASE_FIELDS if f in filters["GroupBaseInfoFilter"]]
        info = {"GroupId": group_id, "ErrorCode": 0, "ErrorInfo": ""}
        info.update((field, values[field]) for field in base)
        data_keys = filters.get("AppDefinedDataFilter_Group") if filters else None
        info["AppDefinedData"] = _key_values(group["AppDefinedData"], data_keys)
        member_fields = filters.get("MemberInfoFilter") if filters else list(MEMBER_INFO_FIELDS)
        if member_fields:
            member_keys = filters.get("AppDefinedDataFilter_GroupMember") if filters else None
            info["MemberList"] = [
                _member(m, member_fields, member_keys, mute_key="ShutUpUntil")
                for m in members.values()
            ]
        return info

    def get_group_member_info(self, body):
        """Members in join order: ``Limit``/``Offset`` pages (no ``Limit``: everyone), or for
        Community groups ``Limit`` (≤ 100) and a string ``Next`` cursor ("" when done).
        AVChatRoom groups are not supported (10007); a reply over 1 MB is 10018."""
        group_id = body.get("GroupId")
        if not isinstance(group_id, str) or not group_id:
            raise param_error("GroupId is required")
        group = self.state.groups.get(group_id)
        if group is None:
            raise TencentError(10010, "the group does not exist or was disbanded")
        if group["Type"] == "AVChatRoom":
            raise TencentError(10007, "AVChatRoom groups do not support this API")
        members = self.state.members[group_id]
        seqs, ids = self.state.member_cursor_list(group_id)
        roles = body.get("MemberRoleFilter")
        if roles:
            kept = [(s, u) for s, u in zip(seqs, ids, strict=True) if members[u]["Role"] in roles]
            seqs, ids = [s for s, _ in kept], [u for _, u in kept]
        fields = body.get("MemberInfoFilter") or list(MEMBER_INFO_FIELDS)
        keys = body.get("AppDefinedDataFilter_GroupMember")
        result = {"MemberNum": len(members)}
        if group["Type"] == "Community":
            shown, result["Next"] = self._community_page(body, seqs, ids)
        else:
            limit = _int(body, "Limit", 10004) if "Limit" in body else None
            if limit is not None and not 0 < limit <= 6000:
                raise param_error("Limit must be 1 to 6000")
            offset = _int(body, "Offset", 10004)
            shown = ids[offset : offset + limit if limit is not None else None]
        result["MemberList"] = [_member(members[u], fields, keys) for u in shown]
        return _checked_size(result)

    def _community_page(self, body, seqs, ids):
        limit = _int(body, "Limit", 10004) if "Limit" in body else 100
        if not 0 < limit <= 100:
            raise param_error("Limit must be 1 to 100 for Community groups")
        cursor = body.get("Next") or ""
        if not isinstance(cursor, str) or (cursor and not cursor.isdigit()):
            raise param_error("Next is invalid")
        first = bisect.bisect_right(seqs, int(cursor) - NEXT_BASE) if cursor else 0
        more = first + limit < len(ids)
        return ids[first : first + limit], str(NEXT_BASE + seqs[first + limit - 1]) if more else ""

    # -- presence -------------------------------------------------------------------------------

    def query_online_status(self, body):
        """At most 500 accounts: ``Status`` Online/PushOnline/Offline, ``Detail`` per platform
        with ``IsNeedDetail: 1``; accounts that were never imported go to ``ErrorList`` 70107."""
        return self._presence(body, "Status", always_error_list=True)

    def querystate(self, body):
        """The older API: the same with the status under ``State``."""
        return self._presence(body, "State", always_error_list=False)

    def _presence(self, body, status_key, always_error_list):
        accounts = body.get("To_Account")
        if not isinstance(accounts, list) or not accounts:
            raise TencentError(90001, "To_Account must be a non-empty array")
        if any(not isinstance(a, str) for a in accounts):
            raise TencentError(90003, "To_Account must hold strings")
        if len(accounts) > 500:
            raise TencentError(90011, "To_Account holds more than 500 accounts")
        detail = _int(body, "IsNeedDetail", 90001) == 1
        results, errors = [], []
        for user_id in accounts:
            if user_id not in self.state.accounts:
                errors.append({"To_Account": user_id, "ErrorCode": 70107})
                continue
            status, platforms = self.state.online.get(user_id, ("Offline", []))
            item = {"To_Account": user_id, status_key: status}
            if detail and status != "Offline":
                item["Detail"] = [{"Platform": p, "Status": s} for p, s in platforms]
            results.append(item)
        result = {"QueryResult": results}
        if errors or always_error_list:
            result["ErrorList"] = errors
        return result


# -- helpers ----------------------------------------------------------------------------------------


def _envelope(code, info, display, result=None):
    reply = {"ActionStatus": "OK" if code == 0 else "FAIL", "ErrorCode": code, "ErrorInfo": info}
    if display:
        reply["ErrorDisplay"] = ""
    if result:
        reply.update(result)
    return reply


def _parse_body(raw):
    """The body must be a JSON object (``{}`` at least): 60003 otherwise."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise TencentError(60003, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise TencentError(60003, "request body must be a JSON object")
    return body


def _int(body, name, code):
    value = body.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise param_error(f"{name} must be a non-negative integer", code)
    return value


def _string_list(body, name, code):
    values = body.get(name)
    if not isinstance(values, list) or not values or any(not isinstance(v, str) for v in values):
        raise param_error(f"{name} must be a non-empty array of strings", code)
    return values


def _key_values(data, keys):
    if keys is not None:
        data = {k: v for k, v in data.items() if k in keys}
    return [{"Key": k, "Value": v} for k, v in data.items()]


def _member(member, fields, data_keys, mute_key="MuteUntil"):
    """A member as Tencent shows it; get_group_info calls the mute time ``ShutUpUntil``."""
    wanted = {"MuteUntil" if field == "ShutUpUntil" else field for field in fields}
    item = {"Member_Account": member["Member_Account"]}
    for field in MEMBER_INFO_FIELDS:
        if field in wanted:
            item[mute_key if field == "MuteUntil" else field] = member[field]
    if member["AppMemberDefinedData"]:
        item["AppMemberDefinedData"] = _key_values(member["AppMemberDefinedData"], data_keys)
    return item


def _checked_size(result):
    size = len(json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_REPLY_BYTES:
        raise TencentError(10018, "the reply exceeds 1 MB: ask for less at a time")
    return result


def main(argv=None):
    def add_arguments(parser):
        parser.add_argument("--sdkappid", type=int, default=DEFAULT_SDKAPPID)
        parser.add_argument("--secret-key", default=DEFAULT_KEY)
        parser.add_argument("--admin", default="administrator")
        parser.add_argument(
            "--no-rate-limits", action="store_true", help="do not answer 60007 beyond the limits"
        )

    def build(args):
        return FakeTencentServer(
            sdkappid=args.sdkappid,
            secret_key=args.secret_key,
            admin=args.admin,
            enforce_rate_limits=not args.no_rate_limits,
        )

    return run_cli(
        "python -m openim_sync.testing.fake_tencent",
        "A fake Tencent Cloud Chat REST API for tests and benchmarks.",
        build,
        argv,
        add_arguments,
    )


if __name__ == "__main__":
    sys.exit(main())
