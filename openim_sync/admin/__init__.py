"""The app's Django admin: events (with the sync status page), the read-only mirror, and
reconcile runs. Every ModelAdmin registers on ``django.contrib.admin.site``."""

from . import events, mirror, runs  # noqa: F401
