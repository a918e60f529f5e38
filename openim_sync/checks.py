"""System checks for the OPENIM_SYNC settings. The ids are stable; docs/security.md lists them.

Errors (the settings cannot work as written):

* ``openim_sync.E001`` PROCESSING is not "inline" or "deferred".
* ``openim_sync.E002`` OPENIM_SYNC is not a dict, or has a key this app does not know (a typo).
* ``openim_sync.E003`` a list setting is neither a list (tuple) of strings nor a single string.
* ``openim_sync.E004`` an ALLOWED_IPS / TRUSTED_PROXIES entry is not an IP address or CIDR.
* ``openim_sync.E005`` TENCENT_SDKAPPID is not an integer (or a string of digits).
* ``openim_sync.E006`` a limit (MAX_BODY_BYTES, ...) is not a positive integer.
* ``openim_sync.E007`` an OPENIM_SECRETS entry is empty or contains "/" or "?" (it could never
  match a URL path segment), or an OPENIM_BASIC_AUTH_PASSWORDS entry is not "user:password".
* ``openim_sync.E008`` IGNORED_EVENTS is not "full", "summary" or "count".
* ``openim_sync.E009`` EVENT_RETENTION_BY_STATUS is not a dict of event statuses to a positive
  number of days or None.

Warnings (the settings work but are unsafe):

* ``openim_sync.W001`` DEBUG is False and OpenIM callbacks are accepted from anyone: no secret,
  no basic auth and no IP allowlist.
* ``openim_sync.W002`` Tencent callbacks are on (TENCENT_SDKAPPID is set) without TENCENT_TOKENS:
  anyone who knows the SDKAppID can post.

Reconcile (``manage.py openim_reconcile``):

* ``openim_sync.E010`` a reconcile setting is half set: OPENIM_API_URL without
  OPENIM_ADMIN_USER_ID or OPENIM_API_SECRET (or the other way round), TENCENT_ADMIN_IDENTIFIER
  without TENCENT_SECRET_KEY or TENCENT_SDKAPPID.
* ``openim_sync.E011`` OPENIM_API_URL or TENCENT_API_URL is not an http(s) URL, or a
  RECONCILE_* number is out of range.
* ``openim_sync.W010`` OPENIM_ADMIN_USER_ID is ``imAdmin``, the id OpenIM's own chat server uses:
  on OpenIM's main branch each admin token supersedes the other's after five minutes.
"""

import ipaddress

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from openim_sync.conf import DEFAULTS, IGNORED_EVENTS_MODES, LIST_SETTINGS, SETTING_NAME

POSITIVE_INTEGERS = (
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "TENCENT_SIGN_WINDOW_SECONDS",
    "EVENT_RETENTION_DAYS",
    "PRESENCE_TTL_SECONDS",
)
NETWORK_SETTINGS = ("ALLOWED_IPS", "TRUSTED_PROXIES")


def _name(key):
    return f"{SETTING_NAME}[{key!r}]"


