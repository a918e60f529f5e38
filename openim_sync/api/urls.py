"""The read API's URLs: ``openim_sync.urls`` includes them at ``api/``.

A host may also mount them elsewhere: ``path("im-api/", include("openim_sync.api.urls"))``.
By-pk routes come before natural-key routes, so a two-part natural key whose first part is
literally ``pk`` is read through the list filters instead (``?group=pk&user=...``).
"""

from django.urls import path

from . import views
from .schema import SchemaView

app_name = "openim_sync_api"

LIST = {"get": "list"}
DETAIL = {"get": "retrieve"}


def routes(prefix, viewset, natural_key):
    name = prefix.rstrip("s") if prefix != "blocks" else "block"
    key = "/".join(f"<str:{part}>" for part in natural_key)
    patterns = [
        path(f"{prefix}/", viewset.as_view(LIST), name=f"{name}-list"),
        path(f"{prefix}/pk/<int:pk>/", viewset.as_view(DETAIL), name=f"{name}-detail-pk"),
    ]
    if natural_key:
        patterns.append(path(f"{prefix}/{key}/", viewset.as_view(DETAIL), name=f"{name}-detail"))
    return patterns


urlpatterns = [
    *routes("users", views.UserViewSet, ("user_id",)),
    *routes("groups", views.GroupViewSet, ("group_id",)),
    *routes("members", views.MemberViewSet, ("group_id", "user_id")),
    *routes("friends", views.FriendViewSet, ("owner_user_id", "friend_user_id")),
    *routes("blocks", views.BlockViewSet, ("owner_user_id", "blocked_user_id")),
    *routes("sessions", views.SessionViewSet, ("user_id", "platform")),
    path(
        "sessions/<str:user_id>/<str:platform>/<str:conn_id>/",
        views.SessionViewSet.as_view(DETAIL),
        name="session-detail-conn",
    ),
    path("events/", views.EventViewSet.as_view(LIST), name="event-list"),
    path("events/<int:pk>/", views.EventViewSet.as_view(DETAIL), name="event-detail"),
    path("schema/", SchemaView.as_view(), name="schema"),
]
