"""The mirror: the IM server's users, groups, members, friends, blocks and online sessions."""

from datetime import timedelta

from django.db import models
from django.utils import timezone

from .base import MirrorRow, Parent, RemovableMirrorRow

ID_LENGTH = 64
URL_LENGTH = 1024


class ImUser(MirrorRow):
    natural_key_fields = ("user_id",)

    user_id = models.CharField("user ID", max_length=ID_LENGTH, unique=True)
    nickname = models.CharField(max_length=500, blank=True)
    face_url = models.CharField("face URL", max_length=URL_LENGTH, blank=True)
    ex = models.TextField(blank=True, help_text="OpenIM's free-form extra data.")
    app_manager_level = models.IntegerField(null=True, blank=True)
    global_recv_msg_opt = models.IntegerField(null=True, blank=True)
    im_created_at_ms = models.BigIntegerField(
        null=True, blank=True, help_text="Creation time on the IM server (ms), when reported."
    )
    # Tencent Cloud Chat standard profile tags.
    gender = models.CharField(max_length=32, blank=True)
    birthday = models.BigIntegerField(null=True, blank=True)
    location = models.CharField(max_length=500, blank=True)
    self_signature = models.CharField(max_length=500, blank=True)
    allow_type = models.CharField(max_length=64, blank=True)
    language = models.BigIntegerField(null=True, blank=True)
    msg_settings = models.BigIntegerField(null=True, blank=True)
    admin_forbid_type = models.CharField(max_length=64, blank=True)
    level = models.BigIntegerField(null=True, blank=True)
    role = models.BigIntegerField(null=True, blank=True)
    custom = models.JSONField(
        default=dict, blank=True, help_text="Custom and unrecognised profile tags."
    )

    class Meta:
        verbose_name = "IM user"
        ordering = ["user_id"]

    def __str__(self):
        return self.nickname or self.user_id


class ImGroup(RemovableMirrorRow):
    natural_key_fields = ("group_id",)

    group_id = models.CharField("group ID", max_length=ID_LENGTH, unique=True)
    name = models.CharField(max_length=255, blank=True)
    owner_user_id = models.CharField("owner user ID", max_length=ID_LENGTH, blank=True)
    creator_user_id = models.CharField("creator user ID", max_length=ID_LENGTH, blank=True)
    notification = models.TextField(blank=True)
    introduction = models.TextField(blank=True)
    face_url = models.CharField("face URL", max_length=URL_LENGTH, blank=True)
    ex = models.TextField(blank=True)
    group_type = models.CharField(
        max_length=32, blank=True, help_text="OpenIM groupType number or Tencent Type name."
    )
    status = models.IntegerField(
        null=True, blank=True, help_text="OpenIM status: 0 normal, 2 dismissed, 3 muted."
    )
    need_verification = models.IntegerField(null=True, blank=True)
    look_member_info = models.IntegerField(null=True, blank=True)
    apply_member_friend = models.IntegerField(null=True, blank=True)
    im_created_at_ms = models.BigIntegerField(null=True, blank=True)
    custom = models.JSONField(default=dict, blank=True, help_text="Tencent custom group fields.")

    class Meta:
        verbose_name = "IM group"
        ordering = ["group_id"]

    def __str__(self):
        return self.name or self.group_id


