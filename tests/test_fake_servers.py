"""The fake OpenIM and Tencent REST servers (openim_sync.testing) answer as the vendors do
(docs/shared reference rest-apis.md §1 and §2). No database needed."""

import base64
import gzip
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import zlib

import httpx
import pytest

from openim_sync.testing import FakeOpenIMServer, FakeTencentServer, fake_openim, fake_tencent

KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
SDKAPPID = 1400000000


# -- OpenIM helpers -------------------------------------------------------------------------------


class OpenIM:
    """A bare client: POST JSON with operationID and the admin token."""

    def __init__(self, server, admin="openim-sync"):
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=10)
        self.admin = admin
        self.token = None

    def raw(self, path, body=None, token=True, operation_id="op-1", content=None):
        headers = {"operationID": operation_id} if operation_id else {}
        if token is True:
            token = self.token or self.login()
        if token:
            headers["token"] = token
        if content is not None:
            return self.http.post(path, content=content, headers=headers)
        return self.http.post(path, json=body if body is not None else {}, headers=headers)

    def call(self, path, body=None, **kwargs):
        response = self.raw(path, body, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def data(self, path, body=None, **kwargs):
        reply = self.call(path, body, **kwargs)
        assert reply["errCode"] == 0, reply
        return reply.get("data")

    def login(self):
        if self.server.features["token"] == "admin_token":
            body = {"secret": self.server.secret, "userID": self.admin}
            path = "/auth/get_admin_token"
        else:
            body = {"secret": self.server.secret, "platformID": 10, "userID": self.admin}
            path = "/auth/user_token"
        self.token = self.data(path, body, token=None)["token"]
        return self.token


def page(number, size):
    return {"pagination": {"pageNumber": number, "showNumber": size}}


@pytest.fixture
def openim():
    with FakeOpenIMServer() as server:
        client = OpenIM(server)
        yield client
        client.http.close()


def openim_at(version, **kwargs):
    server = FakeOpenIMServer(version=version, **kwargs).start()
    return server, OpenIM(server)


# -- OpenIM: envelope, paging, tokens ---------------------------------------------------------------


def test_envelope_and_paging_past_the_last_page(openim):
    for i in range(5):
        openim.server.state.add_user(f"u{i}")
    first = openim.call("/user/get_all_users_uid", page(1, 4))
    assert set(first) == {"errCode", "errMsg", "errDlt", "data"}
    assert first["errCode"] == 0 and first["errMsg"] == "" and first["errDlt"] == ""
    assert first["data"] == {"total": 7, "userIDs": ["imAdmin", "openim-sync", "u0", "u1"]}
    assert openim.data("/user/get_all_users_uid", page(2, 4))["userIDs"] == ["u2", "u3", "u4"]
    assert openim.data("/user/get_all_users_uid", page(3, 4)) == {"total": 7, "userIDs": None}
    assert openim.data("/user/get_all_users_uid", page(1, 0)) == {"total": 7, "userIDs": None}


def test_pagination_is_checked(openim):
    reply = openim.call("/user/get_all_users_uid", page(0, 10))
    assert (reply["errCode"], reply["errDlt"]) == (1001, "pageNumber is invalid")
    assert "data" not in reply
    assert openim.call("/user/get_users", {})["errDlt"] == "pagination is empty"
    assert openim.call("/user/get_users_info", {"userIDs": []})["errCode"] == 1001


def test_operation_id_and_token_are_required(openim):
    reply = openim.call("/user/get_all_users_uid", page(1, 1), operation_id=None)
    assert (reply["errCode"], reply["errDlt"]) == (1001, "header must have operationID")
    reply = openim.call("/user/get_all_users_uid", page(1, 1), token=None)
    assert (reply["errCode"], reply["errDlt"]) == (1001, "header must have token")
    assert openim.call("/user/get_all_users_uid", page(1, 1), token="nope")["errCode"] == 1507
    openim.login()
    openim.server.expire_tokens()
    assert openim.call("/user/get_all_users_uid", page(1, 1))["errCode"] == 1501
    openim.login()
    assert openim.call("/user/get_all_users_uid", page(1, 1))["errCode"] == 0


def test_admin_token_checks(openim):
    def token(secret, user):
        body = {"secret": secret, "userID": user}
        return openim.call("/auth/get_admin_token", body, token=None)

    assert token("wrong", "openim-sync")["errCode"] == 1002
    assert token("openIM123", "someone")["errCode"] == 1001
    data = token("openIM123", "imAdmin")["data"]
    assert data["expireTimeSeconds"] == 90 * 86400 and isinstance(data["token"], str)


def test_main_supersedes_older_admin_tokens(monkeypatch):
    server, client = openim_at("main")
    with server:
        old = client.login()
        assert client.call("/user/get_all_users_uid", page(1, 1), token=old)["errCode"] == 0
        client.login()
        assert client.call("/user/get_all_users_uid", page(1, 1), token=old)["errCode"] == 0
        monkeypatch.setattr(fake_openim, "SUPERSEDED_TOKEN_SECONDS", 0)
        assert client.call("/user/get_all_users_uid", page(1, 1), token=old)["errCode"] == 1507
        assert client.call("/user/get_all_users_uid", page(1, 1))["errCode"] == 0


def test_version_routes_and_gin_404():
    server, client = openim_at("3.7.0")
    with server:
        response = client.raw(
            "/auth/get_admin_token", {"secret": "openIM123", "userID": "imAdmin"}, token=None
        )
        assert (response.status_code, response.text) == (404, "404 page not found")
        assert client.login()
        assert client.raw("/group/get_incremental_group_members", {}).status_code == 404
        assert client.raw("/friend/get_specified_blacks", {}).status_code == 404
    server, client = openim_at("3.8.0")
    with server:
        # v3.8.0 checks the token globally: an unknown route without a token is errCode 1001.
        body = {"secret": "openIM123", "userID": "imAdmin"}
        reply = client.call("/auth/get_admin_token", body, token=None)
        assert (reply["errCode"], reply["errDlt"]) == (1001, "header must have token")
        assert client.raw("/auth/get_admin_token", body).status_code == 404
        reply = client.call("/group/get_incremental_group_members", {"groupID": "nope"})
        assert reply["errCode"] == 1004  # the route exists from v3.8.0
    server, client = openim_at("3.8.1")
    with server:
        assert client.call("/auth/user_token", {}, token=None)["errCode"] == 1001
        assert client.raw("/auth/user_token", {}).status_code == 404
        assert client.data(
            "/friend/get_specified_blacks", {"ownerUserID": "x", "userIDList": ["y"]}
        ) == {
            "blacks": None,
            "total": 0,
        }


def test_unknown_group_on_an_incremental_call(openim):
    reply = openim.call("/group/get_incremental_group_members", {"groupID": "nope"})
    assert reply["errCode"] == 1004


def test_gzip_from_3_8_1():
    server, client = openim_at("3.8.3")
    with server:
        client.login()
        headers = {"operationID": "x", "token": client.token, "Accept-Encoding": "gzip"}
        with httpx.stream(
            "POST", f"{server.url}/user/get_all_users_uid", json=page(1, 5), headers=headers
        ) as response:
            assert response.headers["content-encoding"] == "gzip"
            assert json.loads(gzip.decompress(b"".join(response.iter_raw())))["errCode"] == 0
    server, client = openim_at("3.8.0")
    with server:
        response = client.raw("/user/get_all_users_uid", page(1, 5))
        assert "content-encoding" not in response.headers


def test_fail_next_answers_http_errors(openim):
    openim.login()
    openim.server.fail_next("/user/get_users", times=2, status=500)
    assert openim.raw("/user/get_users", page(1, 1)).status_code == 500
    assert openim.raw("/user/get_users", page(1, 1)).status_code == 500
    assert openim.raw("/user/get_users", page(1, 1)).status_code == 200
    openim.server.fail_next("/user/get_users", status=429)
    response = openim.raw("/user/get_users", page(1, 1))
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert response.json()["errCode"] == 429
    assert openim.server.counts()["/user/get_users"] == 4


# -- OpenIM: users, groups, members ---------------------------------------------------------------------


def test_get_users_excludes_admin_levels(openim):
    state = openim.server.state
    state.add_user("alice", nickname="Alice", createTime=1700000000123)
    state.add_user("robot", appMangerLevel=4)
    state.add_user("plain", appMangerLevel=0)
    data = openim.data("/user/get_users", page(1, 10))
    assert [u["userID"] for u in data["users"]] == ["alice", "plain"] and data["total"] == 2
    assert data["users"][0] == {
        "userID": "alice",
        "nickname": "Alice",
        "faceURL": "",
        "ex": "",
        "createTime": 1700000000123,
        "appMangerLevel": 1,
        "globalRecvMsgOpt": 0,
    }
    assert openim.data("/user/get_all_users_uid", page(1, 10))["total"] == 5
    infos = openim.data("/user/get_users_info", {"userIDs": ["robot", "ghost", "alice"]})[
        "usersInfo"
    ]
    assert [u["userID"] for u in infos] == ["alice", "robot"]
    results = openim.data("/user/account_check", {"checkUserIDs": ["alice", "ghost"]})["results"]
    assert results == [
        {"userID": "alice", "accountStatus": 1},
        {"userID": "ghost", "accountStatus": 0},
    ]
    assert openim.call("/user/account_check", {"checkUserIDs": ["a", "a"]})["errCode"] == 1001


def test_openim_online_status(openim):
    state = openim.server.state
    state.add_user("alice")
    state.set_online("alice", [1, 5])
    status = openim.data("/user/get_users_online_status", {"userIDs": ["alice", "bob"]})
    assert [s["status"] for s in status] == [1, 0]
    assert [d["platformID"] for d in status[0]["detailPlatformStatus"]] == [1, 5]
    assert status[1] == {"userID": "bob", "status": 0, "detailPlatformStatus": None}
    cache = openim.data(
        "/user/get_users_status", {"userID": "openim-sync", "userIDs": ["alice", "bob"]}
    )
    assert cache["statusList"] == [
        {"userID": "alice", "status": 1, "platformIDs": [1, 5]},
        {"userID": "bob", "status": 0, "platformIDs": None},
    ]
    state.set_offline("alice")
    assert openim.data("/user/get_users_online_status", {"userIDs": ["alice"]})[0]["status"] == 0


def test_dismissed_groups(openim):
    state = openim.server.state
    for user in ("o", "m"):
        state.add_user(user)
    state.add_group("g1", "o", groupName="one", members=["m"], createTime=1)
    state.add_group("g2", "o", groupName="two", createTime=2)
    state.dismiss_group("g1")
    groups = openim.data("/group/get_groups", page(1, 10))
    assert groups["total"] == 1 and [g["groupInfo"]["groupID"] for g in groups["groups"]] == ["g2"]
    assert groups["groups"][0]["groupOwnerUserID"] == "o"
    infos = openim.data("/group/get_groups_info", {"groupIDs": ["g1", "g2", "ghost"]})["groupInfos"]
    assert [(g["groupID"], g["status"], g["memberCount"]) for g in infos] == [
        ("g1", 2, 2),
        ("g2", 0, 1),
    ]
    assert (
        openim.data("/group/get_groups", {**page(1, 10), "groupID": "g1"})["groups"][0][
            "groupInfo"
        ]["status"]
        == 2
    )
    members = openim.data("/group/get_group_member_list", {"groupID": "g1", **page(1, 10)})
    assert members["total"] == 2  # a dismissed group keeps its members unless deleteMember


def test_get_groups_order_follows_the_version():
    for version, expected in (("3.8.0", ["g1", "g2"]), ("3.8.3", ["g2", "g1"])):
        server, client = openim_at(version)
        with server:
            server.state.add_user("o")
            server.state.add_group("g1", "o", createTime=1)
            server.state.add_group("g2", "o", createTime=2)
            groups = client.data("/group/get_groups", page(1, 10))["groups"]
            assert [g["groupInfo"]["groupID"] for g in groups] == expected


def test_member_profile_fallback_and_order(openim):
    state = openim.server.state
    state.add_user("o", nickname="Owner", faceURL="o.png")
    state.add_user("a", nickname="Ann", faceURL="a.png")
    state.add_user("b", nickname="Bob")
    state.add_group("g", "o", members=[{"userID": "a", "nickname": "card"}, "b"])
    state.update_member("g", "b", roleLevel=60, muteEndTime=1900000000000)
    members = openim.data("/group/get_group_member_list", {"groupID": "g", **page(1, 10)})[
        "members"
    ]
    assert [(m["userID"], m["roleLevel"]) for m in members] == [("o", 100), ("b", 60), ("a", 20)]
    shown = {m["userID"]: (m["nickname"], m["faceURL"]) for m in members}
    assert shown == {"o": ("Owner", "o.png"), "b": ("Bob", ""), "a": ("card", "a.png")}
    assert members[1]["muteEndTime"] == 1900000000000
    assert set(members[0]) == {
        "groupID",
        "userID",
        "roleLevel",
        "joinTime",
        "nickname",
        "faceURL",
        "appMangerLevel",
        "joinSource",
        "operatorUserID",
        "ex",
        "muteEndTime",
        "inviterUserID",
    }
    assert openim.data("/group/get_group_member_user_id", {"groupID": "g"})["userIDs"] == [
        "o",
        "b",
        "a",
    ]
    info = openim.data("/group/get_group_members_info", {"groupID": "g", "userIDs": ["a", "x"]})[
        "members"
    ]
    assert [m["userID"] for m in info] == ["a"]
    assert openim.data("/group/get_group_member_list", {"groupID": "g", **page(2, 10)}) == {
        "total": 3,
        "members": None,
    }
    assert openim.data("/group/get_group_member_list", {"groupID": "ghost", **page(1, 10)}) == {
        "total": 0,
        "members": None,
    }


def test_friend_and_black_times_are_seconds(openim):
    state = openim.server.state
    for user in ("a", "b", "c"):
        state.add_user(user, nickname=user.upper())
    state.add_friendship("a", "b", createTime=1700000000, remark="bee")
    state.add_friend("a", "c", isPinned=True)
    state.add_black("a", "c", createTime=1700000001)
    friends = openim.data("/friend/get_friend_list", {"userID": "a", **page(1, 10)})
    assert friends["total"] == 2 and [
        f["friendUser"]["userID"] for f in friends["friendsInfo"]
    ] == ["c", "b"]
    bee = friends["friendsInfo"][1]
    assert (
        bee["createTime"] == 1700000000
        and bee["remark"] == "bee"
        and bee["friendUser"]["nickname"] == "B"
    )
    assert openim.data("/friend/get_friend_id", {"userID": "b"})["friendIDs"] == ["a"]
    chosen = openim.data(
        "/friend/get_designated_friends", {"ownerUserID": "a", "friendUserIDs": ["b", "x"]}
    )
    assert [f["friendUser"]["userID"] for f in chosen["friendsInfo"]] == ["b"]
    blacks = openim.data("/friend/get_black_list", {"userID": "a", **page(1, 10)})
    assert blacks["total"] == 1 and blacks["blacks"][0]["createTime"] == 1700000001
    assert blacks["blacks"][0]["blackUserInfo"] == {
        "userID": "c",
        "nickname": "C",
        "faceURL": "",
        "ex": "",
    }
    specified = openim.data(
        "/friend/get_specified_blacks", {"ownerUserID": "a", "userIDList": ["c"]}
    )
    assert specified["blacks"][0]["createTime"] == 1700000001000  # this endpoint says milliseconds
    assert openim.data("/friend/get_black_list", {"userID": "b", **page(1, 10)}) == {
        "blacks": None,
        "total": 0,
    }


# -- OpenIM: version logs ---------------------------------------------------------------------------


def increment(client, group_id, version_id="", version=0):
    body = {"groupID": group_id, "versionID": version_id, "version": version}
    return client.data("/group/get_incremental_group_members", body)


def test_incremental_members_full_delta_and_no_change(openim):
    state = openim.server.state
    for user in ("o", "a", "b", "c"):
        state.add_user(user, nickname=user)
    state.add_group("g", "o", members=["a", "b"])
    first = increment(openim, "g")
    assert first["full"] is True and first["insert"] is None and first["delete"] is None
    assert first["group"]["groupID"] == "g" and len(first["versionID"]) == 24
    same = increment(openim, "g", first["versionID"], first["version"])
    assert same["full"] is False and same["group"] is None
    assert (same["insert"], same["update"], same["delete"]) == (None, None, None)
    state.add_member("g", "c")
    state.update_member("g", "a", nickname="A!")
    state.remove_member("g", "b")
    delta = increment(openim, "g", first["versionID"], first["version"])
    assert delta["full"] is False and delta["version"] == first["version"] + 3
    assert [m["userID"] for m in delta["insert"]] == ["c"]
    assert [(m["userID"], m["nickname"]) for m in delta["update"]] == [("a", "A!")]
    assert delta["delete"] == ["b"] and delta["group"]["memberCount"] == 3
    stale = increment(openim, "g", "0123456789abcdef01234567", delta["version"])
    assert stale["full"] is True and stale["insert"] is None
    state.update_group("g", groupName="renamed")
    renamed = increment(openim, "g", delta["versionID"], delta["version"])
    assert (
        renamed["full"] is False
        and renamed["insert"] is None
        and renamed["group"]["groupName"] == "renamed"
    )
    state.truncate_log(group_id="g")
    truncated = increment(openim, "g", renamed["versionID"], renamed["version"])
    assert truncated["full"] is True and truncated["versionID"] != renamed["versionID"]


def test_incremental_members_over_the_sync_limit_is_full(openim):
    state = openim.server.state
    state.add_user("o")
    state.add_group("g", "o")
    start = increment(openim, "g")
    for i in range(201):
        state.add_member("g", f"m{i}")
    assert increment(openim, "g", start["versionID"], start["version"])["full"] is True
    state.remove_member("g", "m0")
    later = increment(openim, "g", start["versionID"], start["version"] + 200)
    assert (
        later["full"] is False
        and later["delete"] == ["m0"]
        and [m["userID"] for m in later["insert"]] == ["m200"]
    )


def test_incremental_members_of_a_dismissed_group(openim):
    state = openim.server.state
    state.add_user("o")
    state.add_group("g", "o")
    state.dismiss_group("g")
    reply = openim.call("/group/get_incremental_group_members", {"groupID": "g"})
    assert reply["errCode"] == 1204


def batch(client, versions):
    req = [
        {"groupID": g, "versionID": v.get("versionID", ""), "version": v.get("version", 0)}
        for g, v in versions.items()
    ]
    body = {"userID": "openim-sync", "reqList": req}
    return client.data("/group/get_incremental_group_members_batch", body)


def test_incremental_members_batch_skips_dismissed_groups(openim):
    state = openim.server.state
    state.add_user("o")
    state.add_user("m")
    for name in ("live", "dead"):
        state.add_group(name, "o")
    start = increment(openim, "live")
    state.dismiss_group("dead")
    state.add_member("live", "m")
    answer = batch(openim, {"live": start, "dead": {}})["respList"]
    assert list(answer) == ["live"] and [m["userID"] for m in answer["live"]["insert"]] == ["m"]
    assert batch(openim, {"dead": {}}) == {}  # respList is a map: omitted when empty


def test_batch_stops_after_500_changes(openim):
    state = openim.server.state
    state.add_user("o")
    groups = [f"g{i}" for i in range(4)]
    for g in groups:
        state.add_group(g, "o")
    versions = {g: increment(openim, g) for g in groups}
    for g in groups:
        for i in range(190):
            state.add_member(g, f"{g}-{i}")
    answer = batch(openim, versions)
    assert list(answer["respList"]) == ["g0", "g1", "g2"]  # 570 changes: g3 must be asked again


def test_incremental_friends_and_profile_changes(openim):
    state = openim.server.state
    for user in ("a", "b", "c"):
        state.add_user(user)
    state.add_friendship("a", "b")
    body = {"userID": "a", "versionID": "", "version": 0}
    start = openim.data("/friend/get_incremental_friends", body)
    assert start["full"] is True and start["sortVersion"] == 0
    state.add_friend("a", "c")
    state.update_user("b", nickname="Bee")
    state.update_user("c", ex="no log for ex")
    body.update(versionID=start["versionID"], version=start["version"])
    delta = openim.data("/friend/get_incremental_friends", body)
    assert [f["friendUser"]["userID"] for f in delta["insert"]] == ["c"]
    assert [(f["friendUser"]["userID"], f["friendUser"]["nickname"]) for f in delta["update"]] == [
        ("b", "Bee")
    ]
    state.remove_friend("a", "c")
    body.update(versionID=delta["versionID"], version=delta["version"])
    assert openim.data("/friend/get_incremental_friends", body)["delete"] == ["c"]
    full = openim.data("/friend/get_full_friend_user_ids", {"userID": "a", "idHash": 0})
    assert full["equal"] is False and full["userIDs"] == ["b"]
    again = openim.data(
        "/friend/get_full_friend_user_ids", {"userID": "a", "idHash": fake_openim.id_hash(["b"])}
    )
    assert again["equal"] is True and again["userIDs"] is None


def test_incremental_blacks_as_the_vendor_ships_them():
    server, client = openim_at("3.8.3")
    with server:
        reply = client.call("/friend/get_incremental_blacks", {"userID": "openim-sync"})
        assert reply["errCode"] == 12 and "not implemented" in reply["errMsg"]
    server, client = openim_at("3.8.0")
    with server:
        assert client.data("/friend/get_incremental_blacks", {"userID": "imAdmin"}) == {
            "version": 0,
            "versionID": "",
            "full": False,
            "delete": None,
            "insert": None,
            "update": None,
        }
    server, client = openim_at("3.8.3", working_incremental_blacks=True)
    with server:
        server.state.add_user("a")
        server.state.add_user("b")
        body = {"userID": "a", "versionID": "", "version": 0}
        start = client.data("/friend/get_incremental_blacks", body)
        server.state.add_black("a", "b")
        body.update(versionID=start["versionID"], version=start["version"])
        assert [
            b["blackUserInfo"]["userID"]
            for b in client.data("/friend/get_incremental_blacks", body)["insert"]
        ] == ["b"]


def test_populate_is_deterministic_and_quick():
    """The benchmark's data set must build in under 2 s."""
    size = {"users": 10000, "groups": 1000, "members": 30000, "friends": 20000, "blacks": 100}
    for state_class, admin in (
        (fake_openim.OpenIMState, ("imAdmin",)),
        (fake_tencent.TencentState, "admin"),
    ):
        state = state_class(admin)
        began = time.perf_counter()
        state.populate(**size, seed=3)
        assert time.perf_counter() - began < 2
        assert len(state.groups) == 1000
        assert sum(len(m) for m in state.members.values()) == 30000
        assert sum(len(f) for f in state.friends.values()) == 20000
        assert sum(len(b) for b in state.blacks.values()) == 100
    state = fake_openim.OpenIMState(("imAdmin",))
    state.populate(users=200, groups=20, members=600, friends=400, seed=3)
    other = fake_openim.OpenIMState(("imAdmin",))
    other.populate(users=200, groups=20, members=600, friends=400, seed=3)
    assert {g: list(m) for g, m in other.members.items()} == {
        g: list(m) for g, m in state.members.items()
    }
    assert {o: list(f) for o, f in other.friends.items()} == {
        o: list(f) for o, f in state.friends.items()
    }


# -- Tencent helpers --------------------------------------------------------------------------------


def make_usersig(sdkappid, key, identifier, expire, now):
    """TLSSigAPIv2 as the reference describes it (§2.2)."""
    content = f"TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\nTLS.time:{now}\nTLS.expire:{expire}\n"
    sig = base64.b64encode(
        hmac.new(key.encode(), content.encode(), hashlib.sha256).digest()
    ).decode()
    document = {
        "TLS.ver": "2.0",
        "TLS.identifier": identifier,
        "TLS.sdkappid": sdkappid,
        "TLS.expire": expire,
        "TLS.time": now,
        "TLS.sig": sig,
    }
    compressed = zlib.compress(json.dumps(document).encode())
    return base64.b64encode(compressed).decode().translate(str.maketrans("+/=", "*-_"))


class Tencent:
    def __init__(self, server):
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=10)
        self.usersig = make_usersig(SDKAPPID, KEY, "administrator", 86400, int(time.time()))

    def call(self, api, body=None, content=None, **query):
        params = {
            "sdkappid": SDKAPPID,
            "identifier": "administrator",
            "usersig": self.usersig,
            "random": 4294967295,
            "contenttype": "json",
            **query,
        }
        if content is None:
            content = json.dumps(body if body is not None else {})
        response = self.http.post(f"/v4/{api}", params=params, content=content)
        assert response.status_code == 200, response.text
        return response.json()

    def ok(self, api, body=None, **query):
        reply = self.call(api, body, **query)
        assert (reply["ActionStatus"], reply["ErrorCode"]) == ("OK", 0), reply
        return reply


