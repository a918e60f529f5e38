"""What a handler (or a REST reconcile) says about the mirror, as plain data.

A handler returns a list of :class:`Change`; :mod:`openim_sync.writer` applies the list at a
version. Nothing here touches the database.
"""

from dataclasses import dataclass, field
from typing import Any

PRESENT = "present"


class Merge(dict):
    """A value for a JSON dict field whose keys are merged (and versioned) one by one."""


@dataclass(frozen=True)
class Previous:
    """A value read from another row of the same event, as it was before this event.

    ``Previous(GroupMember, {"group_id": g, "user_id": new_owner}, "role_level", default=20)``
    """

    model: Any
    key: dict
    field: str
    default: Any = None


@dataclass
class Change:
    """What an event (or a REST read) says about one mirror row."""

    model: Any
    key: dict
    values: dict = field(default_factory=dict)
    #: True: the row exists on the IM server; False: it was removed; None: no information.
    present: bool | None = None
    removed_reason: str = ""


@dataclass(frozen=True, order=True)
class Stamp:
    """The version a write is made at: ``(version, event_id)``; reconcile writes use event 0."""

    version: int
    event_id: int = 0

    def as_list(self):
        return [self.version, self.event_id]
