from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/openim_sync/", permanent=False)),
    path("admin/", admin.site.urls),
    path("openim/", include("openim_sync.urls")),
]
