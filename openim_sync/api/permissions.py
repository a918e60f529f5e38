"""Permission classes from ``OPENIM_SYNC["API_PERMISSION_CLASSES"]`` (default: admin users)."""

from django.utils.module_loading import import_string
from rest_framework.permissions import IsAdminUser

from openim_sync.conf import app_settings


def configured_permission_classes():
    classes = app_settings.API_PERMISSION_CLASSES
    if isinstance(classes, str):
        classes = [classes]
    return [import_string(c) if isinstance(c, str) else c for c in classes]


class ConfiguredPermissionsMixin:
    """Reads the permission classes per request, so a settings change applies at once."""

    #: Permission classes required on top of the configured ones (events: staff only).
    extra_permission_classes = ()

    def get_permissions(self):
        classes = [*configured_permission_classes(), *self.extra_permission_classes]
        return [permission() for permission in classes]


__all__ = ["ConfiguredPermissionsMixin", "IsAdminUser", "configured_permission_classes"]
