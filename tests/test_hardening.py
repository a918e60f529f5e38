"""One request each: inputs that used to crash the receiver or get a reply that is not the
protocol's envelope (issue 13). Every delivery goes through HTTP (Django's test client)."""

import http.client
import io
import json
import os
import sqlite3
import sys
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from openim_sync.models import (
    BlockedUser,
    CallbackEvent,
    EventStatus,
    Friend,
    GroupMember,
    ImGroup,
    ImUser,
    OnlineSession,
)
from tests.helpers import (
    OPENIM_CONTENT_TYPE,
    SDKAPPID,
    TOKEN,
    go_json,
    live_process,
    post_openim,
    run_or_fail,
    sample,
    tencent_query,
)

pytestmark = pytest.mark.django_db

MIRROR = (ImUser, ImGroup, GroupMember, Friend, BlockedUser, OnlineSession)
INT32_MAX, INT64_MAX = 2**31 - 1, 2**63 - 1


@pytest.fixture(autouse=True)
def tencent_on(openim_settings):
    openim_settings(TENCENT_SDKAPPID=SDKAPPID, TENCENT_TOKENS=[TOKEN])


def changed(body, path, value):
    """A deep copy of ``body`` with the item at ``path`` (keys and list indexes) set to
    ``value``."""
    body = json.loads(json.dumps(body))
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return body


def deliver(client, protocol, command, body):
    if protocol == "openim":
        return post_openim(client, f"/{command}", body)
    url = f"/openim/tencent?{urlencode(tencent_query(command, token=TOKEN))}"
    return client.generic("POST", url, json.dumps(body), content_type="application/json")


def error_message(protocol, response):
    """The envelope's message, after checking that the reply is the protocol's error envelope."""
    assert response["Content-Type"] == "application/json", response.content
    reply = response.json()
    if protocol == "openim":
        assert (reply["actionCode"], reply["errCode"]) == (1, response.status_code), reply
        assert reply["nextCode"] == 0
        return reply["errMsg"]
    assert (reply["ActionStatus"], reply["ErrorCode"]) == ("FAIL", 1), reply
    return reply["ErrorInfo"]


def assert_rejected(protocol, response, field):
    assert response.status_code == 400, response.content
    message = error_message(protocol, response)
    assert message.startswith(f"{field}: "), message
    event = CallbackEvent.objects.get()
    assert event.status == EventStatus.REJECTED
    assert event.reason == message
    assert all(not model.objects.exists() for model in MIRROR)


# --- integers the column cannot hold --------------------------------------------------------

#: (command, path in its sample): every integer of a sample stored in a 32-bit column.
INT32_FIELDS = [
    ("callbackAfterSetGroupMemberInfoCommand", ("roleLevel",)),
    ("callbackAfterJoinGroupCommand", ("joinSource",)),
    ("callbackAfterSetGroupInfoCommand", ("needVerification",)),
    ("callbackAfterSetGroupInfoExCommand", ("lookMemberInfo",)),
    ("callbackAfterSetGroupInfoExCommand", ("applyMemberFriend",)),
    ("callbackAfterCreateGroupCommand", ("status",)),
    ("callbackAfterCreateGroupCommand", ("needVerification",)),
    ("callbackAfterCreateGroupCommand", ("initMemberList", 1, "roleLevel")),
    ("callbackAfterUserOnlineCommand", ("platformID",)),
    ("callbackAfterUserOfflineCommand", ("platformID",)),
    ("callbackAfterUserRegisterCommand", ("users", 0, "appMangerLevel")),
    ("callbackAfterUserRegisterCommand", ("users", 1, "globalRecvMsgOpt")),
]
#: The same for 64-bit columns (times, versions, Tencent's numeric profile tags).
INT64_FIELDS = [
    ("openim", "callbackAfterCreateGroupCommand", ("createTime",)),
    ("openim", "callbackAfterUserRegisterCommand", ("users", 0, "createTime")),
    ("openim", "callbackAfterUserOnlineCommand", ("seq",)),
    ("tencent", "Group.CallbackAfterCreateGroup", ("EventTime",)),
    ("tencent", "State.StateChange", ("EventTime",)),
]


def case_id(value):
    return label(value) if isinstance(value, tuple) else str(value)


def label(path):
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)[1:]


@pytest.mark.parametrize("value", [INT32_MAX + 1, -(2**31) - 1, INT64_MAX])
@pytest.mark.parametrize(("command", "path"), INT32_FIELDS, ids=case_id)
def test_integer_beyond_a_32_bit_column_is_400(client, command, path, value):
    body = changed(sample("openim", command), path, value)
    assert_rejected("openim", deliver(client, "openim", command, body), label(path))


