"""Reads of Tencent Cloud Chat, kind by kind (``rest-apis.md`` §2).

Tencent has no "list all accounts": the users are those the mirror knows, the ids passed in,
and what ``TENCENT_ACCOUNT_IDS`` (a dotted path to a callable) returns. Absent rows are
confirmed by a second complete listing (groups: by their own ``ErrorCode`` 10010).
"""

from django.utils.module_loading import import_string

from openim_sync.callbacks.fields import platform_name
from openim_sync.conf import app_settings
from openim_sync.models import BlockedUser, Friend, GroupMember, ImGroup, ImUser

from . import mapping
from .engine import Absent, Read
from .sources import (
    after,
    chunks,
    guarded,
    ordered_map,
    present_by,
    progress_chunks,
    session_reads,
    sessions_of,
)

ACCOUNT_BATCH = 100
GROUP_INFO_BATCH = 50
ONLINE_BATCH = 500
#: Audio-video chat rooms have no member list on Tencent's REST API.
NO_MEMBER_LIST = {"AVChatRoom", "BChatRoom"}


class TencentSource:
    protocol = "tencent"

    def __init__(self, client, *, page_size=100, workers=4):
        self.client, self.page_size, self.workers = client, page_size, workers
        #: Group types this run read (a dry run writes none to the mirror).
        self.group_types = {}

    def known_users(self, ids=None):
        if ids is not None:
            return sorted(set(ids))
        known = set(ImUser.objects.values_list("user_id", flat=True))
        hook = app_settings.TENCENT_ACCOUNT_IDS
        if hook:
            known.update(str(u) for u in (import_string(hook) if isinstance(hook, str) else hook)())
        return sorted(known)

    # -- users ----------------------------------------------------------------------------------

    def users(self, engine, ids):
        users = self.known_users(ids)
        for chunk in progress_chunks(engine, "users", users, ACCOUNT_BATCH):
            _reply, imported = self.client.account_check(chunk)
            present = [u for u in chunk if imported.get(u)]
            engine.missing("users", len(chunk) - len(present))
            if not present:
                continue
            reply, profiles = self.client.portraits(present, self.profile_tags())
            changes = [mapping.tencent_user(u, profiles[u]) for u in present if u in profiles]
            engine.add(Read("users", reply.sent_ms, changes, items=len(changes)))
        return len(users)

    def profile_tags(self):
        """The standard tags and the custom ones the mirror has seen (Tencent returns only
        the tags asked for, and custom tags must be named)."""
        if not hasattr(self, "_tags"):
            custom = set()
            for row in ImUser.objects.exclude(custom={}).values_list("custom", flat=True):
                custom.update(tag for tag in row if tag.startswith("Tag_Profile_Custom_"))
            self._tags = [*mapping.TENCENT_PROFILE_TAGS, *sorted(custom)]
        return self._tags

    # -- groups ---------------------------------------------------------------------------------

    def groups(self, engine, ids):
        if ids is None:
            listed = set()
            for _reply, page in self.client.group_ids():
                listed.update(page)
            group_ids = listed | set(ImGroup.objects.present().values_list("group_id", flat=True))
        else:
            group_ids = set(ids)
        for chunk in chunks(sorted(group_ids), GROUP_INFO_BATCH):
            reply, infos = self.client.groups_info(chunk)
            changes = [mapping.tencent_group(info) for info in infos.values() if info]
            self.group_types.update(
                {info["GroupId"]: info.get("Type") or "" for info in infos.values() if info}
            )
            engine.add(Read("groups", reply.sent_ms, changes, items=len(changes)))
            gone = [g for g in chunk if g in infos and infos[g] is None]
            engine.mark_absent(
                "groups", [Absent(ImGroup, {"group_id": g}, reply.sent_ms) for g in gone]
            )
        if ids is None:
            return ImGroup.objects.present().count()
        return len(group_ids)

    # -- members --------------------------------------------------------------------------------

    def members(self, engine, ids):
        groups = ImGroup.objects.present()
        if ids is not None:
            groups = groups.filter(group_id__in=list(ids))
        types = dict(groups.values_list("group_id", "group_type"))
        wanted = set(ids) if ids is not None else None
        types.update({g: t for g, t in self.group_types.items() if wanted is None or g in wanted})
        todo = [
            g
            for g in after(sorted(types), engine.after("members"))
            if types[g] not in NO_MEMBER_LIST
        ]
        for chunk in progress_chunks(engine, "members", todo, 100):
            known = present_by(GroupMember, "group_id", chunk, "user_id")
            fetch = guarded(lambda g: self._members(g, types[g]))
            for group_id, result, error in ordered_map(fetch, chunk, self.workers):
                if error is not None:
                    engine.failed("members", error, group_id)
                    continue
                reply, members = result
                changes = [mapping.tencent_member(group_id, m) for m in members]
                engine.add(
                    Read("members", reply.sent_ms, changes, items=len(changes), done_key=group_id)
                )
                gone = known.get(group_id, set()) - {c.key["user_id"] for c in changes}
                if gone:
                    # A second listing confirms the absence.
                    again, members = self._members(group_id, types[group_id])
                    still = {m["Member_Account"] for m in members}
                    engine.mark_absent(
                        "members",
                        [
                            Absent(GroupMember, {"group_id": group_id, "user_id": u}, again.sent_ms)
                            for u in sorted(gone - still)
                        ],
                    )
        total = GroupMember.objects.present()
        if ids is not None:
            total = total.filter(group_id__in=list(ids))
        return total.count()

    def _members(self, group_id, group_type):
        return self.client.group_members(group_id, group_type, self.page_size)

    # -- friends and blocks ---------------------------------------------------------------------

    def friends(self, engine, ids):
        return self._edges(
            engine,
            ids,
            "friends",
            Friend,
            "friend_user_id",
            self.client.friends,
            mapping.tencent_friend,
        )

    def blocks(self, engine, ids):
        return self._edges(
            engine,
            ids,
            "blocks",
            BlockedUser,
            "blocked_user_id",
            self.client.blocks,
            mapping.tencent_block,
        )

    def _edges(self, engine, ids, kind, model, other, listing, change):
        owners = self.known_users(ids)
        for chunk in progress_chunks(engine, kind, after(owners, engine.after(kind)), 200):
            known = present_by(model, "owner_user_id", chunk, other)
            fetch = guarded(listing)
            for owner, result, error in ordered_map(fetch, chunk, self.workers):
                if error is not None:
                    engine.failed(kind, error, owner)
                    continue
                reply, items = result
                changes = [change(owner, item) for item in items]
                engine.add(Read(kind, reply.sent_ms, changes, items=len(items), done_key=owner))
                gone = known.get(owner, set()) - {c.key[other] for c in changes}
                if gone:
                    again, items = listing(owner)
                    still = {item["To_Account"] for item in items}
                    engine.mark_absent(
                        kind,
                        [
                            Absent(model, {"owner_user_id": owner, other: u}, again.sent_ms)
                            for u in sorted(gone - still)
                        ],
                    )
        return model.objects.present().filter(owner_user_id__in=owners).count()

    # -- online ---------------------------------------------------------------------------------

    def online(self, engine, ids):
        users = self.known_users(ids)
        for chunk in progress_chunks(engine, "online", users, ONLINE_BATCH):
            reply, statuses = self.client.online_status(chunk)
            states = {}
            for user_id in chunk:
                status = statuses.get(user_id) or {"status": "Offline", "platforms": {}}
                states[user_id] = {
                    platform_name(platform): {"reason": "Login"}
                    for platform, platform_status in status["platforms"].items()
                    if platform_status == "Online"
                }
                if status["status"] == "Online" and not states[user_id]:
                    states[user_id] = {}  # online without detail: nothing to say per platform
            for read in session_reads("online", reply.sent_ms, states, sessions_of(chunk)):
                engine.add(read)
            engine.counts["online"]["read"] += len(statuses)
        return None
