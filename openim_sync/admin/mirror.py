"""The mirror, read-only: users, groups, members, friends, blocks and online sessions, each linked
to the rows it relates to and to the event (or reconcile run) that last changed it."""

from datetime import timedelta

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from openim_sync.conf import app_settings
from openim_sync.models import (
    BlockedUser,
    CallbackEvent,
    Friend,
    GroupMember,
    ImGroup,
    ImUser,
    OnlineSession,
    Protocol,
)

from . import display
from .filters import (
    MirrorProtocolFilter,
    OnlineFilter,
    RemovedFilter,
    choices_filter,
    exact_filter,
    named_values_filter,
)
from .mixins import (
    LinkedRowsMixin,
    ReadOnlyAdminMixin,
    admin_url,
    change_link,
    changelist_url,
    link,
    pretty_json,
)
from .resync import resync_selected

BOOKKEEPING = (
    "version_display",
    "versions_display",
    ("last_event_link", "last_run_link"),
    ("created", "updated"),
)
#: Model fields the bookkeeping group shows (through display methods or as they are).
BOOKKEEPING_FIELDS = {
    "id",
    "version",
    "versions",
    "last_event",
    "last_run",
    "created_at",
    "updated_at",
}
PROTOCOL_SHORT = {Protocol.OPENIM: "OpenIM", Protocol.TENCENT: "Tencent"}
#: Related rows listed on a detail page at most (the rest is one click away).
RELATED_ROWS = 20


def pk_of(model, field, outer):
    """A subquery: the pk of the ``model`` row whose ``field`` equals the outer row's ``outer``
    (a unique key: one index lookup per listed row)."""
    return Subquery(model.objects.filter(**{field: OuterRef(outer)}).values("pk")[:1])


def row_link(model, pk, value, **filters):
    """A link to the row's page when it is in the mirror, else to the list filtered by its id
    (which then says it is not there)."""
    if not value:
        return "—"
    if pk:
        return link(admin_url(model, "change", pk), value)
    url = changelist_url(model, **(filters or {model.natural_key_fields[0]: value}))
    return format_html('{} <span class="oims-raw">not in the mirror</span>', link(url, value))


def related_table(rows):
    """``[(label, link-or-text, note)]`` as the detail page's small "related rows" table."""
    return format_html(
        '<table class="oims-table oims-related"><tbody>{}</tbody></table>',
        format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", rows),
    )


def counted(model, label, count, **filters):
    """A link to ``model``'s list filtered by ``filters``: ``3 friends`` (``label`` is
    ``"friend|friends"``: singular and plural)."""
    one, _, many = label.partition("|")
    return link(changelist_url(model, **filters), f"{count} {one if count == 1 else many or one}")


