"""Concurrency on a live (threaded) server: parallel, shuffled deliveries end in the newest state.

Every delivery carries its own version (Tencent ``EventTime``, OpenIM ``seq``) so "newest" is
defined whatever order the server happens to apply them in. PostgreSQL only: the SQLite test
database is in memory and the live server shares one connection between its threads there.
"""

import http.client
import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import pytest

from openim_sync.models import (
    CallbackEvent,
    EventStatus,
    Friend,
    GroupMember,
    ImUser,
    OnlineSession,
)
from tests.helpers import SDKAPPID, TOKEN, go_json, tencent_query

CLIENTS = 8
ONLINE, OFFLINE = "callbackAfterUserOnlineCommand", "callbackAfterUserOfflineCommand"


@pytest.fixture
def server(postgres_only, live_server, openim_settings):
    openim_settings(TENCENT_SDKAPPID=SDKAPPID, TENCENT_TOKENS=[TOKEN], OPENIM_SECRETS=["s3"])
    return live_server


@dataclass
class Delivery:
    protocol: str
    command: str
    body: dict
    operation_id: str = ""
    #: What this delivery says, for computing the expected end state.
    key: tuple = ()
    version: int = 0
    facts: dict = field(default_factory=dict)


def request_for(delivery):
    if delivery.protocol == "openim":
        return f"/openim/callback/s3/{delivery.command}", go_json(delivery.body)
    query = tencent_query(delivery.command, token=TOKEN, request_time=int(time.time()))
    return f"/openim/tencent?{urlencode(query)}", json.dumps(delivery.body).encode()


class Client(threading.local):
    """One keep-alive HTTP connection per client thread, as Go's http.Client keeps them."""

    def __init__(self, base_url):
        self.address = urlsplit(base_url)
        self.connection = None

    def send(self, delivery):
        path, data = request_for(delivery)
        headers = {"Content-Type": "application/json", "operationID": delivery.operation_id}
        if self.connection is None:
            self.connection = http.client.HTTPConnection(
                self.address.hostname, self.address.port, timeout=60
            )
        try:
            self.connection.request("POST", path, body=data, headers=headers)
            response = self.connection.getresponse()
            body = response.read()
        except (ConnectionError, http.client.HTTPException):
            self.connection.close()
            self.connection = None
            raise
        if response.getheader("Connection", "").lower() == "close":
            self.connection.close()
            self.connection = None
        return response.status, body


def send(base_url, delivery):
    return Client(base_url).send(delivery)


def send_all(base_url, deliveries, clients=CLIENTS):
    client = Client(base_url)
    with ThreadPoolExecutor(max_workers=clients) as pool:
        return list(pool.map(client.send, deliveries))


def versions(rng, count):
    """``count`` distinct versions, so every key has exactly one newest event."""
    return rng.sample(range(1_000_000, 9_000_000), count)


def user_events(rng, user, count):
    events = []
    for version in versions(rng, count):
        items = [{"Tag": "Tag_Profile_IM_Nick", "Value": f"{user}@{version}"}]
        facts = {"nickname": f"{user}@{version}"}
        if rng.random() < 0.5:
            items.append({"Tag": "Tag_Profile_IM_SelfSignature", "Value": f"sig@{version}"})
            facts["self_signature"] = f"sig@{version}"
        if rng.random() < 0.5:
            items.append({"Tag": "Tag_Profile_Custom_Mood", "Value": f"mood@{version}"})
            facts["custom.Tag_Profile_Custom_Mood"] = f"mood@{version}"
        body = {
            "CallbackCommand": "Profile.CallbackPortraitSet",
            "From_Account": user,
            "EventTime": version,
            "ProfileItem": items,
        }
        events.append(
            Delivery("tencent", body["CallbackCommand"], body, "", (user,), version, facts)
        )
    return events


def session_events(rng, user, count):
    events = []
    for seq in versions(rng, count):
        online = rng.random() < 0.5
        body = {
            "callbackCommand": ONLINE if online else OFFLINE,
            "userID": user,
            "platformID": 5,
            "platform": "Web",
            "seq": seq,
            "connID": "conn-1",
            "isAppBackground": False,
        }
        facts = {"online": online}
        events.append(Delivery("openim", body["callbackCommand"], body, "", (user,), seq, facts))
    return events


def member_events(rng, group, user, count):
    events = []
    for version in versions(rng, count):
        kind = rng.choice(["join", "exit", "change"])
        if kind == "join":
            command = "Group.CallbackAfterNewMemberJoin"
            body = {
                "GroupId": group,
                "JoinType": "Apply",
                "NewMemberList": [{"Member_Account": user}],
            }
            facts = {"present": True, "role_level": 20}
        elif kind == "exit":
            command = "Group.CallbackAfterMemberExit"
            body = {
                "GroupId": group,
                "ExitType": "Quit",
                "ExitMemberList": [{"Member_Account": user}],
            }
            facts = {"present": False}
        else:
            command = "Group.CallbackAfterMemberFieldChanged"
            role = rng.choice(["Admin", "Member"])
            body = {
                "GroupId": group,
                "Member_Account": user,
                "Role": role,
                "NameCard": f"card@{version}",
            }
            facts = {"present": True, "role_level": 60 if role == "Admin" else 20}
            facts["nickname"] = f"card@{version}"
        body = {"CallbackCommand": command, **body, "EventTime": version}
        events.append(Delivery("tencent", command, body, "", (group, user), version, facts))
    return events