@pytest.fixture
def tencent():
    with FakeTencentServer() as server:
        client = Tencent(server)
        yield client
        client.http.close()


# -- Tencent: transport and UserSig ----------------------------------------------------------------


def test_usersig_reference_value():
    usersig = make_usersig(SDKAPPID, KEY, "administrator", 86400, 1700000000)
    document = fake_tencent.decode_usersig(usersig)
    assert document["TLS.sig"] == "yLAe+w7WUeUuqbV9h/TX78u21oTGi+i9Zp1u3PpnY60="
    assert fake_tencent.check_usersig(usersig, SDKAPPID, KEY, "administrator", now=1700000001)
    with pytest.raises(fake_tencent.TencentError) as expired:
        fake_tencent.check_usersig(usersig, SDKAPPID, KEY, "administrator", now=1700086401)
    assert expired.value.code == 70001


def test_envelope_and_usersig_checks(tencent):
    reply = tencent.ok(
        "im_open_login_svc/account_check", {"CheckItem": [{"UserID": "administrator"}]}
    )
    assert reply["ErrorInfo"] == "" and "ErrorDisplay" not in reply
    assert reply["ResultItem"][0]["AccountStatus"] == "Imported"
    assert (
        tencent.ok(
            "profile/portrait_get",
            {"To_Account": ["administrator"], "TagList": ["Tag_Profile_IM_Nick"]},
        )["ErrorDisplay"]
        == ""
    )
    api = "openim/query_online_status"
    body = {"To_Account": ["administrator"]}
    now = int(time.time())
    cases = {
        70009: {"usersig": make_usersig(SDKAPPID, "0" * 64, "administrator", 86400, now)},
        70001: {"usersig": make_usersig(SDKAPPID, KEY, "administrator", 60, now - 120)},
        70013: {"identifier": "someone"},
        70014: {"usersig": make_usersig(1400000001, KEY, "administrator", 86400, now)},
        70003: {"usersig": "not-a-sig"},
        60006: {"sdkappid": 1400000001},
        60012: {"sdkappid": ""},
        60010: {"identifier": "bob", "usersig": make_usersig(SDKAPPID, KEY, "bob", 86400, now)},
        60002: {"random": 4294967296},
    }
    for code, query in cases.items():
        reply = tencent.call(api, body, **query)
        assert (reply["ActionStatus"], reply["ErrorCode"]) == ("FAIL", code), (code, reply)
    assert tencent.call(api, content="")["ErrorCode"] == 60003
    assert tencent.call(api, content="[1]")["ErrorCode"] == 60003
    assert tencent.call("openim/no_such_api", {})["ErrorCode"] == 60009
    tencent.ok(api, body, random=7)
    assert tencent.server.randoms[-2:] == [4294967295, 7]


