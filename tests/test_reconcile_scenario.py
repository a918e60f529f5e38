"""The OpenIM scenario day with 10% of its callbacks lost, repaired by one reconcile.

The full day is sent once to learn the server's end state, which the fake OpenIM server is then
given; the mirror is emptied, the day is sent again with every tenth callback lost on the way
(each offset in turn, so every callback but the first is lost in one of the runs), and one ``openim_reconcile
--prune`` must bring the mirror back to the full day's: the same rows present, with the same
values.
"""

from types import SimpleNamespace

import pytest
from django.core.management import call_command

from openim_sync.models import (
    BlockedUser,
    CallbackEvent,
    Friend,
    GroupMember,
    ImGroup,
    ImUser,
    OnlineSession,
    ReconcileRun,
)
from openim_sync.testing import FakeOpenIMServer
from tests.test_scenario import mirror, openim_day

ADMIN, SECRET = "openim-sync", "openIM123"
pytestmark = pytest.mark.django_db(transaction=True)


class LossyNetwork:
    """The test client, except that every ``every``-th callback never arrives (never the
    first: the day's helpers check the newest stored event after each callback)."""

    def __init__(self, client, every=10, offset=0):
        self.client, self.every, self.offset, self.sent = client, every, offset, 0

    def generic(self, *args, **kwargs):
        self.sent += 1
        if self.sent > 1 and self.sent % self.every == self.offset:
            return SimpleNamespace(status_code=200, content=b"lost on the way")
        return self.client.generic(*args, **kwargs)


def comparable(state):
    """What the mirror says is on the server: the present rows and their values, without the
    admin account. A tombstone and a row never seen both say "not there" (a lost remove-black
    callback leaves no row; a callback says "quit" where a listing can only say "gone")."""
    return {
        "users": {k: v for k, v in state["users"].items() if k != ADMIN},
        "groups": {k: v for k, v in state["groups"].items() if v["removed"] is None},
        "members": {k: v[:2] for k, v in state["members"].items() if v[2] is None},
        "friends": {k: v[0] for k, v in state["friends"].items() if v[1] is None},
        "blocked": {k for k, v in state["blocked"].items() if v is None},
        "sessions": {k for k, v in state["sessions"].items() if v[0]},
    }


def serve(server):
    """Give the fake server the state the full day left on the mirror."""
    state = server.state
    for user in ImUser.objects.all():
        state.add_user(user.user_id, nickname=user.nickname, faceURL=user.face_url, ex=user.ex)
    for group in ImGroup.objects.all():
        state.add_group(
            group.group_id,
            group.owner_user_id,
            groupName=group.name,
            notification=group.notification,
        )
        present = GroupMember.objects.present().filter(group_id=group.group_id)
        for member in present.exclude(user_id=group.owner_user_id):
            state.add_member(
                group.group_id,
                member.user_id,
                roleLevel=member.role_level,
                nickname=member.nickname,
            )
        owner = present.filter(user_id=group.owner_user_id).first()
        if owner is not None and owner.nickname:
            state.update_member(group.group_id, owner.user_id, nickname=owner.nickname)
        if group.removed_at is not None:
            state.dismiss_group(group.group_id)
    for friend in Friend.objects.present():
        state.add_friend(friend.owner_user_id, friend.friend_user_id, remark=friend.remark)
    for block in BlockedUser.objects.present():
        state.add_black(block.owner_user_id, block.blocked_user_id)
    online = {}
    for session in OnlineSession.objects.filter(online=True):
        online.setdefault(session.user_id, []).append(session.platform_id)
    for user_id, platform_ids in online.items():
        state.set_online(user_id, platform_ids)


def empty_the_mirror():
    for model in (ImUser, ImGroup, GroupMember, Friend, BlockedUser, OnlineSession):
        model.objects.all().delete()
    CallbackEvent.objects.all().delete()
    ReconcileRun.objects.all().delete()


@pytest.mark.parametrize("offset", range(10))
def test_a_day_with_lost_callbacks_is_repaired_by_one_reconcile(client, openim_settings, offset):
    openim_day(client)
    full_day = comparable(mirror())
    with FakeOpenIMServer(secret=SECRET, admin_user_ids=(ADMIN,)) as server:
        serve(server)
        openim_settings(
            OPENIM_API_URL=server.url, OPENIM_ADMIN_USER_ID=ADMIN, OPENIM_API_SECRET=SECRET
        )
        empty_the_mirror()
        network = LossyNetwork(client, offset=offset)
        openim_day(network)
        assert network.sent > 20
        lossy_day = comparable(mirror())

        call_command("openim_reconcile", "--prune", "--force", verbosity=0)

    assert lossy_day != full_day  # something was lost...
    assert comparable(mirror()) == full_day  # ...and is back