class MirrorAdmin(ReadOnlyAdminMixin, LinkedRowsMixin, admin.ModelAdmin):
    # Lists whose rows are keyed by other rows (members, friends, blocks, sessions) start with
    # the row's id as the link to its page: their key columns link to the group and the users.
    list_per_page = 100
    show_full_result_count = False
    #: Admin actions on mirror rows (a list: extend it).
    actions = [resync_selected]
    #: Detail page groups: (title, fields); a tuple of names in ``fields`` is one line. Empty
    #: groups are left out; bookkeeping comes last.
    detail = ()
    #: Model fields shown through a display method of another name (``role_level`` by
    #: ``role_display``...). A model field neither listed in ``detail`` nor here is still shown,
    #: as it is, under "Other fields" (a field added to the model later is never hidden).
    covers = ()

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_protocol=Coalesce("last_event__protocol", "last_run__protocol"))
        )

    def get_fieldsets(self, request, obj=None):
        groups = []
        for title, fields in self.detail:
            lines = [line for line in fields if line]
            if lines:
                groups.append((title, {"fields": lines}))
        shown = set(flatten_fieldsets(groups)) | set(self.covers) | BOOKKEEPING_FIELDS
        others = [f.name for f in self.model._meta.concrete_fields if f.name not in shown]
        if others:
            groups.append(("Other fields", {"fields": others}))
        groups.append(("Bookkeeping", {"fields": BOOKKEEPING}))
        return groups

    def get_readonly_fields(self, request, obj=None):
        return flatten_fieldsets(self.get_fieldsets(request, obj))

    def removed_shown(self, request):
        """Whether the list shows removed rows (``?state=removed`` or ``?state=all``)."""
        return request.GET.get(RemovedFilter.parameter_name) in ("removed", "all")

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        if "removed" in columns and not self.removed_shown(request):
            columns.remove("removed")
        return columns

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        if RemovedFilter in self.list_filter and not self.removed_shown(request):
            params = request.GET.copy()
            params[RemovedFilter.parameter_name] = "all"
            extra_context["removed_hidden_url"] = "?" + params.urlencode()
        return super().changelist_view(request, extra_context)

    @admin.display(description="protocol", ordering="_protocol")
    def protocol(self, obj):
        value = getattr(obj, "_protocol", None)
        return PROTOCOL_SHORT.get(value, value or "—")

    @admin.display(description="created")
    def created(self, obj):
        return display.when(obj.created_at)

    @admin.display(description="updated")
    def updated(self, obj):
        return display.when(obj.updated_at)

    @admin.display(description="version")
    def version_display(self, obj):
        return display.version(obj.version)

    @admin.display(description="field versions")
    def versions_display(self, obj):
        return display.versions_table(obj.versions)

    @admin.display(description="removed", ordering="removed_at")
    def removed(self, obj):
        if obj.removed_at is None:
            return "—"
        reason = f" ({obj.removed_reason})" if obj.removed_reason else ""
        return format_html(
            '<span class="oims-removed" title="{}">removed{}</span>',
            obj.removed_at.isoformat(),
            reason,
        )

    @admin.display(description="removed at")
    def removed_at_display(self, obj):
        return display.when(obj.removed_at)


def user_links(user_id):
    """The rows a user relates to, counted (each an indexed count), and their events."""
    present = {"removed_at__isnull": True}
    return [
        (
            "groups",
            counted(
                GroupMember,
                "membership|memberships",
                GroupMember.objects.filter(user_id=user_id, **present).count(),
                user_id=user_id,
            ),
            "the groups the user is a member of",
        ),
        (
            "friends",
            counted(
                Friend,
                "friend|friends",
                Friend.objects.filter(owner_user_id=user_id, **present).count(),
                owner_user_id=user_id,
            ),
            format_html(
                "on the user's friend list; {}",
                counted(
                    Friend,
                    "list has the user|lists have the user",
                    Friend.objects.filter(friend_user_id=user_id, **present).count(),
                    friend_user_id=user_id,
                ),
            ),
        ),
        (
            "blocks",
            counted(
                BlockedUser,
                "blocked",
                BlockedUser.objects.filter(owner_user_id=user_id, **present).count(),
                owner_user_id=user_id,
            ),
            format_html(
                "on the user's block list; {}",
                counted(
                    BlockedUser,
                    "blocks the user|block the user",
                    BlockedUser.objects.filter(blocked_user_id=user_id, **present).count(),
                    blocked_user_id=user_id,
                ),
            ),
        ),
        (
            "sessions",
            counted(
                OnlineSession,
                "session|sessions",
                OnlineSession.objects.filter(user_id=user_id).count(),
                user_id=user_id,
            ),
            format_html(
                "{} online now",
                OnlineSession.objects.online().filter(user_id=user_id).count(),
            ),
        ),
        (
            "groups owned",
            link(changelist_url(ImGroup, owner_user_id=user_id), "groups owned"),
            "groups whose owner is the user",
        ),
        (
            "events",
            link(changelist_url(CallbackEvent, q=user_id), "events"),
            "callbacks naming the user (as actor or peer)",
        ),
    ]