def test_rate_limits(tencent):
    api = "group_open_http_svc/get_appid_group_list"
    tencent.ok(api)
    assert tencent.call(api)["ErrorCode"] == 60007
    tencent.server.enforce_rate_limits = False
    tencent.ok(api)
    tencent.server.throttle_next(f"v4/{api}", times=1, code=60018)
    assert tencent.call(api)["ErrorCode"] == 60018
    tencent.ok(api)
    assert tencent.server.counts()[f"v4/{api}"] == 5


def test_account_check_limit_is_100_per_second():
    with FakeTencentServer() as server:
        client = Tencent(server)
        body = {"CheckItem": [{"UserID": "x"}]}
        codes = [
            client.call("im_open_login_svc/account_check", body)["ErrorCode"] for _ in range(101)
        ]
        assert codes[:100] == [0] * 100 and codes[100] == 60007


# -- Tencent: groups ---------------------------------------------------------------------------------


def test_group_list_pages_with_a_64_bit_next(tencent):
    tencent.server.enforce_rate_limits = False
    state = tencent.server.state
    state.add_account("o")
    for i in range(5):
        state.add_group(f"g{i}", "o", Type="Community" if i == 4 else "Public")
    first = tencent.ok("group_open_http_svc/get_appid_group_list", {"Limit": 2})
    assert first["TotalCount"] == 5 and [g["GroupId"] for g in first["GroupIdList"]] == ["g0", "g1"]
    assert first["Next"] > 2**53
    second = tencent.ok(
        "group_open_http_svc/get_appid_group_list", {"Limit": 3, "Next": first["Next"]}
    )
    assert [g["GroupId"] for g in second["GroupIdList"]] == ["g2", "g3", "g4"] and second[
        "Next"
    ] == 0
    typed = tencent.ok("group_open_http_svc/get_appid_group_list", {"GroupType": "Community"})
    assert typed["TotalCount"] == 1 and typed["Next"] == 0