@pytest.mark.parametrize(("command", "path"), INT32_FIELDS, ids=case_id)
def test_the_largest_32_bit_integer_is_stored(client, command, path):
    body = changed(sample("openim", command), path, INT32_MAX)
    response = deliver(client, "openim", command, body)
    assert response.status_code == 200, response.content
    assert CallbackEvent.objects.get().status == EventStatus.PROCESSED


@pytest.mark.parametrize("value", [INT64_MAX + 1, 2**64])
@pytest.mark.parametrize(("protocol", "command", "path"), INT64_FIELDS, ids=case_id)
def test_integer_beyond_a_64_bit_column_is_400(client, protocol, command, path, value):
    body = changed(sample(protocol, command), path, value)
    assert_rejected(protocol, deliver(client, protocol, command, body), label(path))


def test_profile_tag_beyond_its_64_bit_column_is_400(client):
    body = sample("tencent", "Profile.CallbackPortraitSet")
    body["ProfileItem"] = [{"Tag": "Tag_Profile_IM_Level", "Value": INT64_MAX + 1}]
    response = deliver(client, "tencent", "Profile.CallbackPortraitSet", body)
    assert_rejected("tencent", response, "ProfileItem[0].Value")


# --- null items in lists --------------------------------------------------------------------

LISTS = [
    ("openim", "callbackAfterCreateGroupCommand", "initMemberList"),
    ("openim", "callbackAfterUserRegisterCommand", "users"),
    ("openim", "callbackAfterKickGroupCommand", "kickedUserIDs"),
    ("openim", "callbackAfterImportFriendsCommand", "friendUserIDs"),
    ("openim", "callbackAfterDisMissGroupCommand", "membersID"),
    ("tencent", "Group.CallbackAfterCreateGroup", "MemberList"),
    ("tencent", "Group.CallbackAfterCreateGroup", "UserDefinedDataList"),
    ("tencent", "Group.CallbackAfterGroupDestroyed", "MemberList"),
    ("tencent", "Group.CallbackAfterNewMemberJoin", "NewMemberList"),
    ("tencent", "Group.CallbackAfterMemberExit", "ExitMemberList"),
    ("tencent", "State.StateChange", "KickedDevice"),
    ("tencent", "Profile.CallbackPortraitSet", "ProfileItem"),
    ("tencent", "Sns.CallbackFriendAdd", "PairList"),
]


@pytest.mark.parametrize(("protocol", "command", "key"), LISTS, ids=case_id)
def test_null_item_in_a_list_is_400(client, protocol, command, key):
    body = sample(protocol, command)
    body[key] = [*(body.get(key) or [])[:1], None]
    index = len(body[key]) - 1
    assert_rejected(protocol, deliver(client, protocol, command, body), f"{key}[{index}]")


@pytest.mark.parametrize(
    ("protocol", "command", "key"),
    [
        ("openim", "callbackAfterCreateGroupCommand", "initMemberList"),
        ("tencent", "Group.CallbackAfterGroupDestroyed", "MemberList"),
        ("tencent", "State.StateChange", "KickedDevice"),
    ],
    ids=case_id,
)
def test_a_null_list_is_still_no_list(client, protocol, command, key):
    response = deliver(client, protocol, command, {**sample(protocol, command), key: None})
    assert response.status_code == 200, response.content
    assert CallbackEvent.objects.get().status == EventStatus.PROCESSED


# --- ids are strings ------------------------------------------------------------------------

NUMBERS = [12, 2**64, 1.5]
IDS = [
    ("openim", "callbackAfterUpdateUserInfoCommand", ("userID",)),
    ("openim", "callbackAfterSetGroupMemberInfoCommand", ("groupID",)),
    ("openim", "callbackAfterCreateGroupCommand", ("ownerUserID",)),
    ("openim", "callbackAfterCreateGroupCommand", ("initMemberList", 0, "userID")),
    ("openim", "callbackAfterJoinGroupCommand", ("inviterUserID",)),
    ("openim", "callbackAfterKickGroupCommand", ("kickedUserIDs", 0)),
    ("openim", "callbackAfterImportFriendsCommand", ("friendUserIDs", 0)),
    ("openim", "callbackAfterTransferGroupOwnerCommand", ("oldOwnerUserID",)),
    ("openim", "callbackAfterUserRegisterCommand", ("users", 1, "userID")),
    ("tencent", "Profile.CallbackPortraitSet", ("From_Account",)),
    ("tencent", "Group.CallbackAfterCreateGroup", ("GroupId",)),
    ("tencent", "Group.CallbackAfterCreateGroup", ("Owner_Account",)),
    ("tencent", "Group.CallbackAfterCreateGroup", ("MemberList", 0, "Member_Account")),
    ("tencent", "State.StateChange", ("Info", "To_Account")),
    ("tencent", "Sns.CallbackFriendAdd", ("PairList", 0, "To_Account")),
]


