"""Reconcile against the fake OpenIM and Tencent REST servers this project ships
(:mod:`openim_sync.testing`), holding a state the mirror is then compared with."""

import json
import time
import urllib.request

import pytest
from django.core.management import call_command

from openim_sync import signals
from openim_sync.models import (
    BlockedUser,
    Friend,
    GroupMember,
    ImGroup,
    ImUser,
    OnlineSession,
    ReconcileRun,
    SyncCursor,
)
from openim_sync.reconcile import client_for, reconcile
from openim_sync.testing import FakeOpenIMServer, FakeTencentServer
from tests.helpers import SDKAPPID, go_json, post_openim, post_tencent

ADMIN, SECRET = "openim-sync", "openIM123"
KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def openim_server(openim_settings):
    with FakeOpenIMServer(version="3.8.3", secret=SECRET, admin_user_ids=(ADMIN,)) as server:
        openim_settings(
            OPENIM_API_URL=server.url, OPENIM_ADMIN_USER_ID=ADMIN, OPENIM_API_SECRET=SECRET
        )
        yield server


@pytest.fixture
def tencent_server(openim_settings):
    with FakeTencentServer(sdkappid=SDKAPPID, secret_key=KEY, admin="administrator") as server:
        openim_settings(
            TENCENT_API_URL=server.url,
            TENCENT_SDKAPPID=SDKAPPID,
            TENCENT_ADMIN_IDENTIFIER="administrator",
            TENCENT_SECRET_KEY=KEY,
        )
        yield server


def small_openim_world(state):
    state.add_user("alice", nickname="Alice")
    state.add_user("bob", nickname="Bob", faceURL="https://img/bob.png")
    state.add_user("carol", nickname="Carol")
    state.add_group("g1", "alice", groupName="Hikers")
    state.add_member("g1", "bob", nickname="Bobby in g1")
    state.add_member("g1", "carol")  # no card: OpenIM answers with her profile nickname
    state.add_friendship("alice", "bob")
    state.update_friend("alice", "bob", remark="B")
    state.add_black("carol", "bob")


def member(group_id, user_id):
    return GroupMember.objects.get(group_id=group_id, user_id=user_id)


def member_info_callback(client, **body):
    command = "callbackAfterSetGroupMemberInfoCommand"
    response = post_openim(client, f"/{command}", {"callbackCommand": command, **body})
    assert response.status_code == 200, response.content


# -- an empty mirror filled -------------------------------------------------------------------


def test_openim_empty_mirror_is_filled(openim_server):
    small_openim_world(openim_server.state)
    openim_server.state.set_online("bob", [2, 5])

    run = reconcile("openim")

    assert run.status == "succeeded", run.errors
    assert {u.user_id: u.nickname for u in ImUser.objects.filter(app_manager_level=1)} == {
        "alice": "Alice",
        "bob": "Bob",
        "carol": "Carol",
    }
    # Admin accounts are users on the server too (get_all_users_uid lists them).
    assert ImUser.objects.get(user_id=ADMIN).app_manager_level == 3
    group = ImGroup.objects.get(group_id="g1")
    assert (group.name, group.owner_user_id, group.removed_at) == ("Hikers", "alice", None)
    assert {(m.user_id, m.role_level, m.nickname) for m in GroupMember.objects.all()} == {
        ("alice", 100, ""),
        ("bob", 20, "Bobby in g1"),
        ("carol", 20, ""),  # the profile fallback is not taken as a group card
    }
    assert {(f.owner_user_id, f.friend_user_id, f.remark) for f in Friend.objects.all()} == {
        ("alice", "bob", "B"),
        ("bob", "alice", ""),
    }
    assert list(BlockedUser.objects.values_list("owner_user_id", "blocked_user_id")) == [
        ("carol", "bob")
    ]
    online = OnlineSession.objects.online()
    assert sorted(online.values_list("user_id", "platform")) == [("bob", "Android"), ("bob", "Web")]
    assert {row.last_run_id for row in ImUser.objects.all()} == {run.pk}
    assert run.counts["users"]["changed"] == 4 and run.counts["members"]["read"] == 3
    assert SyncCursor.objects.filter(kind="members", key="g1").exists()