def test_group_info_per_group_errors_and_filter(tencent):
    state = tencent.server.state
    for user in ("o", "m"):
        state.add_account(user)
    state.add_group(
        "g1",
        "o",
        Name="one",
        members=[{"Member_Account": "m", "MuteUntil": 1900000000}],
        AppDefinedData={"k": "v"},
    )
    state.add_group("g2", "o")
    state.destroy_group("g2")
    reply = tencent.ok("group_open_http_svc/get_group_info", {"GroupIdList": ["g1", "g2"]})
    one, gone = reply["GroupInfo"]
    assert (one["ErrorCode"], one["Name"], one["Owner_Account"], one["MemberNum"]) == (
        0,
        "one",
        "o",
        2,
    )
    assert one["AppDefinedData"] == [{"Key": "k", "Value": "v"}]
    assert [(m["Member_Account"], m["Role"], m["ShutUpUntil"]) for m in one["MemberList"]] == [
        ("o", "Owner", 0),
        ("m", "Member", 1900000000),
    ]
    assert (gone["GroupId"], gone["ErrorCode"]) == ("g2", 10010)
    filtered = tencent.ok(
        "group_open_http_svc/get_group_info",
        {
            "GroupIdList": ["g1"],
            "ResponseFilter": {"MemberInfoFilter": [], "AppDefinedDataFilter_GroupMember": []},
        },
    )["GroupInfo"][0]
    assert "MemberList" not in filtered and filtered["Name"] == "one"
    assert (
        tencent.call(
            "group_open_http_svc/get_group_info", {"GroupIdList": [f"g{i}" for i in range(51)]}
        )["ErrorCode"]
        == 10004
    )


