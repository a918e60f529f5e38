"""Reads of an OpenIM server, kind by kind (``rest-apis.md`` §1).

Members, friends and blocks use the version-log endpoints of v3.8.0+ when the server has them:
a stored ``(versionID, version)`` per group or owner turns a run with nothing changed into one
cheap probe per group batch and per owner, with no listing. A reply with ``full: true`` (first
run, or a log the server truncated) leads to a full listing; servers before v3.8.0 (HTTP 404)
are listed in full every time.
"""

from openim_sync.callbacks.fields import platform_name
from openim_sync.models import BlockedUser, Friend, GroupMember, ImGroup, ImUser, SyncCursor

from . import mapping
from .engine import Absent, Read
from .http import RestError
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

INFO_BATCH = 500
GROUP_BATCH = 100
PROBE_ROUNDS = 3
#: Answers meaning "this server keeps no version log here": no route (before v3.8.0), or
#: errCode 12, gRPC's Unimplemented (v3.8.3 and main's get_incremental_blacks).
NO_VERSION_LOG = (404, 12)


class OpenIMSource:
    protocol = "openim"

    def __init__(self, client, *, page_size=500, workers=4, full_listings=False):
        self.client, self.page_size, self.workers = client, page_size, workers
        # --prune needs complete listings: the version logs only say what changed.
        self.incremental = not full_listings
        self.incremental_edges = dict.fromkeys(EDGES, False) if full_listings else {}
        # What this run read, so that later kinds (and a dry run, which writes nothing) see it.
        self.listed_users, self.listed_groups = set(), set()

    # -- users ----------------------------------------------------------------------------------

    def users(self, engine, ids):
        if ids is None:
            listed = set()
            for _reply, page in self.client.all_user_ids(max(self.page_size, 1000)):
                listed.update(page)
            ids = sorted(listed | set(ImUser.objects.values_list("user_id", flat=True)))
        for chunk in progress_chunks(engine, "users", ids, INFO_BATCH):
            reply, infos = self.client.users_info(chunk)
            self.listed_users.update(i["userID"] for i in infos)
            engine.add(
                Read(
                    "users",
                    reply.sent_ms,
                    [mapping.openim_user(i) for i in infos],
                    items=len(infos),
                )
            )
            engine.missing("users", len(set(chunk) - {i["userID"] for i in infos}))
        return len(ids)

    # -- groups ---------------------------------------------------------------------------------

    def groups(self, engine, ids):
        listed = set()
        if ids is None:
            for reply, infos in self.client.groups(self.page_size):
                listed.update(i["groupID"] for i in infos)
                self.listed_groups.update(i["groupID"] for i in infos)
                engine.add(
                    Read(
                        "groups",
                        reply.sent_ms,
                        [mapping.openim_group(i) for i in infos],
                        items=len(infos),
                    )
                )
            others = set(ImGroup.objects.present().values_list("group_id", flat=True)) - listed
        else:
            others = set(ids)
        for chunk in chunks(sorted(others), INFO_BATCH):
            # Dismissed groups (status 2) are only in get_groups_info; absent ids are gone.
            reply, infos = self.client.groups_info(chunk)
            changes = [mapping.openim_group(i) for i in infos]
            self.listed_groups.update(c.key["group_id"] for c in changes if c.present)
            engine.add(
                Read(
                    "groups",
                    reply.sent_ms,
                    changes,
                    items=len(infos),
                )
            )
            gone = set(chunk) - {i["groupID"] for i in infos}
            engine.mark_absent(
                "groups", [Absent(ImGroup, {"group_id": g}, reply.sent_ms) for g in sorted(gone)]
            )
        return ImGroup.objects.present().count() if ids is None else len(ids)

    # -- members --------------------------------------------------------------------------------

    def members(self, engine, ids):
        group_ids = (
            sorted(ids)
            if ids is not None
            else sorted(
                set(ImGroup.objects.present().values_list("group_id", flat=True))
                | self.listed_groups
            )
        )
        todo = after(group_ids, engine.after("members"))
        for chunk in progress_chunks(engine, "members", todo, GROUP_BATCH):
            if self.incremental:
                try:
                    self._member_probes(engine, chunk)
                except RestError as exc:
                    if exc.code not in NO_VERSION_LOG:
                        raise
                    self.incremental = False
            if not self.incremental:
                self._member_listings(engine, [(g, None) for g in chunk])
            engine.flush()
        return (
            GroupMember.objects.present().filter(group_id__in=group_ids).count()
            if ids
            else (GroupMember.objects.present().count())
        )

    def _member_probes(self, engine, group_ids):
        cursors = _cursors("members", group_ids)
        pending, answers = list(group_ids), {}
        for _round in range(PROBE_ROUNDS):
            if not pending:
                break
            requests = [(g, *cursors.get(g, ("", 0))) for g in pending]
            reply, resp = self.client.incremental_members_batch(requests)
            for group_id, data in resp.items():
                answers[group_id] = (reply, data)
            pending = [g for g in pending if g not in resp]
        for group_id in pending:  # dismissed (1204) or left out again
            version_id, version = cursors.get(group_id, ("", 0))
            try:
                answers[group_id] = (
                    self.client.incremental_members(group_id, version_id, version),
                    None,
                )
            except RestError as exc:
                if exc.code == 1204:
                    engine.add(
                        Read(
                            "members",
                            exc.sent_ms,
                            [mapping.removed(ImGroup, {"group_id": group_id}, "dismissed")],
                        )
                    )
                else:
                    engine.failed("members", exc, group_id)
        full = []
        for group_id in group_ids:
            if group_id not in answers:
                continue
            reply, data = answers[group_id]
            data = reply.data if data is None else data
            cursor = (group_id, data.get("versionID"), data.get("version"))
            if data.get("full"):
                full.append((group_id, cursor))
                continue
            changes = self._member_deltas(group_id, data)
            engine.add(
                Read(
                    "members",
                    reply.sent_ms,
                    changes,
                    items=len(changes),
                    cursor=cursor,
                )
            )
        self._member_listings(engine, full)

    def _member_deltas(self, group_id, data):
        members = [*(data.get("insert") or []), *(data.get("update") or [])]
        profiles = _profiles([m["userID"] for m in members])
        changes = [mapping.openim_member(m, profiles.get(m["userID"])) for m in members]
        changes += [
            mapping.removed(GroupMember, {"group_id": group_id, "user_id": u}, "removed")
            for u in data.get("delete") or []
        ]
        return changes

    def _member_listings(self, engine, groups):
        """Full listings of ``[(group_id, cursor or None)]``, in parallel."""
        cursors = dict(groups)
        ids = [g for g, _cursor in groups]
        known = present_by(GroupMember, "group_id", ids, "user_id")
        fetch = guarded(lambda g: self.client.group_members(g, self.page_size))
        for group_id, result, error in ordered_map(fetch, ids, self.workers):
            if error is not None:
                if error.code == 1204:
                    engine.add(
                        Read(
                            "members",
                            error.sent_ms,
                            [mapping.removed(ImGroup, {"group_id": group_id}, "dismissed")],
                            done_key=group_id,
                        )
                    )
                    continue
                engine.failed("members", error, group_id)
                continue
            reply, members = result
            profiles = _profiles([m["userID"] for m in members])
            changes = [mapping.openim_member(m, profiles.get(m["userID"])) for m in members]
            engine.add(
                Read(
                    "members",
                    reply.sent_ms,
                    changes,
                    items=len(members),
                    cursor=cursors.get(group_id),
                    done_key=group_id,
                )
            )
            gone = known.get(group_id, set()) - {m["userID"] for m in members}
            if gone:
                self._confirm_members(engine, group_id, sorted(gone))

    def _confirm_members(self, engine, group_id, user_ids):
        reply_info = self.client.call(
            "/group/get_group_members_info", {"groupID": group_id, "userIDs": user_ids}
        )
        still = {m["userID"] for m in reply_info.data.get("members") or []}
        engine.mark_absent(
            "members",
            [
                Absent(GroupMember, {"group_id": group_id, "user_id": u}, reply_info.sent_ms)
                for u in user_ids
                if u not in still
            ],
        )

    # -- friends and blocks ---------------------------------------------------------------------

    def friends(self, engine, ids):
        return self._edges(engine, ids, EDGES["friends"])

    def blocks(self, engine, ids):
        return self._edges(engine, ids, EDGES["blocks"])

    def _edges(self, engine, ids, edges):
        owners = (
            sorted(ids)
            if ids is not None
            else sorted(set(ImUser.objects.values_list("user_id", flat=True)) | self.listed_users)
        )
        todo = after(owners, engine.after(edges.kind))
        for chunk in progress_chunks(engine, edges.kind, todo, 200):
            cursors = _cursors(edges.kind, chunk)
            known = present_by(edges.model, "owner_user_id", chunk, edges.other)
            fetch = guarded(lambda o, c=cursors: self._fetch_edges(edges, o, c))
            for owner, result, error in ordered_map(fetch, chunk, self.workers):
                if error is not None:
                    engine.failed(edges.kind, error, owner)
                    continue
                mode, reply, payload, cursor = result
                if mode == "delta":
                    infos = [*(payload.get("insert") or []), *(payload.get("update") or [])]
                    changes = [edges.change(i, owner) for i in infos]
                    changes += [
                        mapping.removed(
                            edges.model, {"owner_user_id": owner, edges.other: u}, "removed"
                        )
                        for u in payload.get("delete") or []
                    ]
                    engine.add(
                        Read(
                            edges.kind,
                            reply.sent_ms,
                            changes,
                            items=len(infos),
                            cursor=cursor,
                            done_key=owner,
                        )
                    )
                    continue
                changes = [edges.change(i, owner) for i in payload]
                engine.add(
                    Read(
                        edges.kind,
                        reply.sent_ms,
                        changes,
                        items=len(payload),
                        cursor=cursor,
                        done_key=owner,
                    )
                )
                listed = {c.key[edges.other] for c in changes}
                gone = sorted(known.get(owner, set()) - listed)
                if gone:
                    self._confirm_edges(engine, edges, owner, gone)
            engine.flush()
        if ids is not None:
            return edges.model.objects.present().filter(owner_user_id__in=owners).count()
        return edges.model.objects.present().count()

    def _fetch_edges(self, edges, owner, cursors):
        """In a worker thread (HTTP only): ``(mode, reply, items or delta, cursor)``."""
        if self.incremental_edges.get(edges.kind, True):
            version_id, version = cursors.get(owner, ("", 0))
            try:
                probe = self.client.call(
                    edges.incremental,
                    {"userID": owner, "versionID": version_id, "version": version},
                )
            except RestError as exc:
                if exc.code not in NO_VERSION_LOG:
                    raise
                self.incremental_edges[edges.kind] = False
            else:
                data = probe.data
                cursor = (owner, data.get("versionID"), data.get("version"))
                if not data.get("versionID"):
                    # A stub with no log behind it (OpenIM v3.8.0-3.8.2's blacks): its
                    # "nothing changed" means nothing; list in full.
                    self.incremental_edges[edges.kind] = False
                    cursor = None
                elif not data.get("full"):
                    return "delta", probe, data, cursor
                reply, items = edges.list(self.client, owner, self.page_size)
                return "full", reply or probe, items, cursor
        reply, items = edges.list(self.client, owner, self.page_size)
        return "full", reply, items, None

    def _confirm_edges(self, engine, edges, owner, other_ids):
        try:
            reply = self.client.call(
                edges.designated, {"ownerUserID": owner, edges.designated_list: other_ids}
            )
        except RestError as exc:
            if exc.code != 404:
                raise
            return  # v3.8.0 has no get_specified_blacks: the listing alone is not confirmation
        still = {edges.other_id(i) for i in reply.data.get(edges.designated_key) or []}
        engine.mark_absent(
            edges.kind,
            [
                Absent(edges.model, {"owner_user_id": owner, edges.other: u}, reply.sent_ms)
                for u in other_ids
                if u not in still
            ],
        )

    # -- online ---------------------------------------------------------------------------------

    def online(self, engine, ids):
        users = (
            sorted(ids)
            if ids is not None
            else sorted(set(ImUser.objects.values_list("user_id", flat=True)) | self.listed_users)
        )
        for chunk in progress_chunks(engine, "online", users, INFO_BATCH):
            reply, statuses = self.client.users_status(chunk)
            states = {
                user_id: {
                    platform_name(None, p): {"platform_id": p} for p in statuses.get(user_id, [])
                }
                for user_id in chunk
            }
            for read in session_reads("online", reply.sent_ms, states, sessions_of(chunk)):
                engine.add(read)
            engine.counts["online"]["read"] += len(statuses)
        return None


