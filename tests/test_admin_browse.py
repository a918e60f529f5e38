"""The admin an operator works in (issues 2 and 11): every page of the app, read-only, events
found by user or group through their indexed subject columns, the mirror linked both ways,
tombstones hidden by default, codes by name, reconcile runs."""

import re
import time
from collections import Counter
from html import unescape

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from openim_sync.models import (
    BlockedUser,
    CallbackEvent,
    EventStatus,
    Friend,
    GroupMember,
    ImGroup,
    ImUser,
    OnlineSession,
    ReconcileRun,
    RunStatus,
)
from tests.helpers import post_openim, post_tencent, sample, seed

pytestmark = pytest.mark.django_db

MIRROR = (ImUser, ImGroup, GroupMember, Friend, BlockedUser, OnlineSession)
MODELS = (CallbackEvent, *MIRROR, ReconcileRun)
#: A Tencent group id: "@" and "#" must be URL-encoded in every link ("#" starts a fragment).
TENCENT_GROUP = "@TGS#_a1b2"


def tencent_group(client, group_id=TENCENT_GROUP, owner="user_alice", members=("user_bob",)):
    body = {
        "CallbackCommand": "Group.CallbackAfterCreateGroup",
        "GroupId": group_id,
        "Operator_Account": owner,
        "Owner_Account": owner,
        "Type": "Public",
        "Name": "Trail Runners",
        "MemberList": [{"Member_Account": m} for m in (owner, *members)],
        "EventTime": int(time.time() * 1000),
    }
    assert post_tencent(client, body).status_code == 200


def tencent_profile(client, user_id, nickname):
    body = {
        "CallbackCommand": "Profile.CallbackPortraitSet",
        "Operator_Account": user_id,
        "From_Account": user_id,
        "EventTime": int(time.time() * 1000),
        "ProfileItem": [
            {"Tag": "Tag_Profile_IM_Nick", "Value": nickname},
            {"Tag": "Tag_Profile_IM_Gender", "Value": "Gender_Type_Female"},
        ],
    }
    assert post_tencent(client, body).status_code == 200


def reconcile_run(**values):
    defaults = {
        "protocol": "openim",
        "scope": ["users", "groups"],
        "options": {"dry_run": False, "page_size": 100},
        "status": RunStatus.FAILED,
        "counts": {
            "users": {"read": 120, "changed": 3, "removed": 0, "failed": 1},
            "groups": {"read": 12, "changed": 0, "removed": 1, "failed": 0},
        },
        "errors": ["users: user_x: 1004 user not found"],
    }
    run = ReconcileRun.objects.create(**{**defaults, **values})
    finished = run.started_at + timezone.timedelta(seconds=75)
    ReconcileRun.objects.filter(pk=run.pk).update(finished_at=finished)
    run.refresh_from_db()
    return run


def fill(client):
    """The README's deliveries, both servers' samples of each kind, a Tencent group with an
    id to encode, a rejected delivery, and a reconcile run that last changed a user."""
    post_openim(
        client, "/callbackAfterUpdateUserInfoCommand", seed("callbackAfterUpdateUserInfoCommand")
    )
    post_openim(
        client,
        "/callbackAfterSetGroupMemberInfoCommand",
        seed("callbackAfterSetGroupMemberInfoCommand"),
    )
    post_openim(client, "", seed("callbackAfterSetFriendRemarkCommand"))
    post_openim(client, "/callbackUserOnlineCommand", seed("callbackUserOnlineCommand"))
    post_tencent(client, seed("Profile.CallbackPortraitSet"))
    for command in ("Sns.CallbackBlackListAdd", "State.StateChange", "Sns.CallbackFriendAdd"):
        post_tencent(client, sample("tencent", command))
    tencent_profile(client, "user_alice", "Alice")
    tencent_profile(client, "user_bob", "Bob")
    tencent_group(client)
    blocks = {"CallbackCommand": "Sns.CallbackBlackListAdd"}
    post_tencent(
        client, {**blocks, "PairList": [{"From_Account": "user_alice", "To_Account": "m"}]}
    )
    # Rejected: an empty userID.
    post_openim(client, "/callbackAfterSetGroupMemberInfoCommand", {"groupID": "1", "userID": ""})
    run = reconcile_run()
    ImUser.objects.filter(user_id="id1").update(last_run=run)
    return run