def test_group_members_pages(tencent):
    state = tencent.server.state
    state.add_account("o")
    names = [f"m{i}" for i in range(5)]
    state.add_group(
        "pub", "o", members=[{"Member_Account": n, "NameCard": n.upper()} for n in names]
    )
    state.add_group("com", "o", Type="Community", members=names)
    state.add_group("live", "o", Type="AVChatRoom")
    body = {"GroupId": "pub", "Limit": 4, "Offset": 4}
    reply = tencent.ok("group_open_http_svc/get_group_member_info", body)
    assert reply["MemberNum"] == 6 and [m["Member_Account"] for m in reply["MemberList"]] == [
        "m3",
        "m4",
    ]
    assert (
        "Next" not in reply
        and reply["MemberList"][0]["NameCard"] == "M3"
        and reply["MemberList"][0]["MuteUntil"] == 0
    )
    everyone = tencent.ok("group_open_http_svc/get_group_member_info", {"GroupId": "pub"})
    assert len(everyone["MemberList"]) == 6
    seen, cursor = [], ""
    for _ in range(4):
        reply = tencent.ok(
            "group_open_http_svc/get_group_member_info",
            {"GroupId": "com", "Limit": 4, "Next": cursor},
        )
        seen += [m["Member_Account"] for m in reply["MemberList"]]
        cursor = reply["Next"]
        if not cursor:
            break
    assert seen == ["o", *names] and cursor == ""
    assert (
        tencent.call("group_open_http_svc/get_group_member_info", {"GroupId": "live"})["ErrorCode"]
        == 10007
    )
    assert (
        tencent.call("group_open_http_svc/get_group_member_info", {"GroupId": "nope"})["ErrorCode"]
        == 10010
    )


