"""Faults: the database goes away under a live server; a handler raises.

The database outage is real: the live server's connections go through a small TCP proxy on
127.0.0.1 that the test cuts and restores (the PostgreSQL server itself keeps running for others).
"""

import contextlib
import json
import select
import socket
import sqlite3
import threading
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework import serializers

from openim_sync.callbacks import registry
from openim_sync.changes import Change
from openim_sync.models import CallbackEvent, EventStatus, GroupMember, ImUser
from tests.helpers import SDKAPPID, TOKEN, go_json, post_openim, post_tencent, tencent_query

UPDATE = "callbackAfterUpdateUserInfoCommand"


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the database; ``cut()`` drops every connection (and every new
    one) until ``restore()``."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.lock = threading.Lock()
        self.sockets = set()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.update((client, server))
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()

    def _pipe(self, client, server):
        pair = [client, server]
        try:
            while self.up.is_set():
                readable, _, _ = select.select(pair, [], [], 0.1)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (server if sock is client else client).sendall(data)
        except OSError:
            return
        finally:
            for sock in pair:
                with self.lock:
                    self.sockets.discard(sock)
                sock.close()

    def cut(self):
        self.up.clear()
        with self.lock:
            sockets = list(self.sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def restore(self):
        self.up.set()

    def close(self):
        self.closed = True
        self.cut()
        self.listener.close()


@pytest.fixture
def db_through_proxy(postgres_only, live_server):
    """Point every new connection of this process (the live server's threads) at the proxy."""
    connection.ensure_connection()  # the test thread keeps its direct connection
    settings_dict = connection.settings_dict
    original = settings_dict["HOST"], settings_dict["PORT"]
    proxy = TcpProxy((original[0] or "127.0.0.1", int(original[1] or 5432)))
    settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", str(proxy.port)
    try:
        yield proxy
    finally:
        settings_dict["HOST"], settings_dict["PORT"] = original
        proxy.close()


@pytest.fixture
def throwaway_command():
    """Register a command through the public registry for one test, then remove it."""
    registered = []

    def register(protocol, name, handler, serializer, version_field=None):
        registry.handles(protocol, name, serializer=serializer, version_field=version_field)(
            handler
        )
        registered.append((protocol, name))

    yield register
    for key in registered:
        registry._registry.pop(key, None)


class UserSerializer(serializers.Serializer):
    userID = serializers.CharField()
    nickName = serializers.CharField(required=False)


def post(url, body, headers=None):
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def openim_url(live_server, command):
    return f"{live_server.url}/openim/callback/{command}"


def tencent_url(live_server, command):
    return f"{live_server.url}/openim/tencent?{urlencode(tencent_query(command, token=TOKEN))}"


# --- the database goes away -------------------------------------------------------------------


def test_database_outage_503_then_recovery(db_through_proxy, live_server, openim_settings):
    openim_settings(TENCENT_SDKAPPID=SDKAPPID, TENCENT_TOKENS=[TOKEN])
    proxy = db_through_proxy
    user = {"callbackCommand": UPDATE, "userID": "u1", "nickName": "before"}
    assert post(openim_url(live_server, UPDATE), go_json(user)) == (
        200,
        {"actionCode": 0, "errCode": 0, "errMsg": "", "errDlt": "", "nextCode": 0},
    )

    proxy.cut()
    during = {**user, "nickName": "during the outage"}
    status, body = post(openim_url(live_server, UPDATE), go_json(during))
    assert status == 503
    assert body["actionCode"] == 1 and body["errCode"] == 503 and body["nextCode"] == 0
    assert body["errMsg"].startswith("The database is unavailable (")

    portrait = {
        "CallbackCommand": "Profile.CallbackPortraitSet",
        "From_Account": "u1",
        "EventTime": 1,
        "ProfileItem": [{"Tag": "Tag_Profile_IM_Nick", "Value": "tencent during"}],
    }
    status, body = post(
        tencent_url(live_server, "Profile.CallbackPortraitSet"), json.dumps(portrait).encode()
    )
    assert status == 503
    assert body["ActionStatus"] == "FAIL" and body["ErrorCode"] == 1
    assert "The database is unavailable" in body["ErrorInfo"]

    # Nothing was written: one event (the first), the mirror as before.
    assert CallbackEvent.objects.count() == 1
    assert ImUser.objects.get(user_id="u1").nickname == "before"

    # The database comes back: the receiver recovers by itself, no restart.
    proxy.restore()
    after = {**user, "nickName": "after"}
    assert post(openim_url(live_server, UPDATE), go_json(after))[0] == 200
    assert ImUser.objects.get(user_id="u1").nickname == "after"
    assert list(CallbackEvent.objects.values_list("status", flat=True)) == ["processed"] * 2


def test_outage_during_processing_leaves_no_half_written_state(
    db_through_proxy, live_server, throwaway_command
):
    """The connection dies while the delivery is being handled: the event INSERT and the mirror
    writes share one transaction, so nothing at all is left (no event stuck in 'received', no
    half-written mirror), the server is told 503, and the next delivery works by itself."""
    proxy = db_through_proxy
    command = "callbackTestOutageMidwayCommand"
    outage = {"on": True}

    def handler(data, ctx):
        if outage["on"]:
            proxy.cut()
        user_id = data["userID"]
        return [
            Change(ImUser, {"user_id": user_id}, {"nickname": data["nickName"]}),
            Change(GroupMember, {"group_id": "g1", "user_id": user_id}, {"role_level": 60}),
        ]

    throwaway_command("openim", command, handler, UserSerializer)
    body = go_json({"callbackCommand": command, "userID": "u1", "nickName": "Ann"})
    status, reply = post(openim_url(live_server, command), body)
    assert status == 503
    assert "The database is unavailable" in reply["errMsg"]

    assert not CallbackEvent.objects.exists()
    assert ImUser.objects.count() == 0 and GroupMember.objects.count() == 0

    proxy.restore()
    outage["on"] = False
    status, reply = post(openim_url(live_server, command), body)
    assert (status, reply["errCode"]) == (200, 0)
    event = CallbackEvent.objects.get()
    assert (event.status, event.attempts) == (EventStatus.PROCESSED, 1)
    assert ImUser.objects.get(user_id="u1").nickname == "Ann"
    assert GroupMember.objects.get(group_id="g1", user_id="u1").role_level == 60


# --- a handler raises -------------------------------------------------------------------------


@pytest.fixture
def broken_handler(throwaway_command):
    """A command whose handler writes two rows but (while ``state['broken']``) gives the second
    an impossible value, so the first row is written before the failure."""
    state = {"broken": True}

    def handler(data, ctx):
        role = "not-a-number" if state["broken"] else 60
        user_id = data["userID"]
        return [
            Change(ImUser, {"user_id": user_id}, {"nickname": data["nickName"]}),
            Change(GroupMember, {"group_id": "g1", "user_id": user_id}, {"role_level": role}),
        ]

    throwaway_command("openim", "callbackTestBrokenCommand", handler, UserSerializer)
    throwaway_command("tencent", "Test.CallbackBroken", handler, UserSerializer)
    return state


@pytest.mark.django_db
def test_handler_failure_is_kept_replied_and_replayed(client, broken_handler):
    command = "callbackTestBrokenCommand"
    post_openim(client, f"/{UPDATE}", {"callbackCommand": UPDATE, "userID": "u1", "nickName": "A"})

    response = post_openim(
        client, f"/{command}", {"callbackCommand": command, "userID": "u1", "nickName": "B"}
    )
    assert response.status_code == 500
    body = response.json()
    assert body["actionCode"] == 1 and body["errCode"] == 500
    assert body["errMsg"].startswith("ValueError: Field 'role_level' expected a number")

    event = CallbackEvent.objects.get(command=command)
    assert event.status == EventStatus.FAILED
    assert event.reason == body["errMsg"]
    assert "Traceback (most recent call last)" in event.traceback
    assert "ValueError" in event.traceback
    # The user row was written before the failure and rolled back with it: not half-updated.
    assert ImUser.objects.get(user_id="u1").nickname == "A"
    assert GroupMember.objects.count() == 0

    # Replaying before the fix: still failed, and the command says so (non-zero exit).
    with pytest.raises(CommandError, match=r"1 event\(s\) still failed"):
        call_command("openim_replay", verbosity=0)
    event.refresh_from_db()
    assert (event.status, event.attempts) == (EventStatus.FAILED, 2)

    # Fix the cause, replay: applied through the same pipeline.
    broken_handler["broken"] = False
    call_command("openim_replay", verbosity=0)
    event.refresh_from_db()
    assert event.status == EventStatus.PROCESSED
    assert (event.reason, event.traceback, event.attempts) == ("", "", 3)
    assert ImUser.objects.get(user_id="u1").nickname == "B"
    assert GroupMember.objects.get(group_id="g1", user_id="u1").role_level == 60
    assert ImUser.objects.get(user_id="u1").last_event_id == event.pk


@pytest.mark.django_db
def test_handler_failure_tencent_envelope(client, openim_settings, broken_handler):
    openim_settings(TENCENT_SDKAPPID=SDKAPPID, TENCENT_TOKENS=[TOKEN])
    body = {"CallbackCommand": "Test.CallbackBroken", "userID": "t1", "nickName": "T"}
    response = post_tencent(client, body, token=TOKEN)
    assert response.status_code == 500
    reply = response.json()
    assert reply["ActionStatus"] == "FAIL" and reply["ErrorCode"] == 1
    assert reply["ErrorInfo"].startswith("ValueError:")
    assert CallbackEvent.objects.get().status == EventStatus.FAILED
    assert ImUser.objects.count() == 0

    broken_handler["broken"] = False
    call_command("openim_replay", verbosity=0)
    assert ImUser.objects.get(user_id="t1").nickname == "T"


@pytest.mark.django_db
def test_handler_exception_before_writing(client, throwaway_command):
    def handler(data, ctx):
        raise KeyError("missingKey")

    throwaway_command("openim", "callbackTestKeyErrorCommand", handler, UserSerializer)
    response = post_openim(
        client,
        "/callbackTestKeyErrorCommand",
        {"callbackCommand": "callbackTestKeyErrorCommand", "userID": "u9"},
    )
    assert response.status_code == 500
    assert response.json()["errMsg"] == "KeyError: 'missingKey'"
    event = CallbackEvent.objects.get()
    assert event.status == EventStatus.FAILED
    assert "raise KeyError" in event.traceback


# --- SQLite: the database file is locked by someone else ------------------------------------

SQLITE_SETTINGS = """
from project.settings import *  # noqa: F403

DATABASES["default"]["OPTIONS"]["timeout"] = 0.5  # give up on a locked file quickly
"""


def test_sqlite_locked_database_503_then_recovery(tmp_path):
    """A host on a SQLite file; another process holds an exclusive lock (a backup, a migration):
    503 with the envelope and nothing stored; once the lock is gone the next delivery works."""
    from tests.test_integration_host import request, run_host

    (tmp_path / "sqlite_host_settings.py").write_text(SQLITE_SETTINGS)
    with run_host(tmp_path, "sqlite_host_settings") as host:
        body = go_json({"callbackCommand": UPDATE, "userID": "s1", "nickName": "one"})
        assert request(host, f"/openim/callback/{UPDATE}", body)[0] == 200

        locker = sqlite3.connect(host["database"], isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            body = go_json({"callbackCommand": UPDATE, "userID": "s1", "nickName": "two"})
            status, _, reply = request(host, f"/openim/callback/{UPDATE}", body)
            assert status == 503
            reply = json.loads(reply)
            assert reply["errCode"] == 503 and reply["nextCode"] == 0
            assert reply["errMsg"] == "The database is unavailable (OperationalError)."
        finally:
            locker.execute("ROLLBACK")
            locker.close()

        body = go_json({"callbackCommand": UPDATE, "userID": "s1", "nickName": "three"})
        assert request(host, f"/openim/callback/{UPDATE}", body)[0] == 200
        with sqlite3.connect(host["database"]) as db:
            assert db.execute("SELECT nickname FROM openim_sync_imuser").fetchall() == [("three",)]
            events = db.execute("SELECT status FROM openim_sync_callbackevent").fetchall()
        assert events == [("processed",), ("processed",)]