@pytest.fixture
def filled(client):
    return fill(client)


def admin_url(model, view, *args):
    return reverse(f"admin:openim_sync_{model._meta.model_name}_{view}", args=args)


def listed(response):
    return list(response.context["cl"].result_list)


def labels(page):
    """The field labels of a detail page (``User ID``, ``Nickname``...)."""
    return [
        unescape(text).strip().rstrip(":")
        for text in re.findall(r"<label[^>]*>(.*?)</label>", page)
    ]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_model_has_a_changelist_and_change_page(admin_client, filled, model):
    response = admin_client.get(admin_url(model, "changelist"))
    assert response.status_code == 200

    obj = model.objects.first()
    response = admin_client.get(admin_url(model, "change", obj.pk))
    assert response.status_code == 200


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_no_field_is_shown_twice(admin_client, filled, model):
    for obj in model.objects.all()[:5]:
        page = admin_client.get(admin_url(model, "change", obj.pk)).text
        shown = labels(page)
        assert shown, page
        assert [name for name, n in Counter(shown).items() if n > 1] == []


@pytest.mark.parametrize("model", MIRROR, ids=lambda m: m.__name__)
def test_mirror_detail_pages_are_grouped(admin_client, filled, model):
    obj = model.objects.first()
    page = admin_client.get(admin_url(model, "change", obj.pk)).text
    headings = re.findall(r'<h2[^>]*class="fieldset-heading"[^>]*>(.*?)</h2>', page)
    assert headings[0] == "Identity" and headings[-1] == "Bookkeeping"
    assert "Other fields" not in headings  # every field has its place...
    # ...and every model field is on the page (one added later lands under "Other fields").
    from django.contrib import admin
    from django.contrib.admin.utils import flatten_fieldsets

    from openim_sync.admin.mirror import BOOKKEEPING_FIELDS

    model_admin = admin.site._registry[model]
    shown = set(flatten_fieldsets(model_admin.get_fieldsets(None, obj)))
    shown |= set(model_admin.covers) | BOOKKEEPING_FIELDS
    assert {f.name for f in model._meta.concrete_fields} <= shown


@pytest.mark.parametrize("model", (*MIRROR, ReconcileRun), ids=lambda m: m.__name__)
def test_mirror_is_read_only(admin_client, filled, model):
    assert admin_client.get(admin_url(model, "add")).status_code == 403
    obj = model.objects.first()
    page = admin_client.get(admin_url(model, "change", obj.pk)).content.decode()
    assert 'name="_save"' not in page
    assert admin_client.post(admin_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=obj.pk).exists()


def test_mirror_admins_have_an_actions_list_to_extend():
    from django.contrib import admin

    for model in MIRROR:
        assert isinstance(admin.site._registry[model].actions, list)


def test_mirror_row_links_to_the_event_and_the_run_that_changed_it(admin_client, filled):
    user = ImUser.objects.get(user_id="user123")
    page = admin_client.get(admin_url(ImUser, "change", user.pk)).text
    assert admin_url(CallbackEvent, "change", user.last_event_id) in page
    assert "Last event" in labels(page) and "Last changed by" not in labels(page)

    listing = admin_client.get(admin_url(ImUser, "changelist")).text
    assert f'href="{admin_url(CallbackEvent, "change", user.last_event_id)}"' in listing

    tencent = ImUser.objects.get(user_id="id1")
    page = admin_client.get(admin_url(ImUser, "change", tencent.pk)).text
    assert f'href="{admin_url(ReconcileRun, "change", filled.pk)}"' in page
    assert "Last reconcile run" in labels(page)