def friend_events(rng, owner, friend, count):
    events = []
    for version in versions(rng, count):
        add = rng.random() < 0.5
        command = "Sns.CallbackFriendAdd" if add else "Sns.CallbackFriendDelete"
        body = {
            "CallbackCommand": command,
            "PairList": [{"From_Account": owner, "To_Account": friend}],
            "EventTime": version,
        }
        events.append(
            Delivery("tencent", command, body, "", (owner, friend), version, {"present": add})
        )
    return events


def newest(deliveries):
    """Per key and per fact, the value from the delivery with the highest version saying it."""
    expected = {}
    for delivery in sorted(deliveries, key=lambda d: d.version):
        expected.setdefault(delivery.key, {}).update(delivery.facts)
    return expected


def number(deliveries):
    for n, delivery in enumerate(deliveries):
        delivery.operation_id = f"op-{n:05d}"
    return deliveries


@pytest.mark.slow
def test_parallel_shuffled_deliveries_end_in_newest_state(server):
    rng = random.Random(20261122)
    users = [user_events(rng, f"user-{n}", 130) for n in range(5)]
    sessions = [session_events(rng, f"user-{n}", 110) for n in range(4)]
    members = [
        member_events(rng, group, f"user-{n}", 80)
        for group in ("@TGS#race-a", "@TGS#race-b")
        for n in range(3)
    ]
    friends = [
        friend_events(rng, owner, friend, 75)
        for owner, friend in [
            ("user-0", "user-1"),
            ("user-1", "user-0"),
            ("user-0", "user-2"),
            ("user-2", "user-3"),
            ("user-3", "user-4"),
            ("user-4", "user-0"),
        ]
    ]
    groups = {"users": users, "sessions": sessions, "members": members, "friends": friends}
    deliveries = number([d for kind in groups.values() for key in kind for d in key])
    assert len(deliveries) >= 2000
    rng.shuffle(deliveries)

    results = send_all(server.url, deliveries)

    statuses = Counter(status for status, _ in results)
    assert statuses == {200: len(deliveries)}, [r for r in results if r[0] != 200][:3]
    # Every delivery stored exactly once, and applied.
    stored = Counter(CallbackEvent.objects.values_list("operation_id", flat=True))
    assert stored == Counter(d.operation_id for d in deliveries)
    assert set(CallbackEvent.objects.values_list("status", flat=True)) == {EventStatus.PROCESSED}

    for (user,), facts in newest(d for key in users for d in key).items():
        row = ImUser.objects.get(user_id=user)
        assert row.nickname == facts["nickname"]
        assert row.self_signature == facts.get("self_signature", "")
        assert row.custom.get("Tag_Profile_Custom_Mood") == facts.get(
            "custom.Tag_Profile_Custom_Mood"
        )
        assert row.version == max(d.version for key in users for d in key if d.key == (user,))

    for (user,), facts in newest(d for key in sessions for d in key).items():
        row = OnlineSession.objects.get(user_id=user, platform="Web", conn_id="conn-1")
        assert row.online is facts["online"], user

    for (group, user), facts in newest(d for key in members for d in key).items():
        row = GroupMember.objects.get(group_id=group, user_id=user)
        assert (row.removed_at is None) is facts["present"], (group, user)
        assert row.role_level == facts.get("role_level")
        assert row.nickname == facts.get("nickname", "")

    for (owner, friend), facts in newest(d for key in friends for d in key).items():
        row = Friend.objects.get(owner_user_id=owner, friend_user_id=friend)
        assert (row.removed_at is None) is facts["present"], (owner, friend)

    assert ImUser.objects.count() == 5
    assert OnlineSession.objects.count() == 4
    assert GroupMember.objects.count() == 6
    assert Friend.objects.count() == 6


@pytest.mark.slow
def test_parallel_first_inserts_of_the_same_key(server):
    """Many deliveries create the same new rows at the same instant: one row each, no 5xx."""
    rng = random.Random(7)
    rounds, width = 6, 16
    for round_ in range(rounds):
        user, group, owner = f"new-user-{round_}", f"@TGS#new-{round_}", f"owner-{round_}"
        batch = []
        for version in versions(rng, width):
            kind = rng.choice(["profile", "join", "friend"])
            if kind == "profile":
                batch.extend(user_events(random.Random(version), user, 1))
            elif kind == "join":
                batch.extend(member_events(random.Random(version), group, user, 1))
            else:
                batch.extend(friend_events(random.Random(version), owner, user, 1))
        number(batch)
        for delivery in batch:
            delivery.operation_id = f"r{round_}-{delivery.operation_id}"
        gate = threading.Barrier(len(batch))

        def go(delivery, gate=gate):
            gate.wait()
            return send(server.url, delivery)

        with ThreadPoolExecutor(max_workers=len(batch)) as pool:
            results = list(pool.map(go, batch))
        assert [status for status, _ in results] == [200] * len(batch), results
        assert ImUser.objects.filter(user_id=user).count() <= 1
        assert GroupMember.objects.filter(group_id=group, user_id=user).count() <= 1
        assert Friend.objects.filter(owner_user_id=owner, friend_user_id=user).count() <= 1

        for (*_key,), facts in newest(d for d in batch if d.command.startswith("Profile")).items():
            assert ImUser.objects.get(user_id=user).nickname == facts["nickname"]
        member_facts = newest(d for d in batch if d.command.startswith("Group")).get((group, user))
        if member_facts:
            row = GroupMember.objects.get(group_id=group, user_id=user)
            assert (row.removed_at is None) is member_facts["present"]

    assert (
        CallbackEvent.objects.count()
        == CallbackEvent.objects.filter(status=EventStatus.PROCESSED).count()
    )
