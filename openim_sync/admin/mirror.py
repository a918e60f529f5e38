from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from openim_sync.models import BlockedUser, Friend, GroupMember, ImGroup, ImUser, OnlineSession

from .mixins import LastEventMixin, ReadOnlyAdminMixin

MIRROR_READONLY = ("version", "versions_display", "last_event_link", "created_at", "updated_at")


class MirrorAdmin(ReadOnlyAdminMixin, LastEventMixin, admin.ModelAdmin):
    list_per_page = 100
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [
            f.name
            for f in self.model._meta.concrete_fields
            if f.name not in ("versions", "last_event")
        ] + list(MIRROR_READONLY)


class RemovedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("present", "Present"), ("removed", "Removed (tombstone)")]

    def queryset(self, request, queryset):
        if self.value() == "present":
            return queryset.filter(removed_at__isnull=True)
        if self.value() == "removed":
            return queryset.filter(removed_at__isnull=False)
        return queryset


def _changelist(model, **filters):
    url = reverse(f"admin:openim_sync_{model._meta.model_name}_changelist")
    return url + "?" + "&".join(f"{k}={v}" for k, v in filters.items())


@admin.register(ImUser)
class ImUserAdmin(MirrorAdmin):
    list_display = ("user_id", "nickname", "face_url", "gender", "updated_at", "last_event_link")
    search_fields = ("=user_id", "nickname")
    list_filter = ("gender", "allow_type", "updated_at")


@admin.register(ImGroup)
class ImGroupAdmin(MirrorAdmin):
    list_display = (
        "group_id",
        "name",
        "owner_user_id",
        "status",
        "members_link",
        "removed_at",
        "last_event_link",
    )
    search_fields = ("=group_id", "name", "=owner_user_id")
    list_filter = (RemovedFilter, "status", "group_type", "updated_at")

    @admin.display(description="members")
    def members_link(self, obj):
        return format_html(
            '<a href="{}">members</a>', _changelist(GroupMember, group_id=obj.group_id)
        )


@admin.register(GroupMember)
class GroupMemberAdmin(MirrorAdmin):
    list_display = (
        "group_id",
        "user_id",
        "nickname",
        "role_level",
        "removed_at",
        "removed_reason",
        "last_event_link",
    )
    search_fields = ("=group_id", "=user_id", "nickname")
    list_filter = (RemovedFilter, "role_level", "removed_reason", "updated_at")


@admin.register(Friend)
class FriendAdmin(MirrorAdmin):
    list_display = ("owner_user_id", "friend_user_id", "remark", "removed_at", "last_event_link")
    search_fields = ("=owner_user_id", "=friend_user_id", "remark")
    list_filter = (RemovedFilter, "updated_at")


@admin.register(BlockedUser)
class BlockedUserAdmin(MirrorAdmin):
    list_display = ("owner_user_id", "blocked_user_id", "removed_at", "last_event_link")
    search_fields = ("=owner_user_id", "=blocked_user_id")
    list_filter = (RemovedFilter, "updated_at")


class OnlineFilter(admin.SimpleListFilter):
    title = "presence"
    parameter_name = "presence"

    def lookups(self, request, model_admin):
        return [("online", "Online now"), ("offline", "Offline or expired")]

    def queryset(self, request, queryset):
        online = OnlineSession.objects.online().values("pk")
        if self.value() == "online":
            return queryset.filter(pk__in=online)
        if self.value() == "offline":
            return queryset.exclude(pk__in=online)
        return queryset


@admin.register(OnlineSession)
class OnlineSessionAdmin(MirrorAdmin):
    list_display = (
        "user_id",
        "platform",
        "conn_id",
        "online_now",
        "version",
        "last_seen_at",
        "last_event_link",
    )
    search_fields = ("=user_id", "=conn_id")
    list_filter = (OnlineFilter, "online", "platform", "last_seen_at")

    @admin.display(description="online now", boolean=True)
    def online_now(self, obj):
        return obj.is_online
