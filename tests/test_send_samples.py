"""openim_send_samples against a live server: every sample accepted and applied."""

import base64
import io
import json
from urllib.parse import unquote

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from openim_sync.management.commands.openim_send_samples import (
    OPENIM_STAGES,
    TENCENT_STAGES,
    ordered,
    tencent_request,
)
from openim_sync.models import (
    CallbackEvent,
    EventStatus,
    Friend,
    GroupMember,
    ImUser,
    OnlineSession,
)
from tests.helpers import TOKEN, go_json, sample, sample_commands

pytestmark = pytest.mark.django_db(transaction=True)


def send(*args):
    out = io.StringIO()
    call_command("openim_send_samples", *args, stdout=out)
    return out.getvalue()


def assert_all_applied(protocol, out):
    commands = sample_commands(protocol)
    assert f"Sent {len(commands)} sample(s): {len(commands)} accepted, 0 failed." in out
    assert "FAIL" not in out
    events = list(CallbackEvent.objects.filter(protocol=protocol).order_by("pk"))
    assert sorted(e.command for e in events) == commands
    for event in events:
        assert event.status in (EventStatus.PROCESSED, EventStatus.IGNORED), (
            event.command,
            event.status,
            event.reason,
        )
    return {e.command: e for e in events}


def test_openim_samples(live_server):
    out = send("--url", f"{live_server.url}/openim/callback")
    events = assert_all_applied("openim", out)
    assert out.count("ok   200 ") == len(events)

    # Sent in the documented order: registered and created before updated, removed last.
    sent = [line.split()[2].rstrip(":") for line in out.splitlines() if line.startswith("ok")]
    assert sent == ordered(sample_commands("openim"), OPENIM_STAGES)
    assert sent.index("callbackAfterUserRegisterCommand") < sent.index(
        "callbackAfterUpdateUserInfoCommand"
    )
    assert sent.index("callbackAfterCreateGroupCommand") < sent.index(
        "callbackAfterSetGroupMemberInfoCommand"
    )
    assert sent[-1] == "callbackAfterUserKickOffCommand"

    # Delivered the way OpenIM Server delivers: path shape, headers, compact Go JSON, ?key=.
    update = events["callbackAfterUpdateUserInfoCommand"]
    assert bytes(update.body) == go_json(sample("openim", "callbackAfterUpdateUserInfoCommand"))
    assert update.url_command == "callbackAfterUpdateUserInfoCommand"
    assert update.headers["Content-Type"] == "application/json; charset=utf-8"
    assert update.headers["User-Agent"] == "Go-http-client/1.1"
    assert update.query == {}
    online = events["callbackAfterUserOnlineCommand"]
    assert online.operation_id == "p_27_1583"
    group_msg = events["callbackAfterSendGroupMsgCommand"]
    key = json.loads(base64.b64decode(unquote(group_msg.query["key"])))
    assert key == {"sendID": "u1001", "recvID": "", "groupID": "3318432212"}
    single_msg = events["callbackAfterSendSingleMsgCommand"]
    assert single_msg.query == {
        "key": "eyJzZW5kSUQiOiJ1MTAwMSIsInJlY3ZJRCI6InUxMDAyIiwiZ3JvdXBJRCI6IiJ9"
    }

    # Applied: the commands with handlers wrote their mirror rows.
    for command in (
        "callbackAfterUpdateUserInfoCommand",
        "callbackAfterSetGroupMemberInfoCommand",
        "callbackAfterSetFriendRemarkCommand",
        "callbackAfterUserOnlineCommand",
        "callbackAfterUserOfflineCommand",
    ):
        assert events[command].status == EventStatus.PROCESSED, command
    assert ImUser.objects.filter(user_id="u1001").exists()
    assert GroupMember.objects.get(group_id="3318432212", user_id="u1003").role_level is not None
    assert Friend.objects.get(owner_user_id="u1001", friend_user_id="u1002").remark == "Bob (work)"
    web = OnlineSession.objects.get(user_id="u1001", platform="Web")
    assert web.online is False  # the offline sample is newer (seq) than the online one


def test_tencent_samples_signed(live_server, openim_settings):
    openim_settings(TENCENT_TOKENS=[TOKEN])
    out = send(
        "--url", f"{live_server.url}/openim/tencent", "--protocol", "tencent", "--token", TOKEN
    )
    events = assert_all_applied("tencent", out)
    assert [line.split()[2].rstrip(":") for line in out.splitlines()[:-1]] == ordered(
        sample_commands("tencent"), TENCENT_STAGES
    )
    profile = events["Profile.CallbackPortraitSet"]
    assert profile.status == EventStatus.PROCESSED
    # Parameters in Tencent's documented order (PostgreSQL's jsonb does not keep key order).
    built = tencent_request("http://x/tim", "State.StateChange", {}, 1400123456, TOKEN)
    names = [pair.split("=")[0] for pair in built.full_url.split("?")[1].split("&")]
    assert names == [
        "SdkAppid",
        "CallbackCommand",
        "contenttype",
        "ClientIP",
        "OptPlatform",
        "Sign",
        "RequestTime",
    ]
    assert profile.query["SdkAppid"] == "1400123456" and len(profile.query["Sign"]) == 64
    assert "ClientIP" not in events["Group.CallbackOnMemberStateChange"].query
    assert events["State.StateChange"].query["OptPlatform"] == "IOS"
    assert ImUser.objects.get(user_id="user_alice").nickname == "Alice W."


def test_rejections_exit_non_zero(live_server, openim_settings):
    openim_settings(TENCENT_TOKENS=["another-token"])
    with pytest.raises(CommandError) as error:
        send(
            "--url",
            f"{live_server.url}/openim/tencent",
            "--protocol",
            "tencent",
            "--token",
            TOKEN,
            "--command",
            "Profile.CallbackPortraitSet",
        )
    assert error.value.returncode == 1
    assert "1 of 1 sample(s) were not accepted" in str(error.value)
    assert not CallbackEvent.objects.exists()  # a bad Sign stores nothing


def test_openim_secret_and_single_command(live_server, openim_settings):
    openim_settings(OPENIM_SECRETS=["s3cr3t"])
    url = f"{live_server.url}/openim/callback"
    with pytest.raises(CommandError):
        send("--url", url, "--command", "callbackAfterSetFriendRemarkCommand")
    out = send(
        "--url", url, "--secret", "s3cr3t", "--command", "callbackAfterSetFriendRemarkCommand"
    )
    assert "Sent 1 sample(s): 1 accepted, 0 failed." in out
    assert Friend.objects.get(owner_user_id="u1001").remark == "Bob (work)"


def test_unknown_sample():
    with pytest.raises(CommandError, match="No openim sample for: nope"):
        send("--url", "http://127.0.0.1:9", "--command", "nope")


def test_unreachable_server_fails():
    with pytest.raises(CommandError):
        send("--url", "http://127.0.0.1:9", "--command", "callbackAfterUserOnlineCommand")