def test_field_versions_are_a_table_with_dates_and_event_links(admin_client, filled):
    user = ImUser.objects.get(user_id="id1")
    page = admin_client.get(admin_url(ImUser, "change", user.pk)).text
    versions = page[page.index("oims-versions") :]
    versions = versions[: versions.index("</table>")]
    # The Tencent profile's EventTime 1656921052497 is 2022-07-04 07:50:52.497 UTC.
    assert "<code>nickname</code></td><td><time" in versions
    assert "2022-07-04 07:50:52.497" in versions and "1656921052497" in versions
    assert f'href="{admin_url(CallbackEvent, "change", user.last_event_id)}"' in versions
    session = OnlineSession.objects.get(user_id="user123")
    page = admin_client.get(admin_url(OnlineSession, "change", session.pk)).text
    assert "seq 123456" in page


def test_an_event_page_shows_the_rows_it_changed_and_the_reply(admin_client, filled):
    event = CallbackEvent.objects.get(command="Group.CallbackAfterCreateGroup")
    page = admin_client.get(admin_url(CallbackEvent, "change", event.pk)).text
    group = ImGroup.objects.get(group_id=TENCENT_GROUP)
    assert f'href="{admin_url(ImGroup, "change", group.pk)}"' in page
    for member in GroupMember.objects.filter(group_id=TENCENT_GROUP):
        assert f'href="{admin_url(GroupMember, "change", member.pk)}"' in page
    assert "last changed by this event" in page
    assert "HTTP 200" in page and "&quot;ActionStatus&quot;: &quot;OK&quot;" in page
    # The time as a date with the raw milliseconds beside.
    assert f"{event.received_ms} ms" in page

    rejected = CallbackEvent.objects.get(status=EventStatus.REJECTED)
    page = admin_client.get(admin_url(CallbackEvent, "change", rejected.pk)).text
    assert "HTTP 400" in page and "nothing of it was applied" in page


def test_event_page_shows_payload_as_indented_json(admin_client, filled):
    event = CallbackEvent.objects.get(command="callbackAfterSetFriendRemarkCommand")
    page = admin_client.get(admin_url(CallbackEvent, "change", event.pk)).content.decode()
    assert "<pre" in page
    assert "\n  &quot;friendUserID&quot;: &quot;user456&quot;," in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status__exact=rejected", {"callbackAfterSetGroupMemberInfoCommand"}),
        ("command=callbackUserOnlineCommand", {"callbackUserOnlineCommand"}),
        ("area=presence", {"callbackUserOnlineCommand", "State.StateChange"}),
        (
            "subject_user_id=user123",
            {
                "callbackAfterUpdateUserInfoCommand",
                "callbackAfterSetFriendRemarkCommand",
                "callbackUserOnlineCommand",
            },
        ),
        ("subject_group_id=%40TGS%23_a1b2", {"Group.CallbackAfterCreateGroup"}),
    ],
)
def test_event_list_filters(admin_client, filled, query, expected):
    response = admin_client.get(admin_url(CallbackEvent, "changelist") + "?" + query)
    assert response.status_code == 200
    assert {event.command for event in listed(response)} == expected


def test_tencent_protocol_filter(admin_client, filled):
    response = admin_client.get(admin_url(CallbackEvent, "changelist") + "?protocol__exact=tencent")
    assert {e.protocol for e in listed(response)} == {"tencent"}
    assert len(listed(response)) == CallbackEvent.objects.filter(protocol="tencent").count()


