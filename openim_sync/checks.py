"""System checks for the OPENIM_SYNC settings (ids are stable: openim_sync.E001, W001, ...)."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from openim_sync.conf import app_settings


@register(Tags.security, deploy=False)
def check_settings(app_configs=None, **kwargs):
    messages = []
    if app_settings.PROCESSING not in ("inline", "deferred"):
        messages.append(
            Error(
                f"OPENIM_SYNC['PROCESSING'] is {app_settings.PROCESSING!r}.",
                hint='Use "inline" or "deferred".',
                id="openim_sync.E001",
            )
        )
    protected = app_settings.OPENIM_SECRETS or app_settings.OPENIM_BASIC_AUTH_PASSWORDS
    if not settings.DEBUG and not protected and not app_settings.ALLOWED_IPS:
        messages.append(
            Warning(
                "OpenIM callbacks are accepted from anyone: no secret, no basic auth, no IP "
                "allowlist.",
                hint="Set OPENIM_SYNC['OPENIM_SECRETS'] and put the secret in OpenIM's "
                "webhooks.yml url, or set OPENIM_SYNC['ALLOWED_IPS'].",
                id="openim_sync.W001",
            )
        )
    return messages
