"""Bad input, table-driven: every case gets a clear status and a message naming the problem, never
a 500 and never a mirror change; once authenticated, a ``rejected`` event keeps the reason."""

import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

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
    post_openim,
    post_tencent,
    sample,
    sample_commands,
    seed,
    tencent_query,
)

pytestmark = pytest.mark.django_db

USER = "callbackAfterUpdateUserInfoCommand"
MEMBER = "callbackAfterSetGroupMemberInfoCommand"
REMARK = "callbackAfterSetFriendRemarkCommand"
ONLINE = "callbackUserOnlineCommand"
PORTRAIT = "Profile.CallbackPortraitSet"
MIRROR = (ImUser, ImGroup, GroupMember, Friend, BlockedUser, OnlineSession)
REJECTED, NOTHING = EventStatus.REJECTED, None


@dataclass
class Case:
    id: str
    protocol: str  # "openim" or "tencent"
    status: int
    message: str
    #: The event status left behind, or None: nothing stored.
    stored: str | None
    body: dict | None = None
    raw: bytes | None = None
    #: OpenIM: the path after /openim/callback; Tencent: the CallbackCommand query value.
    command: str = ""
    method: str = "POST"
    settings: dict = field(default_factory=dict)
    #: Tencent: extra query arguments for tests.helpers.tencent_query.
    query: dict = field(default_factory=dict)
    #: A path that replaces the default URL entirely.
    url: str = ""

    def data(self):
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return b""
        return go_json(self.body) if self.protocol == "openim" else json.dumps(self.body).encode()


def openim(id, body=None, *, command=USER, **kwargs):
    if body is not None and "callbackCommand" not in body and command:
        body = {**body, "callbackCommand": command.rsplit("/", 1)[-1]}
    return Case(id, "openim", body=body, command=f"/{command}" if command else "", **kwargs)


def tencent(id, body=None, *, command=PORTRAIT, **kwargs):
    return Case(id, "tencent", body=body, command=command, **kwargs)


def user(**values):
    return {**seed(USER), **values}


def member(**values):
    return {**seed(MEMBER), **values}


def remark(**values):
    return {**seed(REMARK), **values}


def online(**values):
    return {**seed(ONLINE), **values}


def portrait(**values):
    return {**seed(PORTRAIT), **values}


def nested(depth):
    return ("[" * depth + "]" * depth).encode()


REQUIRED = "This field is required."
BLANK = "This field may not be blank."
NOT_INT = "A valid integer is required."