@register(Tags.security, deploy=False)
def check_settings(app_configs=None, **kwargs):
    user = getattr(settings, SETTING_NAME, None)
    if user is None:
        user = {}
    if not isinstance(user, dict):
        return [
            Error(
                f"{SETTING_NAME} must be a dict, not {type(user).__name__}.",
                id="openim_sync.E002",
            )
        ]
    values = {**DEFAULTS, **user}
    messages = []

    for key in sorted(set(user) - set(DEFAULTS)):
        messages.append(
            Error(
                f"{SETTING_NAME} has an unknown key {key!r}.",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                id="openim_sync.E002",
            )
        )

    if values["PROCESSING"] not in ("inline", "deferred"):
        messages.append(
            Error(
                f"{_name('PROCESSING')} is {values['PROCESSING']!r}.",
                hint='Use "inline" or "deferred".',
                id="openim_sync.E001",
            )
        )

    lists = {}
    for key in LIST_SETTINGS:
        value = values[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            messages.append(
                Error(
                    f"{_name(key)} must be a list of strings, not {value!r}.",
                    id="openim_sync.E003",
                )
            )
            value = []
        lists[key] = list(value)

    for key in NETWORK_SETTINGS:
        for entry in lists[key]:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                messages.append(
                    Error(
                        f"{_name(key)} has {entry!r}, which is not an IP address or network.",
                        hint='Use addresses or CIDRs such as "10.0.0.0/8" or "2001:db8::/32".',
                        id="openim_sync.E004",
                    )
                )

    for secret in lists["OPENIM_SECRETS"]:
        if not secret or "/" in secret or "?" in secret:
            messages.append(
                Error(
                    f"{_name('OPENIM_SECRETS')} has an entry that is empty or contains '/' or "
                    "'?': it can never match a URL path segment.",
                    id="openim_sync.E007",
                )
            )
    for pair in lists["OPENIM_BASIC_AUTH_PASSWORDS"]:
        if ":" not in pair:
            messages.append(
                Error(
                    f"{_name('OPENIM_BASIC_AUTH_PASSWORDS')} has an entry without ':'.",
                    hint='Each entry is "user:password", as in https://user:password@host/...',
                    id="openim_sync.E007",
                )
            )

    sdkappid = values["TENCENT_SDKAPPID"]
    tencent_on = sdkappid not in (None, "")
    if tencent_on and not _is_integer(sdkappid):
        messages.append(
            Error(
                f"{_name('TENCENT_SDKAPPID')} is {sdkappid!r}, not an integer.",
                hint="Copy the SDKAppID from the Tencent Cloud Chat console, e.g. 1400000000.",
                id="openim_sync.E005",
            )
        )

    for key in POSITIVE_INTEGERS:
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            messages.append(
                Error(
                    f"{_name(key)} must be a positive integer, not {value!r}.",
                    id="openim_sync.E006",
                )
            )

    messages += _check_event_store(values)

    protected = lists["OPENIM_SECRETS"] or lists["OPENIM_BASIC_AUTH_PASSWORDS"]
    if not settings.DEBUG and not protected and not lists["ALLOWED_IPS"]:
        messages.append(
            Warning(
                "OpenIM callbacks are accepted from anyone: no secret, no basic auth, no IP "
                "allowlist.",
                hint="Set OPENIM_SYNC['OPENIM_SECRETS'] and put the secret in OpenIM's "
                "webhooks.yml url, or set OPENIM_SYNC['ALLOWED_IPS'].",
                id="openim_sync.W001",
            )
        )
    if tencent_on and not lists["TENCENT_TOKENS"]:
        messages.append(
            Warning(
                "Tencent Cloud Chat callbacks are on but unauthenticated: TENCENT_TOKENS is "
                "empty, so anyone who knows the SDKAppID can post.",
                hint="Turn on callback authentication in the Tencent Cloud Chat console and put "
                "its token in OPENIM_SYNC['TENCENT_TOKENS'].",
                id="openim_sync.W002",
            )
        )
    return messages


def _check_event_store(values):
    from openim_sync.models.events import EventStatus

    messages = []
    mode = values["IGNORED_EVENTS"]
    if not isinstance(mode, str) or mode not in IGNORED_EVENTS_MODES:
        messages.append(
            Error(
                f"{_name('IGNORED_EVENTS')} is {mode!r}.",
                hint="Use "
                + ", ".join(f'"{m}"' for m in IGNORED_EVENTS_MODES[:-1])
                + f' or "{IGNORED_EVENTS_MODES[-1]}".',
                id="openim_sync.E008",
            )
        )
    by_status = values["EVENT_RETENTION_BY_STATUS"]
    statuses = ", ".join(f'"{s}"' for s in EventStatus.values)
    if not isinstance(by_status, dict):
        messages.append(
            Error(
                f"{_name('EVENT_RETENTION_BY_STATUS')} must be a dict, not {by_status!r}.",
                hint=f"Map statuses ({statuses}) to days or None, e.g. "
                '{"ignored": 2, "failed": None}.',
                id="openim_sync.E009",
            )
        )
        return messages
    for status, days in by_status.items():
        if status not in EventStatus.values:
            messages.append(
                Error(
                    f"{_name('EVENT_RETENTION_BY_STATUS')} has an unknown status {status!r}.",
                    hint=f"The statuses are {statuses}.",
                    id="openim_sync.E009",
                )
            )
        elif days is not None and (
            isinstance(days, bool) or not isinstance(days, int) or days <= 0
        ):
            messages.append(
                Error(
                    f"{_name('EVENT_RETENTION_BY_STATUS')}[{status!r}] must be a positive number "
                    f"of days or None (keep forever), not {days!r}.",
                    id="openim_sync.E009",
                )
            )
    return messages


def _is_integer(value):
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.isascii() and value.isdigit()


@register(Tags.security, deploy=False)
def check_reconcile_settings(app_configs=None, **kwargs):
    user = getattr(settings, SETTING_NAME, None)
    if not isinstance(user, dict):
        return []
    values = {**DEFAULTS, **user}
    messages = []
    openim = ("OPENIM_API_URL", "OPENIM_ADMIN_USER_ID", "OPENIM_API_SECRET")
    tencent = ("TENCENT_ADMIN_IDENTIFIER", "TENCENT_SECRET_KEY", "TENCENT_SDKAPPID")
    for group in (openim, tencent):
        given = [key for key in group if values[key] not in (None, "")]
        if given and len(given) < len(group) and (group is openim or given != ["TENCENT_SDKAPPID"]):
            missing = [key for key in group if key not in given]
            messages.append(
                Error(
                    f"{_name(given[0])} is set but {', '.join(_name(k) for k in missing)} "
                    "is not: reconcile cannot log in.",
                    hint="See docs/reconcile.md for the settings each server needs.",
                    id="openim_sync.E010",
                )
            )
    for key in ("OPENIM_API_URL", "TENCENT_API_URL"):
        url = values[key]
        if url and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            messages.append(
                Error(f"{_name(key)} is {url!r}, not an http(s) URL.", id="openim_sync.E011")
            )
    share = values["RECONCILE_PRUNE_MAX_SHARE"]
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        messages.append(
            Error(
                f"{_name('RECONCILE_PRUNE_MAX_SHARE')} must be a number from 0 to 1, not "
                f"{share!r}.",
                id="openim_sync.E011",
            )
        )
    for key in ("RECONCILE_TIMEOUT_SECONDS", "RECONCILE_MAX_RPS"):
        value = values[key]
        if value is None and key == "RECONCILE_MAX_RPS":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            messages.append(
                Error(
                    f"{_name(key)} must be a positive number, not {value!r}.", id="openim_sync.E011"
                )
            )
    if values["OPENIM_API_URL"] and values["OPENIM_ADMIN_USER_ID"] == "imAdmin":
        messages.append(
            Warning(
                "OPENIM_ADMIN_USER_ID is 'imAdmin', the admin id OpenIM's chat server also "
                "uses: two processes sharing it invalidate each other's admin tokens.",
                hint="Add a dedicated id (e.g. 'openim-sync') to OpenIM's imAdminUserID list, "
                "register it as a user and use it here.",
                id="openim_sync.W010",
            )
        )
    return messages