# -- Tencent: relations and presence -----------------------------------------------------------------


def test_friend_get_pages(tencent):
    tencent.server.friend_page_size = 2
    state = tencent.server.state
    for user in ("a", "b", "c", "d"):
        state.add_account(user)
    for friend in ("b", "c", "d"):
        state.add_friend(
            "a", friend, Tag_SNS_IM_Remark=f"r-{friend}", Tag_SNS_IM_AddTime=1700000000
        )
    first = tencent.ok("sns/friend_get", {"From_Account": "a", "StartIndex": 0})
    assert (first["CompleteFlag"], first["NextStartIndex"], first["FriendNum"]) == (0, 2, 3)
    values = {v["Tag"]: v["Value"] for v in first["UserDataItem"][0]["ValueItem"]}
    assert values["Tag_SNS_IM_Remark"] == "r-b" and values["Tag_SNS_IM_AddTime"] == 1700000000
    last = tencent.ok("sns/friend_get", {"From_Account": "a", "StartIndex": 2})
    assert (last["CompleteFlag"], last["NextStartIndex"]) == (1, 0)
    assert [i["To_Account"] for i in last["UserDataItem"]] == ["d"]
    same = tencent.ok(
        "sns/friend_get",
        {"From_Account": "a", "StartIndex": 0, "StandardSequence": first["StandardSequence"]},
    )
    assert same["UserDataItem"][0]["ValueItem"] == []
    assert (
        tencent.call("sns/friend_get", {"From_Account": "ghost", "StartIndex": 0})["ErrorCode"]
        == 30003
    )
    listed = tencent.ok(
        "sns/friend_get_list",
        {"From_Account": "a", "To_Account": ["b", "a"], "TagList": ["Tag_SNS_IM_Remark"]},
    )
    assert listed["InfoItem"][0]["SnsProfileItem"] == [{"Tag": "Tag_SNS_IM_Remark", "Value": "r-b"}]
    assert listed["Fail_Account"] == ["a"]