CASES = [
    # --- bodies that are not a JSON object (OpenIM) ---
    openim(
        "malformed",
        raw=b'{"userID": "u1"',
        status=400,
        message="Malformed JSON: Expecting ',' delimiter",
        stored=REJECTED,
    ),
    openim(
        "trailing-comma",
        raw=b'{"userID": "u1",}',
        status=400,
        # Python 3.12 and 3.13 word this one differently; both name the position.
        message="Malformed JSON: ",
        stored=REJECTED,
    ),
    openim(
        "single-quotes",
        raw=b"{'userID': 'u1'}",
        status=400,
        message="Malformed JSON: Expecting property name",
        stored=REJECTED,
    ),
    openim(
        "array",
        raw=b'[{"userID": "u1"}]',
        status=400,
        message="Expected a JSON object, got an array",
        stored=REJECTED,
    ),
    openim(
        "string",
        raw=b'"u1"',
        status=400,
        message="Expected a JSON object, got a string",
        stored=REJECTED,
    ),
    openim(
        "null", raw=b"null", status=400, message="Expected a JSON object, got null", stored=REJECTED
    ),
    openim(
        "number",
        raw=b"42",
        status=400,
        message="Expected a JSON object, got a number",
        stored=REJECTED,
    ),
    openim("empty-body", raw=b"", status=400, message="The body is empty", stored=REJECTED),
    openim(
        "whitespace-body", raw=b" \n\t", status=400, message="The body is empty", stored=REJECTED
    ),
    openim(
        "invalid-utf8",
        raw=b'{"userID": "u1", "nickName": "caf\xe9"}',
        status=400,
        message="not valid UTF-8 (byte 0xe9 at offset 33)",
        stored=REJECTED,
    ),
    openim(
        "nan",
        raw=b'{"userID": "u1", "ex": NaN}',
        status=400,
        message="NaN is not a JSON value",
        stored=REJECTED,
    ),
    openim(
        "infinite-number",
        raw=b'{"userID": "u1", "ex": 1e400}',
        status=400,
        message="the number 1e400 is out of range",
        stored=REJECTED,
    ),
    openim(
        "endless-integer",
        raw=b'{"userID": "u1", "x": ' + b"7" * 5000 + b"}",
        status=400,
        message="an integer with 5000 digits is too long",
        stored=REJECTED,
    ),
    openim(
        "nul-in-value",
        user(nickName="Jo\x00hn"),
        status=400,
        message="nickName: contains a NUL character",
        stored=REJECTED,
    ),
    openim(
        "nul-in-key",
        user(**{"ex\x00tra": 1}),
        status=400,
        message="ex\ufffdtra: contains a NUL character",
        stored=REJECTED,
    ),
    openim(
        "nul-in-nested",
        user(extra={"list": ["ok", "b\x00d"]}),
        status=400,
        message="extra.list[1]: contains a NUL character",
        stored=REJECTED,
    ),
    openim(
        "lone-surrogate",
        raw=b'{"userID": "u1", "nickName": "\\ud800"}',
        status=400,
        message="nickName: contains a lone surrogate",
        stored=REJECTED,
    ),
    openim(
        "too-deep",
        raw=b'{"userID": "u1", "x": ' + nested(40) + b"}",
        status=400,
        message="nested deeper than 32 levels",
        stored=REJECTED,
    ),
    openim(
        "far-too-deep",
        raw=b'{"userID": "u1", "x": ' + nested(200_000) + b"}",
        status=400,
        message="nested deeper than 32 levels",
        stored=REJECTED,
    ),
    openim(
        "too-deep-configurable",
        raw=b'{"a": {"b": {"c": 1}}}',
        status=400,
        message="nested deeper than 2 levels",
        stored=REJECTED,
        settings={"MAX_JSON_DEPTH": 2},
    ),
    openim(
        "too-large",
        user(ex="x" * 2000),
        status=413,
        message="the limit is 1024 bytes",
        stored=REJECTED,
        settings={"MAX_BODY_BYTES": 1024},
    ),
    # --- wrong types, missing / empty / over-long fields (OpenIM) ---
    openim(
        "roleLevel-admin",
        member(roleLevel="admin"),
        command=MEMBER,
        status=400,
        message=f"roleLevel: {NOT_INT}",
        stored=REJECTED,
    ),
    openim(
        "roleLevel-huge",
        member(roleLevel=2**70),
        command=MEMBER,
        status=400,
        message="roleLevel: Ensure this value is less than or equal to",
        stored=REJECTED,
    ),
    openim(
        "seq-x",
        online(seq="x"),
        command=ONLINE,
        status=400,
        message=f"seq: {NOT_INT}",
        stored=REJECTED,
    ),
    openim(
        "seq-negative",
        online(seq=-1),
        command=ONLINE,
        status=400,
        message="seq: Ensure this value is greater than or equal to 0",
        stored=REJECTED,
    ),
    openim(
        "seq-float",
        online(seq=1.5),
        command=ONLINE,
        status=400,
        message=f"seq: {NOT_INT}",
        stored=REJECTED,
    ),
    openim(
        "isAppBackground-maybe",
        online(isAppBackground="maybe"),
        command=ONLINE,
        status=400,
        message="isAppBackground: Must be a valid boolean",
        stored=REJECTED,
    ),
    openim(
        "userID-missing",
        {"nickName": "x"},
        status=400,
        message=f"userID: {REQUIRED}",
        stored=REJECTED,
    ),
    openim(
        "userID-empty", user(userID=""), status=400, message=f"userID: {BLANK}", stored=REJECTED
    ),
    openim(
        "userID-null",
        user(userID=None),
        status=400,
        message="userID: This field may not be null.",
        stored=REJECTED,
    ),
    openim(
        "userID-object",
        user(userID={"id": "u1"}),
        status=400,
        message="userID: Not a valid string.",
        stored=REJECTED,
    ),
    openim(
        "userID-too-long",
        user(userID="u" * 65),
        status=400,
        message="userID: Ensure this field has no more than 64 characters.",
        stored=REJECTED,
    ),
    openim(
        "nickName-too-long",
        user(nickName="n" * 501),
        status=400,
        message="nickName: Ensure this field has no more than 500 characters.",
        stored=REJECTED,
    ),
    openim(
        "groupID-missing",
        {k: v for k, v in member().items() if k != "groupID"},
        command=MEMBER,
        status=400,
        message=f"groupID: {REQUIRED}",
        stored=REJECTED,
    ),
    openim(
        "two-bad-fields",
        member(groupID="", roleLevel="owner"),
        command=MEMBER,
        status=400,
        message=f"groupID: {BLANK}; roleLevel: {NOT_INT}",
        stored=REJECTED,
    ),
    openim(
        "remark-too-long",
        remark(remark="r" * 256),
        command=REMARK,
        status=400,
        message="remark: Ensure this field has no more than 255 characters.",
        stored=REJECTED,
    ),
    openim(
        "friendUserID-empty",
        remark(friendUserID=""),
        command=REMARK,
        status=400,
        message=f"friendUserID: {BLANK}",
        stored=REJECTED,
    ),
    # --- the command (OpenIM) ---
    openim(
        "command-disagrees",
        user(callbackCommand="callbackAfterUpdateUserInfoExCommand"),
        status=400,
        message="disagrees with callbackCommand in the body",
        stored=REJECTED,
    ),
    openim(
        "command-not-a-string",
        user(callbackCommand=7),
        status=400,
        message="callbackCommand: must be a string",
        stored=REJECTED,
    ),
    openim(
        "command-missing",
        {"userID": "u1"},
        command="",
        status=400,
        message="No command: name it in the URL or in the body's callbackCommand",
        stored=REJECTED,
    ),
    openim(
        "command-too-long",
        user(callbackCommand=None),
        command="c" * 129,
        status=400,
        message="longer than 128 characters",
        stored=REJECTED,
    ),
    # --- method and URL (OpenIM): refused before anything is read ---
    openim(
        "get",
        None,
        method="GET",
        status=405,
        message="Method GET is not allowed: use POST",
        stored=NOTHING,
    ),
    openim(
        "put",
        user(),
        method="PUT",
        status=405,
        message="Method PUT is not allowed: use POST",
        stored=NOTHING,
    ),
    openim(
        "trailing-slash",
        user(),
        command=f"{USER}/",
        status=404,
        message="no trailing slash",
        stored=NOTHING,
    ),
    openim(
        "trailing-slash-bare",
        user(),
        url="/openim/callback/",
        status=404,
        message="no trailing slash",
        stored=NOTHING,
    ),
    openim(
        "too-many-segments",
        user(),
        command=f"a/b/{USER}",
        status=404,
        message="Unknown callback path",
        stored=NOTHING,
    ),
    # --- bad input from a stranger: refused by authentication, never stored ---
    openim(
        "bad-json-wrong-secret",
        raw=b"{oops",
        command=f"wrong/{USER}",
        status=401,
        message="secret in the URL path is not valid",
        stored=NOTHING,
        settings={"OPENIM_SECRETS": ["right"]},
    ),
    openim(
        "huge-wrong-secret",
        user(ex="x" * 5000),
        command=f"wrong/{USER}",
        status=401,
        message="secret in the URL path is not valid",
        stored=NOTHING,
        settings={"OPENIM_SECRETS": ["right"], "MAX_BODY_BYTES": 1024},
    ),
    # --- Tencent Cloud Chat ---
    tencent(
        "t-malformed",
        raw=b'{"From_Account": ',
        status=400,
        message="Malformed JSON: Expecting value",
        stored=REJECTED,
    ),
    tencent(
        "t-array",
        raw=b"[]",
        status=400,
        message="Expected a JSON object, got an array",
        stored=REJECTED,
    ),
    tencent("t-empty-body", raw=b"", status=400, message="The body is empty", stored=REJECTED),
    tencent(
        "t-invalid-utf8",
        raw=b'{"From_Account": "\xc3\x28"}',
        status=400,
        message="not valid UTF-8",
        stored=REJECTED,
    ),
    tencent(
        "t-nul",
        portrait(From_Account="id\x001"),
        status=400,
        message="From_Account: contains a NUL character",
        stored=REJECTED,
    ),
    tencent(
        "t-too-large",
        portrait(pad="x" * 3000),
        status=413,
        message="the limit is 2048 bytes",
        stored=REJECTED,
        settings={"MAX_BODY_BYTES": 2048},
    ),
    tencent(
        "t-From_Account-missing",
        {k: v for k, v in portrait().items() if k != "From_Account"},
        status=400,
        message=f"From_Account: {REQUIRED}",
        stored=REJECTED,
    ),
    tencent(
        "t-From_Account-empty",
        portrait(From_Account=""),
        status=400,
        message=f"From_Account: {BLANK}",
        stored=REJECTED,
    ),
    tencent(
        "t-EventTime-word",
        portrait(EventTime="yesterday"),
        status=400,
        message=f"EventTime: {NOT_INT}",
        stored=REJECTED,
    ),
    tencent(
        "t-ProfileItem-object",
        portrait(ProfileItem={"Tag": "Tag_Profile_IM_Nick"}),
        status=400,
        message="ProfileItem: Expected a list of items",
        stored=REJECTED,
    ),
    tencent(
        "t-level-word",
        portrait(ProfileItem=[{"Tag": "Tag_Profile_IM_Level", "Value": "high"}]),
        status=400,
        message="ProfileItem[0].Value: Tag_Profile_IM_Level needs an integer.",
        stored=REJECTED,
    ),
    tencent(
        "t-nick-number",
        portrait(ProfileItem=[{"Tag": "Tag_Profile_IM_Nick", "Value": 5}]),
        status=400,
        message="ProfileItem[0].Value: Tag_Profile_IM_Nick needs a string.",
        stored=REJECTED,
    ),
    tencent(
        "t-nick-too-long",
        portrait(ProfileItem=[{"Tag": "Tag_Profile_IM_Nick", "Value": "n" * 501}]),
        status=400,
        message="Tag_Profile_IM_Nick has more than 500 characters",
        stored=REJECTED,
    ),
    tencent(
        "t-Tag-missing",
        portrait(ProfileItem=[{"Value": "x"}]),
        status=400,
        message=f"ProfileItem[0].Tag: {REQUIRED}",
        stored=REJECTED,
    ),
    tencent(
        "t-command-disagrees",
        portrait(CallbackCommand="State.StateChange"),
        status=400,
        message="disagrees with CallbackCommand in the body",
        stored=REJECTED,
    ),
    tencent(
        "t-command-missing",
        {k: v for k, v in portrait().items() if k != "CallbackCommand"},
        command=None,
        status=400,
        message="No command",
        stored=REJECTED,
    ),
    tencent(
        "t-get", None, method="GET", status=405, message="Method GET is not allowed", stored=NOTHING
    ),
    tencent(
        "t-bad-sign",
        raw=b"{oops",
        query={"token": "not-the-token"},
        status=401,
        message="Sign does not match",
        stored=NOTHING,
    ),
]