def test_tencent_empty_mirror_is_filled_from_known_accounts(
    tencent_server, openim_settings, client
):
    # A callback made the custom tag known (Tencent returns only the tags asked for).
    portrait = {
        "CallbackCommand": "Profile.CallbackPortraitSet",
        "From_Account": "u2",
        "EventTime": 1,
        "ProfileItem": [{"Tag": "Tag_Profile_Custom_Team", "Value": "red"}],
    }
    assert post_tencent(client, portrait).status_code == 200
    state = tencent_server.state
    state.add_account("u1", Tag_Profile_IM_Nick="Una", Tag_Profile_IM_Gender="Gender_Type_Female")
    state.add_account("u2", Tag_Profile_IM_Nick="Vic", Tag_Profile_Custom_Team="blue")
    state.add_group("@TGS#_a1", "u1", Name="Day trip", Type="Public")
    state.add_member("@TGS#_a1", "u2", NameCard="V", MuteUntil=4102444800)
    state.add_friend("u1", "u2", Tag_SNS_IM_Remark="vicky")
    state.add_black("u2", "u1")
    state.set_online("u1", status="Online", platforms=(("iPhone", "Online"),))
    openim_settings(TENCENT_ACCOUNT_IDS=lambda: ["u1", "u2"])

    run = reconcile("tencent")

    assert run.status == "succeeded", run.errors
    u1, u2 = ImUser.objects.get(user_id="u1"), ImUser.objects.get(user_id="u2")
    assert (u1.nickname, u1.gender, u2.nickname) == ("Una", "Gender_Type_Female", "Vic")
    assert u2.custom == {"Tag_Profile_Custom_Team": "blue"}
    assert ImGroup.objects.get(group_id="@TGS#_a1").name == "Day trip"
    vic = member("@TGS#_a1", "u2")
    assert (vic.nickname, vic.role_level, vic.mute_end_ms) == ("V", 20, 4102444800000)
    assert member("@TGS#_a1", "u1").role_level == 100
    assert Friend.objects.get(owner_user_id="u1", friend_user_id="u2").remark == "vicky"
    assert BlockedUser.objects.filter(owner_user_id="u2", blocked_user_id="u1").exists()
    assert list(OnlineSession.objects.online().values_list("user_id", flat=True)) == ["u1"]
    # Every request had a fresh random.
    assert len(set(tencent_server.randoms)) == len(tencent_server.randoms)


# -- repairs ----------------------------------------------------------------------------------


def test_lost_callback_is_repaired_and_changes_without_callbacks_are_picked_up(
    client, openim_server
):
    small_openim_world(openim_server.state)
    reconcile("openim")
    # Changes made on the server whose callbacks never arrived, or that send none.
    openim_server.state.update_user("alice", nickname="Alice B.")  # callback lost
    openim_server.state.update_member("g1", "bob", muteEndTime=4102444800000)  # mutes: none
    openim_server.state.update_friend("alice", "bob", remark="Bobby")  # UpdateFriends: none

    run = reconcile("openim")

    assert run.status == "succeeded", run.errors
    assert ImUser.objects.get(user_id="alice").nickname == "Alice B."
    assert member("g1", "bob").mute_end_ms == 4102444800000
    assert Friend.objects.get(owner_user_id="alice", friend_user_id="bob").remark == "Bobby"
    assert run.counts["members"]["changed"] == 1 and run.counts["friends"]["changed"] == 1


def test_a_callback_newer_than_the_snapshot_is_kept(live_server, openim_server):
    """The server answers the REST request, then a callback about a later change arrives
    before the reconcile writes: the callback's value stays."""
    small_openim_world(openim_server.state)
    url = f"{live_server.url}/openim/callback/callbackAfterUpdateUserInfoExCommand"

    def callback_during_the_request(path, body):
        if path == "/user/get_users_info":
            payload = {
                "callbackCommand": "callbackAfterUpdateUserInfoExCommand",
                "userID": "alice",
                "nickName": "Newer",
            }
            request = urllib.request.Request(
                url, go_json(payload), {"Content-Type": "application/json"}
            )
            assert json.load(urllib.request.urlopen(request, timeout=10))["errCode"] == 0

    openim_server.before_reply = callback_during_the_request
    reconcile("openim", ["users"])
    assert ImUser.objects.get(user_id="alice").nickname == "Newer"

    # And a replay of old events after the reconcile changes nothing it set.
    openim_server.before_reply = None
    reconcile("openim", ["users"])
    assert ImUser.objects.get(user_id="alice").nickname == "Alice"
    call_command("openim_replay", "--all", verbosity=0)
    assert ImUser.objects.get(user_id="alice").nickname == "Alice"