def test_black_list_get_pages(tencent):
    state = tencent.server.state
    for user in ("a", "b", "c", "d"):
        state.add_account(user)
    for i, blocked in enumerate("bcd"):
        state.add_black("a", blocked, AddBlackTimeStamp=1700000000 + i)
    body = {"From_Account": "a", "StartIndex": 0, "MaxLimited": 2, "LastSequence": 0}
    first = tencent.ok("sns/black_list_get", body)
    assert first["BlackListItem"] == [
        {"To_Account": "b", "AddBlackTimeStamp": 1700000000},
        {"To_Account": "c", "AddBlackTimeStamp": 1700000001},
    ]
    assert first["StartIndex"] == 2 and first["CurruentSequence"] == 3
    last = tencent.ok("sns/black_list_get", {**body, "StartIndex": 2})
    assert [b["To_Account"] for b in last["BlackListItem"]] == ["d"] and last["StartIndex"] == 0
    assert tencent.call("sns/black_list_get", {"From_Account": "a"})["ErrorCode"] == 30001


def test_tencent_online_status(tencent):
    state = tencent.server.state
    for user in ("a", "b"):
        state.add_account(user)
    state.set_online("a", status="Online", platforms=[("iPhone", "PushOnline"), ("Web", "Online")])
    reply = tencent.ok(
        "openim/query_online_status", {"To_Account": ["a", "b", "ghost"], "IsNeedDetail": 1}
    )
    assert reply["QueryResult"] == [
        {
            "To_Account": "a",
            "Status": "Online",
            "Detail": [
                {"Platform": "iPhone", "Status": "PushOnline"},
                {"Platform": "Web", "Status": "Online"},
            ],
        },
        {"To_Account": "b", "Status": "Offline"},
    ]
    assert reply["ErrorList"] == [{"To_Account": "ghost", "ErrorCode": 70107}]
    old = tencent.ok("openim/querystate", {"To_Account": ["a"]})
    assert old["QueryResult"] == [{"To_Account": "a", "State": "Online"}]
    assert (
        tencent.call("openim/query_online_status", {"To_Account": [f"u{i}" for i in range(501)]})[
            "ErrorCode"
        ]
        == 90011
    )