@admin.register(ImUser)
class ImUserAdmin(MirrorAdmin):
    list_display = ("user_id", "nickname", "protocol", "last_change_link", "related_links")
    search_fields = ("=user_id", "nickname")
    list_filter = (
        MirrorProtocolFilter,
        ("gender", named_values_filter(display.tag_name)),
        ("allow_type", named_values_filter(display.tag_name)),
        "updated_at",
    )
    detail = (
        ("Identity", (("user_id", "protocol"),)),
        (
            "Profile",
            (
                ("nickname", "gender_display"),
                "face_url",
                ("birthday", "location", "language"),
                "self_signature",
                "allow_type_display",
            ),
        ),
        (
            "IM-server fields",
            (
                ("im_created_at", "app_manager_level"),
                ("global_recv_msg_opt_display", "msg_settings"),
                ("admin_forbid_type_display", "level", "role"),
                "ex",
                "custom_display",
            ),
        ),
        ("Related rows", ("related_display", "memberships_display")),
    )
    covers = (
        "gender",
        "allow_type",
        "admin_forbid_type",
        "global_recv_msg_opt",
        "im_created_at_ms",
        "custom",
    )

    @admin.display(description="gender", ordering="gender")
    def gender_display(self, obj):
        return display.tencent_tag(obj.gender)

    @admin.display(description="allow type")
    def allow_type_display(self, obj):
        return display.tencent_tag(obj.allow_type)

    @admin.display(description="admin forbid type")
    def admin_forbid_type_display(self, obj):
        return display.tencent_tag(obj.admin_forbid_type)

    @admin.display(description="global receive message option")
    def global_recv_msg_opt_display(self, obj):
        return display.named(obj.global_recv_msg_opt, display.RECV_MSG_OPTS)

    @admin.display(description="created on the IM server")
    def im_created_at(self, obj):
        return display.epoch_ms(obj.im_created_at_ms)

    @admin.display(description="custom profile fields")
    def custom_display(self, obj):
        return pretty_json(obj.custom)

    @admin.display(description="related")
    def related_links(self, obj):
        uid = obj.user_id
        links = [
            link(changelist_url(GroupMember, user_id=uid), "groups"),
            link(changelist_url(Friend, owner_user_id=uid), "friends"),
            link(changelist_url(BlockedUser, owner_user_id=uid), "blocks"),
            link(changelist_url(OnlineSession, user_id=uid), "sessions"),
            link(changelist_url(CallbackEvent, q=uid), "events"),
        ]
        return format_html(
            '<span class="oims-links">{}</span>',
            format_html_join(" · ", "{}", ((item,) for item in links)),
        )

    @admin.display(description="rows of this user")
    def related_display(self, obj):
        return related_table(user_links(obj.user_id))

    @admin.display(description="memberships")
    def memberships_display(self, obj):
        members = list(
            GroupMember.objects.filter(user_id=obj.user_id, removed_at__isnull=True)
            .annotate(
                _group_pk=pk_of(ImGroup, "group_id", "group_id"),
                _group_name=Subquery(
                    ImGroup.objects.filter(group_id=OuterRef("group_id")).values("name")[:1]
                ),
            )
            .order_by("group_id")[: RELATED_ROWS + 1]
        )
        if not members:
            return "Member of no group."
        rows = [
            (
                row_link(ImGroup, m._group_pk, m.group_id),
                m._group_name or "",
                display.role(m.role_level),
                change_link(m, "membership"),
            )
            for m in members[:RELATED_ROWS]
        ]
        table = format_html(
            '<table class="oims-table"><thead><tr><th>group</th><th>name</th><th>role</th>'
            "<th></th></tr></thead><tbody>{}</tbody></table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )
        if len(members) > RELATED_ROWS:
            more = link(changelist_url(GroupMember, user_id=obj.user_id), "all memberships")
            table = format_html("{}<p>{}</p>", table, more)
        return table


@admin.register(ImGroup)
class ImGroupAdmin(MirrorAdmin):
    list_display = (
        "group_id",
        "name",
        "protocol",
        "owner_link",
        "status_display",
        "members_link",
        "removed",
        "last_change_link",
    )
    search_fields = ("=group_id", "name", "=owner_user_id")
    list_filter = (
        RemovedFilter,
        MirrorProtocolFilter,
        choices_filter("status", "status", display.GROUP_STATUSES),
        ("group_type", named_values_filter(lambda v: display.GROUP_TYPES.get(v, v))),
        exact_filter("owner_user_id", "owner"),
        "updated_at",
    )
    detail = (
        ("Identity", (("group_id", "protocol"),)),
        (
            "Profile",
            (
                ("name", "group_type_display"),
                ("owner_link", "creator_link"),
                "face_url",
                "introduction",
                "notification",
            ),
        ),
        (
            "IM-server fields",
            (
                ("status_display", "im_created_at"),
                "need_verification_display",
                ("look_member_info_display", "apply_member_friend_display"),
                "ex",
                "custom_display",
            ),
        ),
        ("State", (("removed_at_display", "removed_reason"),)),
        ("Related rows", ("related_display", "members_display")),
    )
    covers = (
        "owner_user_id",
        "creator_user_id",
        "group_type",
        "status",
        "need_verification",
        "look_member_info",
        "apply_member_friend",
        "im_created_at_ms",
        "custom",
        "removed_at",
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_owner_pk=pk_of(ImUser, "user_id", "owner_user_id"))
        )

    @admin.display(description="owner", ordering="owner_user_id")
    def owner_link(self, obj):
        return row_link(ImUser, getattr(obj, "_owner_pk", None), obj.owner_user_id)

    @admin.display(description="creator")
    def creator_link(self, obj):
        if not obj.creator_user_id:
            return "—"
        user = ImUser.objects.filter(user_id=obj.creator_user_id).values("pk").first()
        return row_link(ImUser, user and user["pk"], obj.creator_user_id)

    @admin.display(description="status", ordering="status")
    def status_display(self, obj):
        return display.named(obj.status, display.GROUP_STATUSES)

    @admin.display(description="group type")
    def group_type_display(self, obj):
        return display.named(obj.group_type, display.GROUP_TYPES)

    @admin.display(description="need verification")
    def need_verification_display(self, obj):
        return display.named(obj.need_verification, display.VERIFICATION)

    @admin.display(description="look member info")
    def look_member_info_display(self, obj):
        return display.named(obj.look_member_info, display.ALLOWED)

    @admin.display(description="apply member friend")
    def apply_member_friend_display(self, obj):
        return display.named(obj.apply_member_friend, display.ALLOWED)

    @admin.display(description="created on the IM server")
    def im_created_at(self, obj):
        return display.epoch_ms(obj.im_created_at_ms)

    @admin.display(description="custom group fields")
    def custom_display(self, obj):
        return pretty_json(obj.custom)

    @admin.display(description="members")
    def members_link(self, obj):
        return link(changelist_url(GroupMember, group_id=obj.group_id), "members")

    @admin.display(description="rows of this group")
    def related_display(self, obj):
        gid = obj.group_id
        members = GroupMember.objects.filter(group_id=gid)
        return related_table(
            [
                (
                    "members",
                    counted(
                        GroupMember,
                        "member|members",
                        members.filter(removed_at__isnull=True).count(),
                        group_id=gid,
                    ),
                    format_html(
                        "present; {}",
                        counted(
                            GroupMember,
                            "removed",
                            members.filter(removed_at__isnull=False).count(),
                            group_id=gid,
                            state="removed",
                        ),
                    ),
                ),
                (
                    "events",
                    link(changelist_url(CallbackEvent, subject_group_id=gid), "events"),
                    "callbacks about the group",
                ),
            ]
        )

    @admin.display(description="member list")
    def members_display(self, obj):
        members = list(
            GroupMember.objects.filter(group_id=obj.group_id, removed_at__isnull=True)
            .annotate(_user_pk=pk_of(ImUser, "user_id", "user_id"))
            .order_by("-role_level", "user_id")[: RELATED_ROWS + 1]
        )
        if not members:
            return "No present member."
        rows = [
            (
                row_link(ImUser, m._user_pk, m.user_id),
                m.nickname,
                display.role(m.role_level),
                change_link(m, "membership"),
            )
            for m in members[:RELATED_ROWS]
        ]
        table = format_html(
            '<table class="oims-table"><thead><tr><th>user</th><th>name card</th><th>role</th>'
            "<th></th></tr></thead><tbody>{}</tbody></table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )
        if len(members) > RELATED_ROWS:
            more = link(changelist_url(GroupMember, group_id=obj.group_id), "all members")
            table = format_html("{}<p>{}</p>", table, more)
        return table


@admin.register(GroupMember)
class GroupMemberAdmin(MirrorAdmin):
    list_display = (
        "id",
        "group_link",
        "user_link",
        "nickname",
        "role_display",
        "protocol",
        "removed",
        "last_change_link",
    )
    search_fields = ("=group_id", "=user_id", "nickname")
    list_filter = (
        RemovedFilter,
        MirrorProtocolFilter,
        choices_filter("role_level", "role", display.ROLES),
        exact_filter("group_id", "group ID"),
        exact_filter("user_id", "user ID"),
        "removed_reason",
        "updated_at",
    )
    detail = (
        ("Identity", (("group_link", "user_link", "protocol"),)),
        ("Profile", (("nickname", "role_display"), "face_url", "ex")),
        (
            "IM-server fields",
            (
                ("join_source_display", "inviter_link"),
                # Read by reconcile from the REST APIs (no callback carries them).
                tuple(
                    name
                    for field, name in (("joined_at_ms", "joined"), ("mute_end_ms", "muted_until"))
                    if any(f.name == field for f in GroupMember._meta.concrete_fields)
                ),
            ),
        ),
        ("State", (("removed_at_display", "removed_reason"),)),
        ("Related rows", ("related_display",)),
    )
    covers = (
        "group_id",
        "user_id",
        "role_level",
        "join_source",
        "inviter_user_id",
        "joined_at_ms",
        "mute_end_ms",
        "removed_at",
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _group_pk=pk_of(ImGroup, "group_id", "group_id"),
                _user_pk=pk_of(ImUser, "user_id", "user_id"),
            )
        )

    @admin.display(description="group", ordering="group_id")
    def group_link(self, obj):
        return row_link(ImGroup, getattr(obj, "_group_pk", None), obj.group_id)

    @admin.display(description="user", ordering="user_id")
    def user_link(self, obj):
        return row_link(ImUser, getattr(obj, "_user_pk", None), obj.user_id)

    @admin.display(description="role", ordering="role_level")
    def role_display(self, obj):
        return display.role(obj.role_level)

    @admin.display(description="join source")
    def join_source_display(self, obj):
        return display.named(obj.join_source, display.JOIN_SOURCES)

    @admin.display(description="joined")
    def joined(self, obj):
        return display.epoch_ms(getattr(obj, "joined_at_ms", None))

    @admin.display(description="muted until")
    def muted_until(self, obj):
        value = getattr(obj, "mute_end_ms", None)
        if value == 0:
            return "not muted"
        return display.epoch_ms(value)

    @admin.display(description="inviter")
    def inviter_link(self, obj):
        if not obj.inviter_user_id:
            return "—"
        user = ImUser.objects.filter(user_id=obj.inviter_user_id).values("pk").first()
        return row_link(ImUser, user and user["pk"], obj.inviter_user_id)

    @admin.display(description="rows of this membership")
    def related_display(self, obj):
        return related_table(
            [
                (
                    "group",
                    link(changelist_url(GroupMember, group_id=obj.group_id), "all members"),
                    "of the same group",
                ),
                (
                    "user",
                    link(changelist_url(GroupMember, user_id=obj.user_id), "all memberships"),
                    "of the same user",
                ),
                (
                    "events",
                    link(
                        changelist_url(CallbackEvent, subject_group_id=obj.group_id, q=obj.user_id),
                        "events",
                    ),
                    "callbacks about the group naming the user",
                ),
            ]
        )


