"""Include with ``path("openim/", include("openim_sync.urls"))``.

``callback`` takes every OpenIM URL shape (``callback``, ``callback/<command>``,
``callback/<secret>/<command>``, ``?command=``); ``tencent`` takes Tencent Cloud Chat. Each also
takes whatever follows its name without continuing the word (``callback%0a``, ``tencent/x``), so
that the view, not Django's HTML 404, answers those with the protocol's envelope.
"""

from django.urls import include, path, re_path

from .views import OpenIMCallbackView, TencentCallbackView

app_name = "openim_sync"

urlpatterns = [
    re_path(
        r"^callback(?P<path>(?![\w-])[\s\S]+)?$",
        OpenIMCallbackView.as_view(),
        name="openim-callback",
    ),
    re_path(
        r"^tencent(?P<path>(?![\w-])[\s\S]+)?$",
        TencentCallbackView.as_view(),
        name="tencent-callback",
    ),
    path("api/", include("openim_sync.api.urls")),
]