class Edges:
    def __init__(
        self,
        kind,
        model,
        other,
        change,
        incremental,
        list_fn,
        designated,
        designated_list,
        designated_key,
        other_id,
    ):
        self.kind, self.model, self.other, self.change = kind, model, other, change
        self.incremental, self.list, self.designated = incremental, list_fn, designated
        self.designated_list, self.designated_key, self.other_id = (
            designated_list,
            designated_key,
            other_id,
        )


EDGES = {
    "friends": Edges(
        "friends",
        Friend,
        "friend_user_id",
        mapping.openim_friend,
        "/friend/get_incremental_friends",
        lambda client, owner, size: client.friends(owner, size),
        "/friend/get_designated_friends",
        "friendUserIDs",
        "friendsInfo",
        lambda info: (info.get("friendUser") or {}).get("userID"),
    ),
    "blocks": Edges(
        "blocks",
        BlockedUser,
        "blocked_user_id",
        mapping.openim_block,
        "/friend/get_incremental_blacks",
        lambda client, owner, size: client.blocks(owner, size),
        "/friend/get_specified_blacks",
        "userIDList",
        "blacks",
        lambda info: (info.get("blackUserInfo") or {}).get("userID"),
    ),
}


def _cursors(kind, keys):
    rows = SyncCursor.objects.filter(protocol="openim", kind=kind, key__in=list(keys))
    return {row.key: (row.version_id, row.version) for row in rows}


def _profiles(user_ids):
    rows = ImUser.objects.filter(user_id__in=list(set(user_ids))).values_list(
        "user_id", "nickname", "face_url"
    )
    return {user_id: (nickname, face_url) for user_id, nickname, face_url in rows}
