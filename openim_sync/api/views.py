"""Read-only viewsets: a list (filtered, cursor-paginated) and one row by natural key or by pk.

Every list page is one query (cursor pagination never counts), every detail read is one query;
tests/test_api.py measures both. Permissions come from ``OPENIM_SYNC["API_PERMISSION_CLASSES"]``.
"""

from django.apps import apps
from django.http import Http404
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from rest_framework import mixins, viewsets
from rest_framework.permissions import IsAdminUser
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer

from openim_sync.models import (
    BlockedUser,
    CallbackEvent,
    EventStatus,
    Friend,
    GroupMember,
    ImGroup,
    ImUser,
    OnlineSession,
    Protocol,
)

from . import serializers
from .filters import (
    Param,
    ParamFilterBackend,
    boolean,
    exact,
    present_param,
    schema_parameters,
    timestamp,
    updated_since_param,
)
from .pagination import EventCursorPagination, MirrorCursorPagination
from .permissions import ConfiguredPermissionsMixin


class MirrorSchema(AutoSchema):
    """Documents a list's ``filter_params`` (without needing the host's DEFAULT_SCHEMA_CLASS)."""

    def get_operation_id(self):
        operation_id = super().get_operation_id()
        if "/pk/" in self.path:
            return f"{operation_id}_by_pk"
        if "{conn_id}" in self.path:
            return f"{operation_id}_by_connection"
        return operation_id

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        if getattr(self.view, "action", None) == "list":
            parameters = [*parameters, *schema_parameters(self.view.filter_params)]
        return parameters


class MirrorViewSet(
    ConfiguredPermissionsMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    schema = MirrorSchema()
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]
    pagination_class = MirrorCursorPagination
    filter_backends = [ParamFilterBackend]
    filter_params: tuple[Param, ...] = ()
    #: URL keyword arguments that identify one row (its natural key); ``pk`` always works too.
    natural_key: tuple[str, ...] = ()

    def get_renderers(self):
        # The browsable API needs rest_framework's templates, installed or not by the host.
        renderers = super().get_renderers()
        if apps.is_installed("rest_framework"):
            return renderers
        return [r for r in renderers if not isinstance(r, BrowsableAPIRenderer)]

    def get_object(self):
        queryset = self.get_queryset()
        if "pk" in self.kwargs:
            lookup = {"pk": self.kwargs["pk"]}
        else:
            lookup = {name: self.kwargs.get(name, "") for name in self.natural_key}
        try:
            obj = queryset.get(**lookup)
        except queryset.model.DoesNotExist:
            raise Http404(f"No {queryset.model._meta.verbose_name} matches.") from None
        self.check_object_permissions(self.request, obj)
        return obj


class UserViewSet(MirrorViewSet):
    """Users and their profiles, as the IM server last reported them."""

    queryset = ImUser.objects.all()
    serializer_class = serializers.ImUserSerializer
    natural_key = ("user_id",)
    filter_params = (updated_since_param(),)


class GroupViewSet(MirrorViewSet):
    """Groups; dismissed ones stay as tombstones (``present=false``)."""

    queryset = ImGroup.objects.all()
    serializer_class = serializers.ImGroupSerializer
    natural_key = ("group_id",)
    filter_params = (
        present_param(),
        exact("owner", "owner_user_id", "groups owned by this user ID"),
        updated_since_param(),
    )


class MemberViewSet(MirrorViewSet):
    """Group members; those who quit or were kicked stay as tombstones (``present=false``)."""

    queryset = GroupMember.objects.all()
    serializer_class = serializers.GroupMemberSerializer
    natural_key = ("group_id", "user_id")
    filter_params = (
        exact("group", "group_id", "members of this group ID"),
        exact("user", "user_id", "memberships of this user ID"),
        present_param(),
        Param(
            "role_level",
            "Only members with this role level (20 member, 60 administrator, 100 owner).",
            lookup="role_level",
            type=int,
            parse=lambda name, value: _integer(name, value),
        ),
        updated_since_param(),
    )


class FriendViewSet(MirrorViewSet):
    """Directed friendship edges: ``friend_user_id`` is on ``owner_user_id``'s list."""

    queryset = Friend.objects.all()
    serializer_class = serializers.FriendSerializer
    natural_key = ("owner_user_id", "friend_user_id")
    filter_params = (
        exact("owner", "owner_user_id", "this user ID's friend list"),
        exact("friend", "friend_user_id", "edges pointing at this user ID"),
        present_param(),
        updated_since_param(),
    )


class BlockViewSet(MirrorViewSet):
    """Directed block-list edges: ``blocked_user_id`` is on ``owner_user_id``'s block list."""

    queryset = BlockedUser.objects.all()
    serializer_class = serializers.BlockedUserSerializer
    natural_key = ("owner_user_id", "blocked_user_id")
    filter_params = (
        exact("owner", "owner_user_id", "this user ID's block list"),
        exact("blocked", "blocked_user_id", "edges blocking this user ID"),
        present_param(),
        updated_since_param(),
    )


def _online(queryset, value):
    online = OnlineSession.objects.online()
    return (
        queryset.filter(pk__in=online.values("pk"))
        if value
        else queryset.exclude(pk__in=online.values("pk"))
    )


def _integer(name, value):
    from rest_framework.exceptions import ValidationError

    try:
        return int(value)
    except ValueError:
        raise ValidationError({name: f"{value!r} is not an integer."}) from None


class SessionViewSet(MirrorViewSet):
    """A user's state per platform (and connection)."""

    queryset = OnlineSession.objects.all()
    serializer_class = serializers.OnlineSessionSerializer
    natural_key = ("user_id", "platform", "conn_id")
    filter_params = (
        exact("user", "user_id", "sessions of this user ID"),
        exact("platform", "platform", "sessions on this platform"),
        Param(
            "online",
            "true: only sessions online now (reported online and refreshed within "
            "PRESENCE_TTL_SECONDS); false: the others.",
            apply=_online,
            type=bool,
            parse=boolean,
        ),
        updated_since_param(),
    )


class EventViewSet(MirrorViewSet):
    """Stored callback deliveries, newest first. Staff only, whatever the configured permissions."""

    queryset = CallbackEvent.objects.all()
    serializer_class = serializers.CallbackEventSerializer
    pagination_class = EventCursorPagination
    extra_permission_classes = (IsAdminUser,)
    filter_params = (
        Param(
            "status",
            "Only events with this status.",
            lookup="status",
            enum=tuple(EventStatus.values),
        ),
        Param(
            "protocol",
            "Only events of this protocol.",
            lookup="protocol",
            enum=tuple(Protocol.values),
        ),
        exact("command", "command", "events of this command name"),
        exact("user", "subject_user_id", "events about this user ID (the actor)"),
        exact("group", "subject_group_id", "events about this group ID"),
        exact("peer", "subject_peer_id", "events about this other user ID (friend, blocked)"),
        Param(
            "received_since",
            "Only events received at or after this ISO 8601 date-time.",
            lookup="received_at__gte",
            type=OpenApiTypes.DATETIME,
            parse=timestamp,
        ),
        Param(
            "received_before",
            "Only events received before this ISO 8601 date-time.",
            lookup="received_at__lt",
            type=OpenApiTypes.DATETIME,
            parse=timestamp,
        ),
    )