class EdgeAdmin(MirrorAdmin):
    """Friends and blocks: a directed edge from an owner to another user."""

    other_field = ""
    other_label = ""

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _owner_pk=pk_of(ImUser, "user_id", "owner_user_id"),
                _other_pk=pk_of(ImUser, "user_id", self.other_field),
            )
        )

    @admin.display(description="owner", ordering="owner_user_id")
    def owner_link(self, obj):
        return row_link(ImUser, getattr(obj, "_owner_pk", None), obj.owner_user_id)

    def other_link(self, obj):
        return row_link(ImUser, getattr(obj, "_other_pk", None), getattr(obj, self.other_field))

    def edge_rows(self, obj):
        other = getattr(obj, self.other_field)
        reverse = self.model.objects.filter(
            owner_user_id=other, **{self.other_field: obj.owner_user_id}
        ).first()
        return [
            (
                "the other way",
                change_link(reverse) if reverse else "—",
                "present"
                if reverse is not None and reverse.removed_at is None
                else ("removed" if reverse is not None else "not in the mirror"),
            ),
            (
                "owner's list",
                link(
                    changelist_url(self.model, owner_user_id=obj.owner_user_id),
                    f"all of {obj.owner_user_id}'s",
                ),
                "",
            ),
            (
                "events",
                link(
                    changelist_url(
                        CallbackEvent,
                        subject_user_id=obj.owner_user_id,
                        subject_peer_id=other,
                    ),
                    "events",
                ),
                "callbacks by the owner about the other user",
            ),
        ]


