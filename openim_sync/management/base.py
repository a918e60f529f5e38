"""The base of the app's management commands: ``--version`` prints the app's version."""

import django
from django.core.management.base import BaseCommand

from openim_sync import __version__


class AppCommand(BaseCommand):
    def get_version(self):
        return f"django-openim-sync {__version__} (Django {django.get_version()})"
