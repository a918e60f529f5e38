"""Re-sync chosen mirror rows (the admin's "Re-sync selected" action)."""

from collections import defaultdict

from openim_sync.conf import app_settings
from openim_sync.models import (
    BlockedUser,
    Friend,
    GroupMember,
    ImGroup,
    ImUser,
    OnlineSession,
)

#: What re-syncing a row of each model reads, and which of its columns are the ids to read.
PLAN = {
    ImUser: (("users", "friends", "blocks", "online"), "user_id"),
    ImGroup: (("groups", "members"), "group_id"),
    GroupMember: (("members",), "group_id"),
    Friend: (("friends",), "owner_user_id"),
    BlockedUser: (("blocks",), "owner_user_id"),
    OnlineSession: (("online",), "user_id"),
}


def configured_protocols():
    protocols = []
    if app_settings.OPENIM_API_URL:
        protocols.append("openim")
    if app_settings.TENCENT_ADMIN_IDENTIFIER and app_settings.TENCENT_SECRET_KEY:
        protocols.append("tencent")
    return protocols


def resync(queryset):
    """Reconcile the users or groups of ``queryset``'s rows; returns the runs, one per server.

    With both servers configured, a row goes to the server of the callback or run that last
    wrote it (rows neither wrote go to both).
    """
    from . import reconcile

    kinds, column = PLAN[queryset.model]
    protocols = configured_protocols()
    if not protocols:
        raise ValueError("No REST API is configured for reconcile (see docs/reconcile.md).")
    ids = defaultdict(set)
    rows = queryset.values_list(column, "last_event__protocol", "last_run__protocol")
    for key, event_protocol, run_protocol in rows:
        protocol = event_protocol or run_protocol
        for target in [protocol] if protocol in protocols else protocols:
            ids[target].add(key)
    return [reconcile(p, kinds, ids=sorted(keys)) for p, keys in sorted(ids.items())]
