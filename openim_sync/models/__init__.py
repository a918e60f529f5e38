from .base import MirrorRow, RemovableMirrorRow
from .counts import IgnoredEventCount
from .events import CallbackEvent, EventStatus, Protocol
from .mirror import BlockedUser, Friend, GroupMember, ImGroup, ImUser, OnlineSession
from .runs import ReconcileRun, RunStatus, SyncCursor

__all__ = [
    "BlockedUser",
    "CallbackEvent",
    "EventStatus",
    "Friend",
    "GroupMember",
    "IgnoredEventCount",
    "ImGroup",
    "ImUser",
    "MirrorRow",
    "OnlineSession",
    "Protocol",
    "ReconcileRun",
    "RemovableMirrorRow",
    "RunStatus",
    "SyncCursor",
]