def test_the_command_filter_is_grouped_by_area(admin_client, filled):
    page = admin_client.get(admin_url(CallbackEvent, "changelist")).text
    groups = re.findall(
        r'<li class="oims-command-group">\s*<details[^>]*>\s*<summary>(.*?) <', page
    )
    assert groups == [
        "Users",
        "Groups",
        "Group members",
        "Friends and blocks",
        "Presence",
        "Stored, not applied",
    ]
    selected = admin_client.get(
        admin_url(CallbackEvent, "changelist") + "?command=callbackUserOnlineCommand"
    ).text
    assert re.search(r"<details open>\s*<summary>Presence", selected)


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        (
            "user123",
            {
                "callbackAfterUpdateUserInfoCommand",
                "callbackAfterSetFriendRemarkCommand",
                "callbackUserOnlineCommand",
            },
        ),
        ("user456", {"callbackAfterSetFriendRemarkCommand"}),  # the peer
        ("12345", {"callbackAfterSetGroupMemberInfoCommand"}),  # a group
        (TENCENT_GROUP, {"Group.CallbackAfterCreateGroup"}),
        ("Sns.CallbackFriendAdd", {"Sns.CallbackFriendAdd"}),
        ("user12", set()),  # exact, not a substring
    ],
)
def test_event_search_by_user_or_group_is_exact(admin_client, filled, term, expected):
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(admin_url(CallbackEvent, "changelist"), {"q": term})
    assert {event.command for event in listed(response)} == expected
    # Equality on the indexed columns: no LIKE over the payload or the reason.
    searched = [q["sql"] for q in queries if "openim_sync_callbackevent" in q["sql"]]
    assert searched and not any(" LIKE " in sql.upper() for sql in searched)


def test_event_search_by_id_and_operation_id(admin_client, filled):
    event = CallbackEvent.objects.get(command="callbackUserOnlineCommand")
    for term in (str(event.pk), f"#{event.pk}"):
        response = admin_client.get(admin_url(CallbackEvent, "changelist"), {"q": term})
        assert event in listed(response)
    response = admin_client.get(admin_url(CallbackEvent, "changelist"), {"q": "op:1646445464564"})
    assert response.status_code == 200


def test_event_list_columns(admin_client, filled):
    response = admin_client.get(admin_url(CallbackEvent, "changelist"))
    page = response.text
    for column in ("event", "status_display", "command_display", "subject", "reason_short"):
        assert f"column-{column}" in page
    # The reason is shortened in the list, whole in its title.
    rejected = CallbackEvent.objects.get(status=EventStatus.REJECTED)
    assert f'<span class="oims-reason" title="{rejected.reason}">' in unescape(page)
    # Subjects link to the events of that user or group, URL-encoded.
    assert "?subject_group_id=%40TGS%23_a1b2" in page


@pytest.mark.parametrize(
    ("model", "term", "expected"),
    [
        (ImUser, "user123", ["user123"]),
        (ImUser, "nick1", ["id1"]),
        (GroupMember, "user789", ["user789"]),
        (Friend, "user456", ["user123"]),
        (OnlineSession, "user123", ["user123"]),
    ],
)
def test_mirror_search_on_im_ids(admin_client, filled, model, term, expected):
    response = admin_client.get(admin_url(model, "changelist") + f"?q={term}")
    rows = listed(response)
    key = "owner_user_id" if model is Friend else "user_id"
    assert [getattr(row, key) for row in rows] == expected


def test_tombstones_are_hidden_by_default(admin_client, filled):
    member = GroupMember.objects.get(group_id=TENCENT_GROUP, user_id="user_bob")
    GroupMember.objects.filter(pk=member.pk).update(
        removed_at=timezone.now(), removed_reason="quit"
    )
    url = admin_url(GroupMember, "changelist")
    default = admin_client.get(url + f"?group_id={TENCENT_GROUP.replace('#', '%23')}")
    assert [m.user_id for m in listed(default)] == ["user_alice"]
    assert "Show removed rows" in default.text and "state=all" in default.text
    assert "column-removed" not in default.text

    shown = admin_client.get(url, {"group_id": TENCENT_GROUP, "state": "all"})
    assert [m.user_id for m in listed(shown)] == ["user_alice", "user_bob"]
    assert "column-removed" in shown.text and "Show removed rows" not in shown.text
    removed = admin_client.get(url, {"group_id": TENCENT_GROUP, "state": "removed"})
    assert [m.user_id for m in listed(removed)] == ["user_bob"]