def url_for(case):
    if case.url:
        return case.url
    if case.protocol == "openim":
        return f"/openim/callback{case.command}"
    query = {"token": TOKEN, **case.query}
    return f"/openim/tencent?{urlencode(tencent_query(case.command, **query))}"


def send(client, case):
    content_type = OPENIM_CONTENT_TYPE if case.protocol == "openim" else "application/json"
    return client.generic(case.method, url_for(case), case.data(), content_type=content_type)


def error_text(case, body):
    if case.protocol == "openim":
        assert body["actionCode"] == 1 and body["errCode"] == case.status
        assert body["nextCode"] == 0
        return body["errMsg"]
    assert body["ActionStatus"] == "FAIL" and body["ErrorCode"] == 1
    return body["ErrorInfo"]


def test_at_least_forty_cases_across_both_protocols():
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)
    assert {case.protocol for case in CASES} == {"openim", "tencent"}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_request(client, openim_settings, case):
    openim_settings(TENCENT_SDKAPPID=SDKAPPID, TENCENT_TOKENS=[TOKEN], **case.settings)
    ImUser.objects.create(user_id="bystander", nickname="unchanged")

    response = send(client, case)

    assert response.status_code == case.status, response.content
    assert case.message in error_text(case, response.json())
    if case.status == 405:
        assert response["Allow"] == "POST"
    if case.stored is NOTHING:
        assert CallbackEvent.objects.count() == 0
    else:
        event = CallbackEvent.objects.get()
        assert event.status == case.stored
        assert case.message in event.reason
        assert event.protocol == case.protocol
        if case.status == 413:
            assert bytes(event.body) == b""  # not kept: it was refused unread
        else:
            assert bytes(event.body) == case.data()
    # No mirror change of any kind.
    assert [list(model.objects.all()) for model in MIRROR[1:]] == [[]] * (len(MIRROR) - 1)
    assert list(ImUser.objects.values_list("user_id", "nickname")) == [("bystander", "unchanged")]