@admin.register(Friend)
class FriendAdmin(EdgeAdmin):
    other_field = "friend_user_id"
    list_display = (
        "id",
        "owner_link",
        "friend_link",
        "remark",
        "protocol",
        "removed",
        "last_change_link",
    )
    search_fields = ("=owner_user_id", "=friend_user_id", "remark")
    list_filter = (
        RemovedFilter,
        MirrorProtocolFilter,
        exact_filter("owner_user_id", "owner"),
        exact_filter("friend_user_id", "friend"),
        "updated_at",
    )
    detail = (
        ("Identity", (("owner_link", "friend_link", "protocol"),)),
        ("Profile", ("remark",)),
        ("State", (("removed_at_display", "removed_reason"),)),
        ("Related rows", ("related_display",)),
    )
    covers = ("owner_user_id", "friend_user_id", "removed_at")

    @admin.display(description="friend", ordering="friend_user_id")
    def friend_link(self, obj):
        return self.other_link(obj)

    @admin.display(description="rows of this friendship")
    def related_display(self, obj):
        return related_table(self.edge_rows(obj))


@admin.register(BlockedUser)
class BlockedUserAdmin(EdgeAdmin):
    other_field = "blocked_user_id"
    list_display = ("id", "owner_link", "blocked_link", "protocol", "removed", "last_change_link")
    search_fields = ("=owner_user_id", "=blocked_user_id")
    list_filter = (
        RemovedFilter,
        MirrorProtocolFilter,
        exact_filter("owner_user_id", "owner"),
        exact_filter("blocked_user_id", "blocked user"),
        "updated_at",
    )
    detail = (
        ("Identity", (("owner_link", "blocked_link", "protocol"),)),
        ("State", (("removed_at_display", "removed_reason"),)),
        ("Related rows", ("related_display",)),
    )
    covers = ("owner_user_id", "blocked_user_id", "removed_at")

    @admin.display(description="blocked user", ordering="blocked_user_id")
    def blocked_link(self, obj):
        return self.other_link(obj)

    @admin.display(description="rows of this block")
    def related_display(self, obj):
        return related_table(self.edge_rows(obj))