def test_an_older_callback_after_the_reconcile_loses(client, openim_server):
    small_openim_world(openim_server.state)
    member_info_callback(client, groupID="g1", userID="bob", nickName="Old card")
    reconcile("openim", ["users", "groups", "members"])
    assert member("g1", "bob").nickname == "Bobby in g1"
    # The stored callback, replayed, is older than the reconcile's read.
    call_command("openim_replay", "--all", verbosity=0)
    assert member("g1", "bob").nickname == "Bobby in g1"


# -- removals ---------------------------------------------------------------------------------


def test_deleted_group_and_removed_member_are_tombstoned_only_with_prune(openim_server):
    state = openim_server.state
    small_openim_world(state)
    state.add_group("g2", "bob", groupName="Doomed")
    for index in range(20):  # enough present rows that one removal is under the 10% guard
        state.add_user(f"u{index}")
        state.add_member("g1", f"u{index}")
    reconcile("openim", ["users", "groups", "members"])
    state.delete_group_record("g2") if hasattr(state, "delete_group_record") else None
    state.remove_member("g1", "carol")
    state.truncate_log(group_id="g1")  # the log is gone: only a full listing can tell

    run = reconcile("openim", ["groups", "members"])
    assert member("g1", "carol").removed_at is None
    assert run.counts["members"]["absent"] == 1

    run = reconcile("openim", ["groups", "members"], prune=True)
    assert run.status == "succeeded", run.errors
    carol = member("g1", "carol")
    assert (carol.removed_reason, carol.last_run_id) == ("gone", run.pk)
    assert member("g1", "bob").removed_at is None


def test_dismissed_group_is_tombstoned_as_the_callback_would(openim_server):
    small_openim_world(openim_server.state)
    reconcile("openim", ["groups", "members"])
    openim_server.state.dismiss_group("g1")
    reconcile("openim", ["groups", "members"])
    group = ImGroup.objects.get(group_id="g1")
    assert (group.status, group.removed_reason) == (2, "dismissed")
    assert not GroupMember.objects.present().filter(group_id="g1").exists()


def test_prune_refused_above_the_share_unless_forced(openim_server):
    small_openim_world(openim_server.state)
    reconcile("openim", ["groups", "members"])
    openim_server.state.remove_member("g1", "bob")
    openim_server.state.remove_member("g1", "carol")
    openim_server.state.truncate_log(group_id="g1")

    run = reconcile("openim", ["members"], prune=True)
    assert run.status == "failed"
    assert "RECONCILE_PRUNE_MAX_SHARE" in run.errors[-1]
    assert GroupMember.objects.present().count() == 3

    run = reconcile("openim", ["members"], prune=True, force=True)
    assert run.status == "succeeded"
    assert list(GroupMember.objects.present().values_list("user_id", flat=True)) == ["alice"]


# -- dry run, failures, resuming ---------------------------------------------------------------


def test_dry_run_changes_nothing_and_says_what_would(openim_server, capsys):
    small_openim_world(openim_server.state)
    call_command("openim_reconcile", "users", "groups", "members", "--dry-run")
    out = capsys.readouterr().out
    assert "users ImUser alice: create" in out
    assert "members GroupMember g1/bob: create" in out
    assert "Would change" in out
    assert not ImUser.objects.exists() and not GroupMember.objects.exists()
    assert ReconcileRun.objects.get().dry_run


def test_token_expiry_mid_run(openim_server):
    small_openim_world(openim_server.state)
    calls = []

    def expire_once(path, body):
        if path == "/group/get_groups" and not calls:
            calls.append(path)
            openim_server.expire_tokens()

    openim_server.before_reply = expire_once
    run = reconcile("openim", ["users", "groups", "members"])
    assert run.status == "succeeded", run.errors
    assert ImGroup.objects.filter(group_id="g1").exists()
    assert openim_server.requests["/auth/get_admin_token"] >= 2


def test_server_error_is_retried_then_counted(openim_server):
    small_openim_world(openim_server.state)
    openim_server.fail_next("/user/get_users_info", times=1, status=500)
    run = reconcile("openim", ["users"])
    assert run.status == "succeeded", run.errors
    assert ImUser.objects.filter(app_manager_level=1).count() == 3

    openim_server.fail_next("/friend/get_incremental_friends", times=50, status=500)
    run = reconcile("openim", ["friends"])
    assert run.status == "failed"
    assert run.counts["friends"]["failed"] >= 1


