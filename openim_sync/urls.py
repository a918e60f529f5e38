"""Include with ``path("openim/", include("openim_sync.urls"))``.

``callback`` takes every OpenIM URL shape (``callback``, ``callback/<command>``,
``callback/<secret>/<command>``, ``?command=``); ``tencent`` takes Tencent Cloud Chat.
"""

from django.urls import include, path, re_path

from .views import OpenIMCallbackView, TencentCallbackView

app_name = "openim_sync"

urlpatterns = [
    re_path(r"^callback(?P<path>/.*)?$", OpenIMCallbackView.as_view(), name="openim-callback"),
    re_path(r"^tencent/?$", TencentCallbackView.as_view(), name="tencent-callback"),
    path("api/", include("openim_sync.api.urls")),
]