def presence(obj, now=None):
    """``(state, explanation)``: online now, expired (reported online, not refreshed within
    PRESENCE_TTL_SECONDS) or offline."""
    now = now or timezone.now()
    ttl = timedelta(seconds=app_settings.PRESENCE_TTL_SECONDS)
    ttl_text = f"PRESENCE_TTL_SECONDS = {app_settings.PRESENCE_TTL_SECONDS} s"
    if not obj.online:
        return "offline", "The IM server reported this session offline (or kicked)."
    if obj.last_seen_at is None:
        return "expired", "Reported online, with no time it was last seen."
    age = now - obj.last_seen_at
    if age <= ttl:
        return "online", f"Reported online {display.ago_text(obj.last_seen_at, now)} ({ttl_text})."
    return (
        "expired",
        f"Reported online, but not refreshed for {timesince(obj.last_seen_at, now, depth=1)}: "
        f"longer than {ttl_text}, so it counts as offline. The IM servers send a callback when a "
        "user comes online and (when they can) when they go offline; one that was lost would "
        "keep a session online for ever, so a session older than the TTL is not trusted.",
    )


@admin.register(OnlineSession)
class OnlineSessionAdmin(MirrorAdmin):
    list_display = (
        "id",
        "user_link",
        "platform",
        "conn_id",
        "presence_display",
        "protocol",
        "last_change_link",
    )
    search_fields = ("=user_id", "=conn_id")
    list_filter = (
        OnlineFilter,
        MirrorProtocolFilter,
        "platform",
        exact_filter("user_id", "user ID"),
        "last_seen_at",
    )
    detail = (
        ("Identity", (("user_link", "platform", "conn_id", "protocol"),)),
        (
            "State",
            (
                "presence_explained",
                ("reported_state", "last_seen_full"),
                ("is_app_background", "reason", "client_ip"),
            ),
        ),
        ("IM-server fields", ("platform_id_display",)),
        ("Related rows", ("related_display",)),
    )
    covers = ("user_id", "online", "last_seen_at", "platform_id")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_user_pk=pk_of(ImUser, "user_id", "user_id"))

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "presence_ttl": app_settings.PRESENCE_TTL_SECONDS,
        }
        return super().changelist_view(request, extra_context)

    @admin.display(description="user", ordering="user_id")
    def user_link(self, obj):
        return row_link(ImUser, getattr(obj, "_user_pk", None), obj.user_id)

    @admin.display(description="presence", ordering="last_seen_at")
    def presence_display(self, obj):
        state, explanation = presence(obj)
        seen = ""
        if obj.last_seen_at is not None:
            seen = format_html(
                '<br><time class="oims-when" datetime="{}">seen {}</time>',
                obj.last_seen_at.isoformat(),
                display.ago_text(obj.last_seen_at),
            )
        return format_html(
            '<span class="oims-presence oims-presence-{}" title="{}">{}</span>{}',
            state,
            explanation,
            {"online": "online now", "expired": "expired", "offline": "offline"}[state],
            seen,
        )

    @admin.display(description="online now")
    def presence_explained(self, obj):
        state, explanation = presence(obj)
        return format_html(
            '<span class="oims-presence oims-presence-{}">{}</span> {}',
            state,
            {"online": "yes", "expired": "no (expired)", "offline": "no"}[state],
            explanation,
        )

    @admin.display(description="reported state")
    def reported_state(self, obj):
        return "online" if obj.online else "offline"

    @admin.display(description="last seen at")
    def last_seen_full(self, obj):
        return display.when(obj.last_seen_at)

    @admin.display(description="platform ID")
    def platform_id_display(self, obj):
        return display.platform_id(obj.platform_id)

    @admin.display(description="rows of this session")
    def related_display(self, obj):
        return related_table(
            [
                (
                    "sessions",
                    link(changelist_url(OnlineSession, user_id=obj.user_id), "all sessions"),
                    "of the same user",
                ),
                (
                    "events",
                    link(changelist_url(CallbackEvent, subject_user_id=obj.user_id), "events"),
                    "callbacks about the user",
                ),
            ]
        )