def test_old_server_without_version_logs(openim_settings):
    with FakeOpenIMServer(version="3.7.0", secret=SECRET, admin_user_ids=(ADMIN,)) as server:
        openim_settings(
            OPENIM_API_URL=server.url, OPENIM_ADMIN_USER_ID=ADMIN, OPENIM_API_SECRET=SECRET
        )
        small_openim_world(server.state)
        run = reconcile("openim", ["users", "groups", "members", "friends", "blocks"])
        assert run.status == "succeeded", run.errors
        assert server.requests["/auth/user_token"] >= 1
        assert GroupMember.objects.present().count() == 3
        assert Friend.objects.count() == 2


def test_tencent_throttling_is_obeyed(tencent_server, openim_settings):
    state = tencent_server.state
    for index in range(5):
        state.add_account(f"u{index}", Tag_Profile_IM_Nick=f"User {index}")
        state.add_group(f"@TGS#{index}", f"u{index}", Name=f"G{index}")
    openim_settings(TENCENT_ACCOUNT_IDS=lambda: [f"u{i}" for i in range(5)])
    tencent_server.throttle_next("v4/profile/portrait_get", times=2, code=60007)

    run = reconcile("tencent", ["users", "groups"])

    assert run.status == "succeeded", run.errors
    assert ImUser.objects.count() == 5 and ImGroup.objects.count() == 5
    # The throttled call was tried again (after a wait), and nothing went over the limits.
    assert tencent_server.requests["v4/profile/portrait_get"] == 3
    assert tencent_server.rate_limited == 0


def test_tencent_client_spaces_calls_to_the_per_api_limit(tencent_server):
    """get_appid_group_list allows one call per second: three pages take two seconds, and the
    server refuses none of them."""
    for index in range(5):
        tencent_server.state.add_group(f"@TGS#{index}", "owner", Name=f"G{index}")
    client = client_for("tencent")
    started = time.monotonic()
    pages = [ids for _reply, ids in client.group_ids(page_size=2)]
    client.close()
    assert sorted(i for page in pages for i in page) == [f"@TGS#{i}" for i in range(5)]
    assert len(pages) == 3 and time.monotonic() - started >= 1.9
    assert tencent_server.rate_limited == 0


def test_interrupted_run_resumes_where_it_stopped(openim_server):
    state = openim_server.state
    users = [f"u{index:03}" for index in range(450)]
    for index, user_id in enumerate(users):
        state.add_user(user_id)
        state.add_friend(user_id, users[(index + 1) % len(users)])
    reconcile("openim", ["users"])

    def interrupt(**kwargs):
        raise KeyboardInterrupt  # after the first batch of owners is committed

    signals.mirror_changed.connect(interrupt, dispatch_uid="interrupt")
    try:
        with pytest.raises(KeyboardInterrupt):
            reconcile("openim", ["friends"])
    finally:
        signals.mirror_changed.disconnect(dispatch_uid="interrupt")
    run = ReconcileRun.objects.first()
    assert run.status == "interrupted"
    owners = sorted([*users, ADMIN])  # the admin account is a user (with no friends)
    assert Friend.objects.count() == len(set(owners[:200]) & set(users))  # the first batch
    openim_server.reset_counts()

    resumed = reconcile("openim", resume=run)

    assert resumed.pk == run.pk and resumed.status == "succeeded", resumed.errors
    assert Friend.objects.count() == 450
    # Owners finished before the interruption were not asked again.
    assert openim_server.requests["/friend/get_incremental_friends"] == len(owners) - 200


# -- the command -------------------------------------------------------------------------------


def test_command_summary_and_exit_status(openim_server, capsys):
    small_openim_world(openim_server.state)
    call_command("openim_reconcile", "users")
    out, err = capsys.readouterr()
    assert "Reconcile #" in out and "4 read, 4 changed" in out
    # Progress on stderr (not a terminal here: a line per tenth), then the kind's counts.
    assert err.splitlines() == ["users: reading…", "users: 4 of 4 done", "users: 4 read, 4 changed"]

    call_command("openim_reconcile", "users", "--verbosity", "0")
    assert capsys.readouterr() == ("", "")

    openim_server.fail_next("/user/get_users_info", times=50, status=500)
    with pytest.raises(SystemExit) as exit_info:
        call_command("openim_reconcile", "users", "--verbosity", "0")
    assert exit_info.value.code == 1