def test_presence_and_state_filters(admin_client, filled):
    online = admin_client.get(admin_url(OnlineSession, "changelist") + "?presence=online")
    assert {s.user_id for s in listed(online)} == {"user123", "user_alice"}
    removed = admin_client.get(admin_url(GroupMember, "changelist") + "?state=removed")
    assert listed(removed) == []


def test_sessions_say_why_they_count_as_offline(admin_client, filled, openim_settings):
    session = OnlineSession.objects.get(user_id="user123")
    OnlineSession.objects.filter(pk=session.pk).update(
        last_seen_at=timezone.now() - timezone.timedelta(hours=3)
    )
    listing = admin_client.get(admin_url(OnlineSession, "changelist")).text
    assert "PRESENCE_TTL_SECONDS" in listing and "expired" in listing
    page = admin_client.get(admin_url(OnlineSession, "change", session.pk)).text
    assert "no (expired)" in page and "not refreshed for 3" in page and "900 s" in page
    expired = admin_client.get(admin_url(OnlineSession, "changelist") + "?presence=expired")
    assert [s.user_id for s in listed(expired)] == ["user123"]


def test_codes_are_shown_by_name(admin_client, filled):
    page = admin_client.get(admin_url(GroupMember, "changelist"), {"group_id": TENCENT_GROUP}).text
    assert 'Owner <span class="oims-raw">100</span>' in page
    assert 'Member <span class="oims-raw">20</span>' in page
    assert "Owner" in admin_client.get(admin_url(GroupMember, "changelist")).text
    user = ImUser.objects.get(user_id="id1")
    page = admin_client.get(admin_url(ImUser, "change", user.pk)).text
    assert "Male <span" in page and "NeedConfirm <span" in page
    group = ImGroup.objects.get(group_id="12345")
    ImGroup.objects.filter(pk=group.pk).update(status=3)
    page = admin_client.get(admin_url(ImGroup, "change", group.pk)).text
    assert 'Muted <span class="oims-raw">3</span>' in page
    roles = admin_client.get(admin_url(GroupMember, "changelist") + "?role_level=100")
    assert [m.user_id for m in listed(roles)] == ["user_alice"]


def test_mirror_rows_show_their_protocol(admin_client, filled):
    page = admin_client.get(admin_url(ImUser, "changelist")).text
    assert "OpenIM" in page and "Tencent" in page
    tencent = admin_client.get(admin_url(ImUser, "changelist") + "?protocol=tencent")
    assert {u.user_id for u in listed(tencent)} == {"id1", "user_alice", "user_bob"}


def test_the_group_list_links_members_with_the_id_encoded(admin_client, filled):
    page = admin_client.get(admin_url(ImGroup, "changelist")).text
    members = admin_url(GroupMember, "changelist") + "?group_id=%40TGS%23_a1b2"
    assert f'href="{members}"' in page
    response = admin_client.get(members)
    assert {m.user_id for m in listed(response)} == {"user_alice", "user_bob"}


def test_a_user_links_to_their_groups_friends_blocks_sessions_and_events(admin_client, filled):
    user = ImUser.objects.get(user_id="user_alice")
    page = unescape(admin_client.get(admin_url(ImUser, "change", user.pk)).text)
    expected = {
        admin_url(GroupMember, "changelist") + "?user_id=user_alice": "1 membership",
        admin_url(Friend, "changelist") + "?owner_user_id=user_alice": "2 friends",
        admin_url(BlockedUser, "changelist") + "?owner_user_id=user_alice": "1 blocked",
        admin_url(OnlineSession, "changelist") + "?user_id=user_alice": "2 sessions",
        admin_url(CallbackEvent, "changelist") + "?q=user_alice": "events",
    }
    for url, text in expected.items():
        assert f'<a href="{url}">{text}</a>' in page
    # The membership table links the group (id encoded by the URL of its page: a pk).
    group = ImGroup.objects.get(group_id=TENCENT_GROUP)
    assert f'href="{admin_url(ImGroup, "change", group.pk)}"' in page