@pytest.mark.parametrize("value", NUMBERS)
@pytest.mark.parametrize(("protocol", "command", "path"), IDS, ids=case_id)
def test_a_number_is_not_an_id(client, protocol, command, path, value):
    body = changed(sample(protocol, command), path, value)
    assert_rejected(protocol, deliver(client, protocol, command, body), label(path))
    assert "Not a valid string." in CallbackEvent.objects.get().reason


def test_a_number_is_not_a_text_either(client):
    body = {**sample("openim", "callbackAfterUpdateUserInfoCommand"), "nickName": 7}
    response = deliver(client, "openim", "callbackAfterUpdateUserInfoCommand", body)
    assert_rejected("openim", response, "nickName")


def test_platform_id_stays_a_number(client):
    """The one id-like number real servers send (samples/openim: platformID, an int)."""
    response = deliver(
        client,
        "openim",
        "callbackAfterUserOnlineCommand",
        sample("openim", "callbackAfterUserOnlineCommand"),
    )
    assert response.status_code == 200
    assert OnlineSession.objects.get().platform_id == 2


# --- chunked bodies -------------------------------------------------------------------------

USER = "callbackAfterUpdateUserInfoCommand"
PORTRAIT = "Profile.CallbackPortraitSet"


def post_chunked(client, body, **environ):
    """POST ``body`` as a WSGI server hands over a chunked request: no Content-Length, the
    de-chunked body in wsgi.input; gunicorn also sets wsgi.input_terminated."""
    return client.generic(
        "POST",
        f"/openim/callback/{USER}",
        content_type=OPENIM_CONTENT_TYPE,
        headers={"Transfer-Encoding": "chunked"},
        **{"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": "", **environ},
    )


def test_chunked_body_is_read(client):
    body = go_json({**sample("openim", USER), "nickName": "Chunky"})
    response = post_chunked(client, body, **{"wsgi.input_terminated": True})
    assert response.status_code == 200, response.content
    event = CallbackEvent.objects.get()
    assert (event.status, bytes(event.body)) == (EventStatus.PROCESSED, body)
    assert ImUser.objects.get().nickname == "Chunky"


def test_chunked_body_over_the_limit_is_413(client, openim_settings):
    openim_settings(MAX_BODY_BYTES=1024)
    body = go_json({**sample("openim", USER), "ex": "x" * 2000})
    response = post_chunked(client, body, **{"wsgi.input_terminated": True})
    assert response.status_code == 413
    assert "larger than the limit of 1024 bytes" in error_message("openim", response)
    assert CallbackEvent.objects.get().status == EventStatus.REJECTED
    assert not ImUser.objects.exists()


def test_chunked_body_the_server_cannot_hand_over_is_411(client):
    """Without wsgi.input_terminated, WSGI forbids reading past Content-Length: say so."""
    response = post_chunked(client, go_json(sample("openim", USER)))
    assert response.status_code == 411
    assert "wsgi.input_terminated" in error_message("openim", response)
    event = CallbackEvent.objects.get()
    assert event.status == EventStatus.REJECTED
    assert "wsgi.input_terminated" in event.reason


# --- every reply under the callback URLs is the envelope ------------------------------------


@pytest.mark.parametrize("pad", ["", "x"])  # UTF-16 decodes only an even number of bytes
def test_a_charset_in_the_content_type_does_not_decode_the_query(client, pad):
    portrait = sample("tencent", PORTRAIT)
    url = f"/openim/tencent?{urlencode(tencent_query(PORTRAIT, token=TOKEN, pad=pad))}"
    response = client.generic(
        "POST", url, json.dumps(portrait), content_type="application/json; charset=utf-16"
    )
    assert response.status_code == 200, response.content
    event = CallbackEvent.objects.get()
    assert event.status == EventStatus.PROCESSED
    assert event.query["SdkAppid"] == str(SDKAPPID)
    assert event.headers["Content-Type"] == "application/json; charset=utf-16"


def test_a_non_ascii_query_value_is_utf_8(client):
    response = post_openim(client, f"/{USER}", sample("openim", USER), query={"note": "café"})
    assert response.status_code == 200
    assert CallbackEvent.objects.get().query["note"] == "café"