def test_signals_carry_the_source(openim_server, client):
    small_openim_world(openim_server.state)
    received = []

    def receiver(sender, rows, source, event, run, **kwargs):
        received.append((source, sorted(type(r).__name__ for r in rows), run and run.pk))

    signals.mirror_changed.connect(receiver, dispatch_uid="test")
    try:
        run = reconcile("openim", ["users"])
        reconcile("openim", ["users"])  # nothing changed: no signal
    finally:
        signals.mirror_changed.disconnect(dispatch_uid="test")
    assert received == [("reconcile", ["ImUser"] * 4, run.pk)]


def test_tencent_callback_with_a_later_event_time_wins(tencent_server, client, openim_settings):
    tencent_server.state.add_account("u1", Tag_Profile_IM_Nick="Server")
    openim_settings(TENCENT_ACCOUNT_IDS=["u1"].copy)
    future = 4102444800000
    body = {
        "CallbackCommand": "Profile.CallbackPortraitSet",
        "From_Account": "u1",
        "EventTime": future,
        "ProfileItem": [{"Tag": "Tag_Profile_IM_Nick", "Value": "From the future"}],
    }
    assert post_tencent(client, body).status_code == 200
    reconcile("tencent", ["users"])
    assert ImUser.objects.get(user_id="u1").nickname == "From the future"


# -- from admin ---------------------------------------------------------------------------------


def test_admin_resync_selected(admin_client, openim_server):
    small_openim_world(openim_server.state)
    reconcile("openim", ["users"])
    openim_server.state.update_user("bob", nickname="Bob (renamed)")
    openim_server.state.update_friend("bob", "alice", remark="Al")
    bob = ImUser.objects.get(user_id="bob")

    response = admin_client.post(
        "/admin/openim_sync/imuser/",
        {"action": "resync_selected", "_selected_action": [bob.pk]},
        follow=True,
    )

    assert response.status_code == 200
    run = ReconcileRun.objects.first()
    assert run.scope == ["users", "friends", "blocks", "online"]
    assert run.options["ids"] == ["bob"]
    text = [str(m) for m in response.context["messages"]]
    assert any(f"Reconcile #{run.pk}" in t and "succeeded" not in t for t in text), text
    assert ImUser.objects.get(user_id="bob").nickname == "Bob (renamed)"
    assert Friend.objects.get(owner_user_id="bob", friend_user_id="alice").remark == "Al"
    # Only bob was read.
    assert ImUser.objects.get(user_id="alice").last_run_id != run.pk


def test_admin_resync_without_a_configured_server(admin_client, db):
    ImUser.objects.create(user_id="alice")
    pk = ImUser.objects.get().pk
    response = admin_client.post(
        "/admin/openim_sync/imuser/",
        {"action": "resync_selected", "_selected_action": [pk]},
        follow=True,
    )
    text = [str(m) for m in response.context["messages"]]
    assert text == [
        "Re-sync failed: No REST API is configured for reconcile (see docs/reconcile.md)."
    ]


# -- settings -----------------------------------------------------------------------------------


def check_ids():
    from openim_sync.checks import check_reconcile_settings

    return [m.id for m in check_reconcile_settings(None)]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"OPENIM_API_URL": "http://openim:10002"}, ["openim_sync.E010"]),
        ({"TENCENT_ADMIN_IDENTIFIER": "administrator"}, ["openim_sync.E010"]),
        (
            {
                "OPENIM_API_URL": "openim:10002",
                "OPENIM_ADMIN_USER_ID": "sync",
                "OPENIM_API_SECRET": "s",
            },
            ["openim_sync.E011"],
        ),
        ({"RECONCILE_PRUNE_MAX_SHARE": 2}, ["openim_sync.E011"]),
        ({"RECONCILE_MAX_RPS": 0}, ["openim_sync.E011"]),
        (
            {
                "OPENIM_API_URL": "http://openim:10002",
                "OPENIM_ADMIN_USER_ID": "imAdmin",
                "OPENIM_API_SECRET": "s",
            },
            ["openim_sync.W010"],
        ),
        (
            {
                "OPENIM_API_URL": "http://openim:10002",
                "OPENIM_ADMIN_USER_ID": "openim-sync",
                "OPENIM_API_SECRET": "s",
            },
            [],
        ),
    ],
)
def test_reconcile_settings_checks(openim_settings, values, expected):
    openim_settings(**values)
    assert check_ids() == expected