def test_a_member_links_to_its_group_and_user_and_back(admin_client, filled):
    member = GroupMember.objects.get(group_id=TENCENT_GROUP, user_id="user_bob")
    group = ImGroup.objects.get(group_id=TENCENT_GROUP)
    user = ImUser.objects.get(user_id="user_bob")
    listing = admin_client.get(admin_url(GroupMember, "changelist")).text
    page = admin_client.get(admin_url(GroupMember, "change", member.pk)).text
    for text in (listing, page):
        assert f'href="{admin_url(ImGroup, "change", group.pk)}"' in text
        assert f'href="{admin_url(ImUser, "change", user.pk)}"' in text
    group_page = admin_client.get(admin_url(ImGroup, "change", group.pk)).text
    assert f'href="{admin_url(GroupMember, "change", member.pk)}"' in group_page
    assert f'href="{admin_url(ImUser, "change", user.pk)}"' in group_page
    # A member whose user is not mirrored says so and links to the filtered list.
    lone = GroupMember.objects.get(user_id="user789")
    page = admin_client.get(admin_url(GroupMember, "change", lone.pk)).text
    assert "not in the mirror" in page


def test_friend_and_block_pages_link_both_users(admin_client, filled):
    friend = Friend.objects.get(owner_user_id="user_alice", friend_user_id="user_carol")
    page = admin_client.get(admin_url(Friend, "change", friend.pk)).text
    alice = ImUser.objects.get(user_id="user_alice")
    assert f'href="{admin_url(ImUser, "change", alice.pk)}"' in page
    assert "?subject_user_id=user_alice&amp;subject_peer_id=user_carol" in page
    block = BlockedUser.objects.get(owner_user_id="user_bob")
    page = admin_client.get(admin_url(BlockedUser, "change", block.pk)).text
    assert "user_eve" in page and "not in the mirror" in page


def test_reconcile_runs_are_listed_with_counts_and_errors(admin_client, filled):
    listing = admin_client.get(admin_url(ReconcileRun, "changelist")).text
    assert "<strong>users</strong>: 120 read, 3 changed, 1 failed" in listing
    assert "1 min 15 s" in listing
    page = admin_client.get(admin_url(ReconcileRun, "change", filled.pk)).text
    assert "<th>kind</th><th>read</th><th>changed</th><th>removed</th><th>failed</th>" in page
    assert "<tr><th>groups</th><td>12</td><td>0</td><td>1</td><td>0</td></tr>" in page
    assert "users: user_x: 1004 user not found" in page
    assert "users, groups" in page


def test_admin_needs_login(client, filled):
    response = client.get(admin_url(ImUser, "changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_staff_without_view_permission_sees_nothing_of_the_app(client, filled):
    staff = User.objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("admin:app_list", args=["openim_sync"])).status_code == 404
    for model in MODELS:
        assert client.get(admin_url(model, "changelist")).status_code == 403
        obj = model.objects.first()
        assert client.get(admin_url(model, "change", obj.pk)).status_code == 403
    assert "openim_sync" not in client.get(reverse("admin:index")).text

    # The view permission on one model opens that model only.
    staff.user_permissions.add(Permission.objects.get(codename="view_imuser"))
    client.force_login(User.objects.get(pk=staff.pk))
    assert client.get(admin_url(ImUser, "changelist")).status_code == 200
    assert client.get(admin_url(ImGroup, "changelist")).status_code == 403
    app_index = client.get(reverse("admin:app_list", args=["openim_sync"])).text
    assert "Sync status" not in app_index  # needs the view permission on events
