"""Concurrency on a live (threaded) server: parallel, shuffled deliveries end in the newest state.

Every delivery carries its own version (Tencent ``EventTime``, OpenIM ``seq``) so "newest" is
defined whatever order the server happens to apply them in. On PostgreSQL through pytest-django's
live server; on SQLite through the example project in its own process on a database file (the
pytest SQLite database is in memory, and its live server shares one connection between threads).
"""

import http.client
import json
import os
import random
import sqlite3
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
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
from tests.helpers import SDKAPPID, TOKEN, go_json, live_process, run_or_fail, tencent_query

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


FRIEND_PAIRS = [
    ("user-0", "user-1"),
    ("user-1", "user-0"),
    ("user-0", "user-2"),
    ("user-2", "user-3"),
    ("user-3", "user-4"),
    ("user-4", "user-0"),
]


def build_deliveries(rng, scale=1.0):
    """Shuffled deliveries over 5 users, 4 sessions, 6 memberships and 6 friendships."""

    def n(count):
        return max(2, int(count * scale))

    deliveries = []
    for index in range(5):
        deliveries += user_events(rng, f"user-{index}", n(130))
    for index in range(4):
        deliveries += session_events(rng, f"user-{index}", n(110))
    for group in ("@TGS#race-a", "@TGS#race-b"):
        for index in range(3):
            deliveries += member_events(rng, group, f"user-{index}", n(80))
    for owner, friend in FRIEND_PAIRS:
        deliveries += friend_events(rng, owner, friend, n(75))
    number(deliveries)
    rng.shuffle(deliveries)
    return deliveries


def expected_state(deliveries):
    def of(prefix):
        return newest(d for d in deliveries if d.command.startswith(prefix))

    return {
        "users": {
            user: (
                f["nickname"],
                f.get("self_signature", ""),
                f.get("custom.Tag_Profile_Custom_Mood"),
            )
            for (user,), f in of("Profile.").items()
        },
        "sessions": {user: f["online"] for (user,), f in of("callbackAfterUser").items()},
        "members": {
            key: (f["present"], f.get("role_level"), f.get("nickname", ""))
            for key, f in of("Group.").items()
        },
        "friends": {key: f["present"] for key, f in of("Sns.").items()},
        "events": Counter(d.operation_id for d in deliveries),
        "statuses": {EventStatus.PROCESSED},
    }


def mirror_state():
    """The same shape as :func:`expected_state`, read through the ORM."""
    return {
        "users": {
            u.user_id: (u.nickname, u.self_signature, u.custom.get("Tag_Profile_Custom_Mood"))
            for u in ImUser.objects.all()
        },
        "sessions": {
            s.user_id: s.online
            for s in OnlineSession.objects.filter(platform="Web", conn_id="conn-1")
        },
        "members": {
            (m.group_id, m.user_id): (m.removed_at is None, m.role_level, m.nickname)
            for m in GroupMember.objects.all()
        },
        "friends": {
            (f.owner_user_id, f.friend_user_id): f.removed_at is None for f in Friend.objects.all()
        },
        "events": Counter(CallbackEvent.objects.values_list("operation_id", flat=True)),
        "statuses": set(CallbackEvent.objects.values_list("status", flat=True)),
    }


@pytest.mark.slow
def test_parallel_shuffled_deliveries_end_in_newest_state(server):
    deliveries = build_deliveries(random.Random(20261122))
    assert len(deliveries) >= 2000

    results = send_all(server.url, deliveries)

    statuses = Counter(status for status, _ in results)
    assert statuses == {200: len(deliveries)}, [r for r in results if r[0] != 200][:3]
    # The newest event per key (and per field), every delivery stored exactly once and applied.
    expected, actual = expected_state(deliveries), mirror_state()
    for part in expected:
        assert actual[part] == expected[part], part
    assert OnlineSession.objects.count() == 4
    for user in ImUser.objects.all():
        profile_versions = [
            d.version
            for d in deliveries
            if d.command.startswith("Profile.") and d.key == (user.user_id,)
        ]
        assert user.version == max(profile_versions)


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


# --- SQLite: a real host process on a database file -------------------------------------------


@pytest.fixture
def sqlite_host(tmp_path):
    """The example project in its own process (runserver, threaded) on a SQLite file.

    The pytest SQLite database is in memory and cannot be shared between threads the way a real
    deployment shares a file, so this runs the host the way it is deployed."""
    database = tmp_path / "host.sqlite3"
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(
        SQLITE_PATH=str(database),
        DJANGO_SETTINGS_MODULE="project.settings",
        OPENIM_SYNC_SECRETS="s3",
        OPENIM_SYNC_TENCENT_SDKAPPID=str(SDKAPPID),
        OPENIM_SYNC_TENCENT_TOKENS=TOKEN,
        PYTHONUNBUFFERED="1",
    )
    manage = [sys.executable, str(Path(__file__).parent.parent / "manage.py")]
    run_or_fail([*manage, "migrate", "-v0"], env=env)
    runserver = [*manage, "runserver", "--noreload", "--skip-checks", "127.0.0.1:0"]
    with live_process(runserver, env=env, log_path=tmp_path / "server.log") as url:
        yield url, database


def sqlite_state(database):
    """The same shape as :func:`expected_state`, read from the host's database file."""
    db = sqlite3.connect(database)
    try:
        users = {
            user_id: (nickname, signature, json.loads(custom).get("Tag_Profile_Custom_Mood"))
            for user_id, nickname, signature, custom in db.execute(
                "SELECT user_id, nickname, self_signature, custom FROM openim_sync_imuser"
            )
        }
        sessions = {
            user_id: bool(online)
            for user_id, online in db.execute(
                "SELECT user_id, online FROM openim_sync_onlinesession "
                "WHERE platform = 'Web' AND conn_id = 'conn-1'"
            )
        }
        members = {
            (group_id, user_id): (removed_at is None, role_level, nickname)
            for group_id, user_id, removed_at, role_level, nickname in db.execute(
                "SELECT group_id, user_id, removed_at, role_level, nickname "
                "FROM openim_sync_groupmember"
            )
        }
        friends = {
            (owner, friend): removed_at is None
            for owner, friend, removed_at in db.execute(
                "SELECT owner_user_id, friend_user_id, removed_at FROM openim_sync_friend"
            )
        }
        events = Counter(
            op for (op,) in db.execute("SELECT operation_id FROM openim_sync_callbackevent")
        )
        statuses = {s for (s,) in db.execute("SELECT status FROM openim_sync_callbackevent")}
    finally:
        db.close()
    return {
        "users": users,
        "sessions": sessions,
        "members": members,
        "friends": friends,
        "events": events,
        "statuses": statuses,
    }


@pytest.mark.slow
def test_parallel_shuffled_deliveries_on_sqlite(sqlite_host):
    base_url, database = sqlite_host
    deliveries = build_deliveries(random.Random(1122), scale=0.4)
    assert len(deliveries) >= 800

    results = send_all(base_url, deliveries)

    assert Counter(status for status, _ in results) == {200: len(deliveries)}
    expected, actual = expected_state(deliveries), sqlite_state(database)
    for part in expected:
        assert actual[part] == expected[part], part