def test_command_without_configuration_says_what_to_set(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No REST API is configured"):
        call_command("openim_reconcile")


def test_usersig_matches_the_reference_value():
    from openim_sync.reconcile import usersig

    # rest-apis.md §2.2: the reference library's inner TLS.sig for these inputs.
    assert (
        usersig.signature(1400000000, KEY, "administrator", 1700000000, 86400)
        == "yLAe+w7WUeUuqbV9h/TX78u21oTGi+i9Zp1u3PpnY60="
    )
    sig = usersig.generate(1400000000, KEY, "administrator", 86400, now=1700000000)
    assert not set(sig) & set("+/=")  # Tencent's alphabet
    assert usersig.decode(sig)["TLS.sig"] == "yLAe+w7WUeUuqbV9h/TX78u21oTGi+i9Zp1u3PpnY60="
    assert usersig.verify(sig, 1400000000, KEY, now=1700000001)
    assert not usersig.verify(sig, 1400000000, KEY, now=1700086401)  # expired
    assert not usersig.verify(sig, 1400000000, "another key", now=1700000001)


@pytest.mark.parametrize("version", ["3.7.0", "3.8.0", "3.8.1", "main"])
def test_admin_token_on_every_server_version(openim_settings, version):
    with FakeOpenIMServer(version=version, secret=SECRET, admin_user_ids=(ADMIN,)) as server:
        openim_settings(
            OPENIM_API_URL=server.url, OPENIM_ADMIN_USER_ID=ADMIN, OPENIM_API_SECRET=SECRET
        )
        server.state.add_user("alice", nickname="Alice")
        run = reconcile("openim", ["users"])
        assert run.status == "succeeded", run.errors
        assert ImUser.objects.get(user_id="alice").nickname == "Alice"
        token_route = (
            "/auth/get_admin_token" if version in ("3.8.1", "main") else "/auth/user_token"
        )
        assert server.requests[token_route] == 1


def test_unknown_ids_are_counted_not_failed(openim_server):
    small_openim_world(openim_server.state)
    run = reconcile("openim", ["users"], ids=["alice", "ghost"])
    assert run.status == "succeeded", run.errors
    assert run.counts["users"] == {"read": 1, "changed": 1, "removed": 0, "missing": 1}
    assert not ImUser.objects.filter(user_id="ghost").exists()


def test_tencent_destroyed_group_is_tombstoned_with_prune(tencent_server, openim_settings):
    state = tencent_server.state
    for index in range(12):
        state.add_account(f"u{index}")
        state.add_group(f"@TGS#{index}", f"u{index}", Name=f"G{index}")
    openim_settings(TENCENT_ACCOUNT_IDS=lambda: [f"u{i}" for i in range(12)])
    reconcile("tencent", ["users", "groups", "members"])
    state.destroy_group("@TGS#3")

    run = reconcile("tencent", ["groups"])
    assert run.counts["groups"]["absent"] == 1
    assert ImGroup.objects.get(group_id="@TGS#3").removed_at is None

    run = reconcile("tencent", ["groups"], prune=True)
    assert run.status == "succeeded", run.errors
    gone = ImGroup.objects.get(group_id="@TGS#3")
    assert (gone.removed_reason, gone.last_run_id) == ("gone", run.pk)
    # Its members went with it (the writer's parent rule), the other groups stay.
    assert not GroupMember.objects.present().filter(group_id="@TGS#3").exists()
    assert ImGroup.objects.present().count() == 11


def test_prune_never_creates_tombstones_for_ids_never_seen(openim_server):
    small_openim_world(openim_server.state)
    run = reconcile("openim", ["groups"], ids=["g1", "no-such-group"], prune=True, force=True)
    assert run.status == "succeeded", run.errors
    assert list(ImGroup.objects.values_list("group_id", flat=True)) == ["g1"]


def test_ids_without_kinds_is_an_error(openim_server):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--ids needs the kinds"):
        call_command("openim_reconcile", "--ids", "alice")


def test_max_rps_caps_all_requests_together(openim_server):
    """``--max-rps`` is one cap over every endpoint, not one per endpoint."""
    small_openim_world(openim_server.state)
    client = client_for("openim", max_rps=10)
    started = time.monotonic()
    for _ in range(3):
        client.users_info(["alice"])
        client.groups_info(["g1"])
    client.close()
    # 7 requests (the admin token first) at 10/s: at least 6 gaps of 0.1 s.
    assert time.monotonic() - started >= 0.6