class GroupMember(RemovableMirrorRow):
    natural_key_fields = ("group_id", "user_id")
    mirror_parent = Parent("ImGroup", ("group_id",))

    ROLE_MEMBER, ROLE_ADMIN, ROLE_OWNER = 20, 60, 100

    group_id = models.CharField("group ID", max_length=ID_LENGTH)
    user_id = models.CharField("user ID", max_length=ID_LENGTH, db_index=True)
    nickname = models.CharField(max_length=500, blank=True, help_text="Name card in the group.")
    face_url = models.CharField("face URL", max_length=URL_LENGTH, blank=True)
    role_level = models.IntegerField(
        null=True, blank=True, help_text="20 member, 60 administrator, 100 owner."
    )
    ex = models.TextField(blank=True)
    join_source = models.IntegerField(null=True, blank=True)
    inviter_user_id = models.CharField(max_length=ID_LENGTH, blank=True)
    joined_at_ms = models.BigIntegerField(
        null=True, blank=True, help_text="When the user joined (ms), as the REST API reports it."
    )
    mute_end_ms = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Muted until this time (ms; 0: not muted). Only reconcile sees mutes: "
        "neither server sends a callback for them.",
    )

    class Meta:
        verbose_name = "group member"
        ordering = ["group_id", "user_id"]
        constraints = [
            models.UniqueConstraint(fields=["group_id", "user_id"], name="openim_member_key"),
        ]

    def __str__(self):
        return f"{self.user_id} in {self.group_id}"


class Friend(RemovableMirrorRow):
    """One directed friendship edge: ``friend_user_id`` is on ``owner_user_id``'s list."""

    natural_key_fields = ("owner_user_id", "friend_user_id")

    owner_user_id = models.CharField("owner user ID", max_length=ID_LENGTH)
    friend_user_id = models.CharField("friend user ID", max_length=ID_LENGTH, db_index=True)
    remark = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["owner_user_id", "friend_user_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner_user_id", "friend_user_id"], name="openim_friend_key"
            ),
        ]

    def __str__(self):
        return f"{self.owner_user_id} → {self.friend_user_id}"


class BlockedUser(RemovableMirrorRow):
    """``blocked_user_id`` is on ``owner_user_id``'s block list."""

    natural_key_fields = ("owner_user_id", "blocked_user_id")

    owner_user_id = models.CharField("owner user ID", max_length=ID_LENGTH)
    blocked_user_id = models.CharField("blocked user ID", max_length=ID_LENGTH, db_index=True)

    class Meta:
        verbose_name = "blocked user"
        ordering = ["owner_user_id", "blocked_user_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner_user_id", "blocked_user_id"], name="openim_blocked_key"
            ),
        ]

    def __str__(self):
        return f"{self.owner_user_id} blocks {self.blocked_user_id}"


class OnlineSessionQuerySet(models.QuerySet):
    def online(self, now=None):
        """Sessions reported online and refreshed within ``PRESENCE_TTL_SECONDS``."""
        from openim_sync.conf import app_settings

        now = now or timezone.now()
        fresh_since = now - timedelta(seconds=app_settings.PRESENCE_TTL_SECONDS)
        return self.filter(online=True, last_seen_at__gte=fresh_since)


class OnlineSession(MirrorRow):
    """A user's connection state on one platform (and connection, where the server names one)."""

    natural_key_fields = ("user_id", "platform", "conn_id")

    user_id = models.CharField("user ID", max_length=ID_LENGTH)
    platform = models.CharField(max_length=32, help_text="Platform name, e.g. Android, iOS, Web.")
    conn_id = models.CharField("connection ID", max_length=128, blank=True)
    platform_id = models.IntegerField("platform ID", null=True, blank=True)
    online = models.BooleanField(default=False)
    is_app_background = models.BooleanField(null=True, blank=True)
    reason = models.CharField(max_length=64, blank=True, help_text="Tencent Action/Reason.")
    client_ip = models.GenericIPAddressField("client IP", null=True, blank=True)
    last_seen_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="When the newest state was received."
    )

    objects = OnlineSessionQuerySet.as_manager()

    class Meta:
        verbose_name = "online session"
        ordering = ["user_id", "platform", "conn_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user_id", "platform", "conn_id"], name="openim_session_key"
            ),
        ]

    def __str__(self):
        state = "online" if self.online else "offline"
        return f"{self.user_id} on {self.platform}: {state}"

    @property
    def is_online(self):
        from openim_sync.conf import app_settings

        if not self.online or self.last_seen_at is None:
            return False
        ttl = timedelta(seconds=app_settings.PRESENCE_TTL_SECONDS)
        return timezone.now() - self.last_seen_at <= ttl