# -- side channel and command line ------------------------------------------------------------------


def test_side_channel_in_process(openim):
    http = openim.http
    reply = http.post(
        "/__fake__/state", json={"call": "add_user", "args": ["zed"], "kwargs": {"nickname": "Zed"}}
    )
    assert reply.json() == {"result": None}
    assert "zed" in openim.server.state.users
    openim.data("/user/get_users", page(1, 1))
    assert http.get("/__fake__/requests").json()["/user/get_users"] == 1
    assert http.post("/__fake__/state", json={"call": "expire_tokens"}).status_code == 200
    assert openim.call("/user/get_users", page(1, 1))["errCode"] == 1501
    assert http.post("/__fake__/state", json={"call": "_tokens"}).status_code == 400
    assert http.post("/__fake__/reset_counts").json() == {}
    assert http.get("/__fake__/requests").json() == {}


def start_cli(module, *args):
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    line = process.stdout.readline()
    assert line.startswith("listening on http://127.0.0.1:"), line + process.stderr.read()
    return process, line.split()[-1]


def stop_cli(process):
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_openim_cli_and_side_channel():
    process, url = start_cli(
        "openim_sync.testing.fake_openim",
        "--populate",
        "users=20,groups=3,members=9,friends=6",
        "--version",
        "3.8.0",
    )
    try:
        http = httpx.Client(base_url=url, timeout=10)
        token = http.post(
            "/auth/user_token",
            json={"secret": "openIM123", "platformID": 10, "userID": "openim-sync"},
            headers={"operationID": "x"},
        ).json()["data"]["token"]
        headers = {"operationID": "x", "token": token}
        listed = http.post(
            "/group/get_group_member_list",
            json={"groupID": "g0001", **page(1, 50)},
            headers=headers,
        ).json()
        member = listed["data"]["members"][-1]["userID"]
        command = {
            "call": "update_member",
            "args": ["g0001", member],
            "kwargs": {"nickname": "via side channel"},
        }
        assert http.post("/__fake__/state", json=command).json() == {"result": None}
        info = http.post(
            "/group/get_group_members_info",
            json={"groupID": "g0001", "userIDs": [member]},
            headers=headers,
        ).json()
        assert info["data"]["members"][0]["nickname"] == "via side channel"
        assert http.get("/__fake__/requests").json() == {
            "/auth/user_token": 1,
            "/group/get_group_member_list": 1,
            "/group/get_group_members_info": 1,
        }
        http.post("/__fake__/reset_counts")
        assert http.get("/__fake__/requests").json() == {}
        http.close()
    finally:
        stop_cli(process)


def test_tencent_cli():
    process, url = start_cli(
        "openim_sync.testing.fake_tencent", "--populate", "users=10,groups=2,members=4,friends=4"
    )
    try:
        params = {
            "sdkappid": SDKAPPID,
            "identifier": "administrator",
            "usersig": make_usersig(SDKAPPID, KEY, "administrator", 86400, int(time.time())),
            "random": 1,
            "contenttype": "json",
        }
        reply = httpx.post(
            f"{url}/v4/group_open_http_svc/get_appid_group_list", params=params, content="{}"
        ).json()
        assert [g["GroupId"] for g in reply["GroupIdList"]] == ["g0001", "g0002"]
        command = {"call": "destroy_group", "args": ["g0002"]}
        assert httpx.post(f"{url}/__fake__/state", json=command).json() == {"result": None}
        info = httpx.post(
            f"{url}/v4/group_open_http_svc/get_group_info",
            params=params,
            json={"GroupIdList": ["g0002"]},
        ).json()
        assert info["GroupInfo"][0]["ErrorCode"] == 10010
        assert httpx.get(f"{url}/__fake__/requests").json() == {
            "v4/group_open_http_svc/get_appid_group_list": 1,
            "v4/group_open_http_svc/get_group_info": 1,
        }
    finally:
        stop_cli(process)
