"""What the read API shows of each row: the typed columns, never the per-field version map.

``last_event`` is the id of the callback that last changed the row (read from the foreign-key
column, so listing a page costs no extra query per row).
"""

from rest_framework import serializers

from openim_sync.models import (
    BlockedUser,
    CallbackEvent,
    Friend,
    GroupMember,
    ImGroup,
    ImUser,
    OnlineSession,
)

MIRROR_FIELDS = ("id", "version", "last_event", "last_run", "created_at", "updated_at")
REMOVABLE_FIELDS = ("is_present", "removed_at", "removed_reason")


class MirrorSerializer(serializers.ModelSerializer):
    def build_relational_field(self, field_name, relation_info):
        # last_event / last_run as plain ids from the *_id column: no query, no URL reversing.
        field_class, kwargs = super().build_relational_field(field_name, relation_info)
        kwargs["read_only"] = True
        kwargs.pop("queryset", None)
        return field_class, kwargs


class ImUserSerializer(MirrorSerializer):
    class Meta:
        model = ImUser
        fields = (
            "user_id",
            "nickname",
            "face_url",
            "ex",
            "app_manager_level",
            "global_recv_msg_opt",
            "im_created_at_ms",
            "gender",
            "birthday",
            "location",
            "self_signature",
            "allow_type",
            "language",
            "msg_settings",
            "admin_forbid_type",
            "level",
            "role",
            "custom",
            *MIRROR_FIELDS,
        )
        read_only_fields = fields


class ImGroupSerializer(MirrorSerializer):
    is_present = serializers.BooleanField(read_only=True)

    class Meta:
        model = ImGroup
        fields = (
            "group_id",
            "name",
            "owner_user_id",
            "creator_user_id",
            "notification",
            "introduction",
            "face_url",
            "ex",
            "group_type",
            "status",
            "need_verification",
            "look_member_info",
            "apply_member_friend",
            "im_created_at_ms",
            "custom",
            *REMOVABLE_FIELDS,
            *MIRROR_FIELDS,
        )
        read_only_fields = fields


class GroupMemberSerializer(MirrorSerializer):
    is_present = serializers.BooleanField(read_only=True)

    class Meta:
        model = GroupMember
        fields = (
            "group_id",
            "user_id",
            "nickname",
            "face_url",
            "role_level",
            "ex",
            "join_source",
            "inviter_user_id",
            *REMOVABLE_FIELDS,
            *MIRROR_FIELDS,
        )
        read_only_fields = fields


class FriendSerializer(MirrorSerializer):
    is_present = serializers.BooleanField(read_only=True)

    class Meta:
        model = Friend
        fields = ("owner_user_id", "friend_user_id", "remark", *REMOVABLE_FIELDS, *MIRROR_FIELDS)
        read_only_fields = fields


class BlockedUserSerializer(MirrorSerializer):
    is_present = serializers.BooleanField(read_only=True)

    class Meta:
        model = BlockedUser
        fields = ("owner_user_id", "blocked_user_id", *REMOVABLE_FIELDS, *MIRROR_FIELDS)
        read_only_fields = fields


class OnlineSessionSerializer(MirrorSerializer):
    is_online = serializers.BooleanField(
        read_only=True, help_text="Reported online and refreshed within PRESENCE_TTL_SECONDS."
    )

    class Meta:
        model = OnlineSession
        fields = (
            "user_id",
            "platform",
            "conn_id",
            "platform_id",
            "online",
            "is_online",
            "is_app_background",
            "reason",
            "client_ip",
            "last_seen_at",
            *MIRROR_FIELDS,
        )
        read_only_fields = fields


class CallbackEventSerializer(serializers.ModelSerializer):
    """A stored delivery, without its raw body and headers (admin shows those)."""

    class Meta:
        model = CallbackEvent
        fields = (
            "id",
            "protocol",
            "command",
            "url_command",
            "status",
            "reason",
            "subject_user_id",
            "subject_group_id",
            "subject_peer_id",
            "operation_id",
            "payload",
            "query",
            "remote_addr",
            "received_at",
            "processed_at",
            "attempts",
        )
        read_only_fields = fields
