"""POST the package's sample callbacks to a URL exactly as OpenIM Server / Tencent Cloud Chat do.

For trying an installation: ``manage.py openim_send_samples --url http://127.0.0.1:8000/openim/callback``
fills the example project's admin. Only the standard library is used (urllib).
"""

import base64
import hashlib
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from django.core.management.base import CommandError

import openim_sync
from openim_sync.management.base import AppCommand

SAMPLES = Path(openim_sync.__file__).parent / "samples"
DEFAULT_SDKAPPID = 1400123456

#: Sending order: a user exists before it is updated, a group before its members change, removals
#: last. Each command goes to the stage of the longest keyword it contains; "before" callbacks
#: right before their "after" counterparts.
OPENIM_STAGES = (
    "UserRegister",
    "UpdateUserInfo",
    "UserOnline",
    "AddFriend",
    "AddFriendAgree",
    "ImportFriends",
    "SetFriendRemark",
    "AddBlack",
    "CreateGroupCommand",
    "JoinGroup",
    "InviteJoinGroup",
    "SetGroupMemberInfo",
    "SetGroupInfo",
    "TransferGroupOwner",
    "SendSingleMsg",
    "SendGroupMsg",
    "MsgModify",
    "MsgSaveDB",
    "Push",
    "MsgRead",
    "ChatConversations",
    "BeforeAfterMsg",
    "KickGroup",
    "QuitGroup",
    "RemoveBlack",
    "DeleteFriend",
    "DisMissGroup",
    "UserOffline",
    "UserKickOff",
)
TENCENT_STAGES = (
    "Profile.",
    "State.",
    "PrevFriendAdd",
    "PrevFriendResponse",
    "FriendAdd",
    "BlackListAdd",
    "CreateGroup",
    "NewMemberJoin",
    "MemberFieldChanged",
    "GroupInfoChanged",
    "ChangeGroupOwner",
    "OnMemberStateChange",
    "MemberExit",
    "BlackListDelete",
    "FriendDelete",
    "GroupDestroyed",
)
#: Tencent's ClientIP and OptPlatform for each sample (samples/tencent/_request.md); the group
#: member state change is documented without them.
TENCENT_CLIENTS = {
    "State.StateChange": ("203.0.113.24", "IOS"),
    "Sns.CallbackPrevFriendResponse": ("198.51.100.7", "Android"),
    "Sns.CallbackFriendAdd": ("192.0.2.10", "RESTAPI"),
    "Sns.CallbackBlackListAdd": ("198.51.100.7", "Android"),
    "Sns.CallbackBlackListDelete": ("198.51.100.7", "Android"),
    "Group.CallbackAfterGroupInfoChanged": ("203.0.113.25", "Web"),
    "Group.CallbackAfterMemberFieldChanged": ("203.0.113.25", "Web"),
    "Group.CallbackAfterChangeGroupOwner": ("203.0.113.25", "Web"),
    "Group.CallbackAfterGroupDestroyed": ("192.0.2.10", "RESTAPI"),
    "Group.CallbackOnMemberStateChange": None,
}
DEFAULT_CLIENT = ("203.0.113.24", "iOS")
#: OpenIM adds ?key=<base64 of sendID/recvID/groupID> to these three.
KEYED_COMMANDS = {
    "callbackAfterSendSingleMsgCommand",
    "callbackAfterSendGroupMsgCommand",
    "callbackAfterMsgSaveDBCommand",
}


def ordered(commands, stages):
    def rank(command):
        matches = [keyword for keyword in stages if keyword in command]
        if not matches:
            return (len(stages), False, command)
        stage = stages.index(max(matches, key=len))
        return (stage, "After" in command.replace("BeforeAfter", "Before"), command)

    return sorted(commands, key=rank)