@pytest.mark.parametrize("protocol", ["openim", "tencent"])
def test_too_many_query_parameters_get_the_envelope(client, protocol):
    params = urlencode({f"p{i}": i for i in range(1001)})
    if protocol == "openim":
        url = f"/openim/callback/{USER}?{params}"
    else:
        url = f"/openim/tencent?{urlencode(tencent_query(PORTRAIT, token=TOKEN))}&{params}"
    response = client.generic("POST", url, b"{}", content_type="application/json")
    assert response.status_code == 400
    assert "More than 1000 query parameters" in error_message(protocol, response)
    assert not CallbackEvent.objects.exists()


@pytest.mark.parametrize(
    ("protocol", "path"),
    [
        ("openim", f"/openim/callback/{USER}%0a"),
        ("openim", f"/openim/callback/%0a/{USER}"),
        ("openim", "/openim/callback%0a"),
        ("openim", f"/openim/callback/s%00/{USER}"),
        ("openim", "/openim/callback.json"),
        ("tencent", "/openim/tencent%0a"),
        ("tencent", "/openim/tencent/%0a"),
        ("tencent", "/openim/tencent/more"),
    ],
)
def test_odd_paths_under_the_callback_urls_get_the_envelope(client, protocol, path):
    query = "" if protocol == "openim" else "?" + urlencode(tencent_query(PORTRAIT, token=TOKEN))
    response = client.generic("POST", path + query, b"{}", content_type="application/json")
    assert response.status_code == 404, response.content
    assert "Unknown callback path" in error_message(protocol, response)
    assert not CallbackEvent.objects.exists()


@pytest.mark.parametrize(
    "path", ["/openim/callbacks", "/openim/callback_admin", "/openim/tencents"]
)
def test_other_urls_beside_the_callback_urls_are_not_ours(client, path):
    response = client.post(path, b"{}", content_type="application/json")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


# --- live servers ---------------------------------------------------------------------------

ROOT = Path(__file__).parent.parent


def gunicorn(tmp_path):
    """gunicorn on the example project and a migrated SQLite file in ``tmp_path``, port 0."""
    from gunicorn.config import KNOWN_SETTINGS

    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(SQLITE_PATH=str(tmp_path / "db.sqlite3"), DJANGO_SETTINGS_MODULE="project.settings")
    run_or_fail([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT)
    command = [sys.executable, "-m", "gunicorn", "-b", "127.0.0.1:0", "project.wsgi"]
    if any(setting.name == "control_socket" for setting in KNOWN_SETTINGS):  # gunicorn 24+
        command += ["--control-socket", str(tmp_path / "gunicorn.ctl")]
    return live_process(command, env=env, cwd=ROOT, log_path=tmp_path / "gunicorn.log")


@pytest.mark.django_db(False)
def test_chunked_body_through_gunicorn(tmp_path):
    body = go_json({**sample("openim", USER), "nickName": "Chunky"})
    with gunicorn(tmp_path) as url:
        connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=30)
        # An iterable body without Content-Length is sent chunked.
        connection.request(
            "POST",
            f"/openim/callback/{USER}",
            body=iter([body[:10], body[10:]]),
            headers={"Content-Type": OPENIM_CONTENT_TYPE},
        )
        response = connection.getresponse()
        reply = json.loads(response.read())
        connection.close()
    assert (response.status, reply["errCode"]) == (200, 0), reply
    database = sqlite3.connect(tmp_path / "db.sqlite3")
    try:
        events = database.execute("SELECT status, body FROM openim_sync_callbackevent").fetchall()
        users = database.execute("SELECT nickname FROM openim_sync_imuser").fetchall()
    finally:
        database.close()
    assert events == [("processed", body)]
    assert users == [("Chunky",)]


@pytest.mark.django_db(False)
def test_a_server_that_does_not_start_fails_the_test_with_its_log(tmp_path):
    command = [sys.executable, "-c", "import sys; print('no database here'); sys.exit(3)"]
    log_path = tmp_path / "server.log"
    with pytest.raises(pytest.fail.Exception) as failure, live_process(command, log_path=log_path):
        pass
    assert "The server exited with 3:\nno database here" in str(failure.value)


@pytest.mark.django_db(False)
def test_a_server_that_reports_no_address_fails_the_test_with_its_log(tmp_path):
    command = [sys.executable, "-c", "import time; print('still loading'); time.sleep(60)"]
    server = live_process(command, log_path=tmp_path / "server.log", timeout=1)
    with pytest.raises(pytest.fail.Exception) as failure, server:
        pass
    assert "reported no address in 1 s:\nstill loading" in str(failure.value)