def test_unknown_keys_are_kept_not_an_error(client):
    body = user(userID="u1", nickName="Ann", futureField={"nested": [1, 2]}, anotherOne=None)
    response = client.generic(
        "POST", f"/openim/callback/{USER}", go_json(body), content_type=OPENIM_CONTENT_TYPE
    )
    assert response.status_code == 200
    event = CallbackEvent.objects.get()
    assert event.status == EventStatus.PROCESSED
    assert event.payload["futureField"] == {"nested": [1, 2]}
    assert "anotherOne" in event.payload
    assert ImUser.objects.get(user_id="u1").nickname == "Ann"


def test_unknown_keys_tencent(client, openim_settings):
    openim_settings(TENCENT_SDKAPPID=SDKAPPID, TENCENT_TOKENS=[TOKEN])
    body = portrait(NewTencentField=[{"a": 1}])
    url = f"/openim/tencent?{urlencode(tencent_query(PORTRAIT, token=TOKEN))}"
    response = client.generic("POST", url, json.dumps(body), content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
    assert CallbackEvent.objects.get().payload["NewTencentField"] == [{"a": 1}]


def test_unknown_command_is_stored_and_ignored(client):
    body = {"callbackCommand": "callbackAfterSomethingNewCommand", "x": 1}
    response = client.generic(
        "POST",
        "/openim/callback/callbackAfterSomethingNewCommand",
        go_json(body),
        content_type=OPENIM_CONTENT_TYPE,
    )
    assert response.status_code == 200
    event = CallbackEvent.objects.get()
    assert event.status == EventStatus.IGNORED
    assert "Unknown openim command 'callbackAfterSomethingNewCommand'" in event.reason


def test_rejected_event_stays_rejected_on_replay(client):
    """Rejected events are not replayed by default; asked for, they go through the same
    validation: still rejected, no change."""
    from django.core.management import call_command

    client.generic(
        "POST",
        f"/openim/callback/{MEMBER}",
        go_json(member(roleLevel="admin")),
        content_type=OPENIM_CONTENT_TYPE,
    )
    call_command("openim_replay", verbosity=0)
    event = CallbackEvent.objects.get()
    assert (event.status, event.attempts) == (EventStatus.REJECTED, 1)
    call_command("openim_replay", "--include-rejected", verbosity=0)
    event.refresh_from_db()
    assert event.status == EventStatus.REJECTED
    assert event.attempts == 2
    assert "roleLevel: A valid integer is required." in event.reason
    assert GroupMember.objects.count() == 0


# --- every sample, every leaf value replaced by something wrong: never a 500 ------------------

WRONG_VALUES = ("x" * 5000, {"nested": "object"}, 2**64)


def leaves(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in ("callbackCommand", "CallbackCommand"):
                yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path


def replaced(body, path, value):
    body = json.loads(json.dumps(body))
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return body


SAMPLES = [("openim", c) for c in sample_commands("openim")] + [
    ("tencent", c) for c in sample_commands("tencent")
]


@pytest.mark.parametrize(("protocol", "command"), SAMPLES, ids=[c for _, c in SAMPLES])
def test_wrong_value_anywhere_is_never_a_500(client, openim_settings, protocol, command):
    openim_settings(TENCENT_SDKAPPID=SDKAPPID, TENCENT_TOKENS=[TOKEN])
    body = sample(protocol, command)
    failures = []
    for path in leaves(body):
        for value in WRONG_VALUES:
            bad = replaced(body, path, value)
            if protocol == "openim":
                response = post_openim(client, f"/{command}", bad)
            else:
                response = post_tencent(client, bad, token=TOKEN)
            if response.status_code not in (200, 400):
                failures.append((path, repr(value)[:20], response.status_code))
            elif response.status_code == 400:
                # The message names the field (its top-level key at least).
                reply = response.json()
                message = reply.get("errMsg", reply.get("ErrorInfo"))
                if str(path[0]) not in message:
                    failures.append((path, repr(value)[:20], message))
    assert not failures, failures[:5]