def go_json(body):
    """Compact JSON as Go's encoding/json writes it: HTML-escaped, UTF-8, trailing newline."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (text + "\n").encode()


def message_key(body):
    fields = {name: body.get(name) or "" for name in ("sendID", "recvID", "groupID")}
    encoded = base64.b64encode(json.dumps(fields, separators=(",", ":")).encode()).decode()
    return quote(encoded, safe="")


def openim_request(url, command, body, secret=None):
    base = url.rstrip("/")
    if secret:
        base += "/" + quote(secret, safe="")
    target = f"{base}/{command}"
    if command in KEYED_COMMANDS:
        target += f"?key={message_key(body)}"
    headers = {
        "User-Agent": "Go-http-client/1.1",
        "Content-Type": "application/json; charset=utf-8",
        "operationID": body.get("operationID") or f"sample-{int(time.time() * 1000)}",
    }
    return urllib.request.Request(target, data=go_json(body), headers=headers, method="POST")


def tencent_request(url, command, body, sdkappid, token=None):
    query = {"SdkAppid": sdkappid, "CallbackCommand": command, "contenttype": "json"}
    client = TENCENT_CLIENTS.get(command, DEFAULT_CLIENT)
    if client:
        query["ClientIP"], query["OptPlatform"] = client
    if token:
        request_time = int(time.time())
        query["Sign"] = hashlib.sha256(f"{token}{request_time}".encode()).hexdigest()
        query["RequestTime"] = request_time
    separator = "&" if urlsplit(url).query else "?"
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return urllib.request.Request(
        f"{url}{separator}{urlencode(query)}",
        data=data,
        headers={"Content-Type": "application/json"},
        method="POST",
    )


class Command(AppCommand):
    help = (
        "POST the package's sample callbacks to URL as the real server does (URL shape, headers, "
        "compact JSON, Tencent Sign). URL is the callback URL as configured in the IM server, "
        "e.g. http://127.0.0.1:8000/openim/callback (OpenIM) or .../openim/tencent (Tencent)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", required=True, help="The callback URL.")
        parser.add_argument(
            "--protocol", choices=["openim", "tencent"], default="openim", help="Default: openim."
        )
        parser.add_argument(
            "--command",
            dest="commands",
            action="append",
            default=[],
            help="Send only this sample (repeatable; default: all, in a sensible order).",
        )
        parser.add_argument("--secret", help="OpenIM: a secret path segment added to the URL.")
        parser.add_argument("--token", help="Tencent: callback token; adds Sign and RequestTime.")
        parser.add_argument(
            "--sdkappid",
            type=int,
            default=DEFAULT_SDKAPPID,
            help=f"Tencent: the SdkAppid query parameter (default: {DEFAULT_SDKAPPID}, the "
            "example project's).",
        )
        parser.add_argument("--timeout", type=float, default=15, help="Seconds per request.")

    def handle(self, *args, url, protocol, commands, secret, token, sdkappid, timeout, **options):
        available = sorted(path.stem for path in (SAMPLES / protocol).glob("*.json"))
        unknown = sorted(set(commands) - set(available))
        if unknown:
            raise CommandError(f"No {protocol} sample for: {', '.join(unknown)}.")
        stages = OPENIM_STAGES if protocol == "openim" else TENCENT_STAGES
        selected = ordered(commands or available, stages)

        failures = 0
        for command in selected:
            body = json.loads((SAMPLES / protocol / f"{command}.json").read_text())
            if protocol == "openim":
                request = openim_request(url, command, body, secret)
            else:
                request = tencent_request(url, command, body, sdkappid, token)
            status, reply = self.send(request, timeout)
            ok = status == 200 and _reply_ok(protocol, reply)
            failures += not ok
            self.stdout.write(f"{'ok  ' if ok else 'FAIL'} {status or '---'} {command}: {reply}")

        sent = len(selected)
        self.stdout.write(f"Sent {sent} sample(s): {sent - failures} accepted, {failures} failed.")
        if failures:
            raise CommandError(f"{failures} of {sent} sample(s) were not accepted.", returncode=1)

    def send(self, request, timeout):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as exc:
            return 0, f"no reply: {getattr(exc, 'reason', exc)}"


def _reply_ok(protocol, reply):
    try:
        data = json.loads(reply)
    except ValueError:
        return False
    if protocol == "openim":
        return data.get("errCode") == 0
    return data.get("ErrorCode") == 0
