"""The ``OPENIM_SYNC`` settings dict, read lazily and reloaded when tests change it.

Usage::

    from openim_sync.conf import app_settings
    app_settings.OPENIM_SECRETS

Names holding credentials contain SECRET, TOKEN or PASS so Django's error reports mask them.
"""

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

SETTING_NAME = "OPENIM_SYNC"

DEFAULTS = {
    # OpenIM: secret path segments (.../callback/<secret>/<command>); a list, for rotation.
    "OPENIM_SECRETS": [],
    # OpenIM: "user:password" pairs accepted as HTTP basic auth (Go sends a URL's userinfo that way).
    "OPENIM_BASIC_AUTH_PASSWORDS": [],
    # Both protocols: optional CIDR allowlist; X-Forwarded-For is honoured only from TRUSTED_PROXIES.
    "ALLOWED_IPS": [],
    "TRUSTED_PROXIES": [],
    # Tencent Cloud Chat: the SDKAppID the SdkAppid query parameter must equal (None: endpoint off).
    "TENCENT_SDKAPPID": None,
    # Tencent Cloud Chat: callback authentication tokens (Sign = sha256_hex(token + RequestTime)).
    "TENCENT_TOKENS": [],
    "TENCENT_SIGN_WINDOW_SECONDS": 60,
    # "inline": apply before replying; "deferred": store as "received", `openim_worker` applies.
    "PROCESSING": "inline",
    # Request limits: bodies above MAX_BODY_BYTES get 413; JSON nested deeper than MAX_JSON_DEPTH, 400.
    "MAX_BODY_BYTES": 1024 * 1024,
    "MAX_JSON_DEPTH": 32,
    # openim_prune deletes events older than this many days.
    "EVENT_RETENTION_DAYS": 30,
    # Days per status ({"ignored": 2, "failed": None}; None: keep forever), over
    # EVENT_RETENTION_DAYS. Unlisted failed/rejected/received events are kept (--include-failed).
    "EVENT_RETENTION_BY_STATUS": {},
    # How much of an ignored delivery (messages, "before" callbacks, unknown commands) is stored:
    # "full" (everything), "summary" (the row without body, payload, headers and query), "count"
    # (no row: +1 on its IgnoredEventCount row for the protocol, command and hour).
    "IGNORED_EVENTS": "full",
    # An online session with no refresh for this long counts as offline.
    "PRESENCE_TTL_SECONDS": 900,
    # The read API (openim_sync.api): DRF permission classes (dotted paths or classes) for every
    # endpoint; the default lets only staff users in. The events endpoint always needs staff too.
    "API_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    # The read API's page size (?page_size= may ask for up to API_MAX_PAGE_SIZE).
    "API_PAGE_SIZE": 100,
    "API_MAX_PAGE_SIZE": 1000,
    # Reconcile (manage.py openim_reconcile): OpenIM's REST API, e.g. "http://openim-api:10002",
    # and a dedicated admin user (listed in OpenIM's imAdminUserID / imAdminUser.userIDs) with
    # OpenIM's share.yml secret.
    "OPENIM_API_URL": "",
    "OPENIM_ADMIN_USER_ID": "",
    "OPENIM_API_SECRET": "",
    # Reconcile with Tencent Cloud Chat: the data centre's REST domain, an App admin account
    # and the app's secret key (UserSig is computed from it). TENCENT_SDKAPPID is shared.
    "TENCENT_API_URL": "https://console.tim.qq.com",
    "TENCENT_ADMIN_IDENTIFIER": "",
    "TENCENT_SECRET_KEY": "",
    # Tencent cannot list accounts: a callable (or its dotted path) returning user ids to
    # reconcile besides the ones the mirror knows.
    "TENCENT_ACCOUNT_IDS": None,
    # REST timeouts (seconds), a client-side cap on requests per second (None: the servers'
    # own limits), and --prune's safety: refuse when more than this share would go.
    "RECONCILE_TIMEOUT_SECONDS": 10.0,
    "RECONCILE_MAX_RPS": None,
    "RECONCILE_PRUNE_MAX_SHARE": 0.1,
}

#: The values of IGNORED_EVENTS.
IGNORED_EVENTS_MODES = ("full", "summary", "count")

LIST_SETTINGS = (
    "OPENIM_SECRETS",
    "OPENIM_BASIC_AUTH_PASSWORDS",
    "ALLOWED_IPS",
    "TRUSTED_PROXIES",
    "TENCENT_TOKENS",
)


class AppSettings:
    """Attribute access to ``settings.OPENIM_SYNC`` merged over :data:`DEFAULTS`, cached."""

    def __init__(self, defaults):
        self.defaults = defaults
        self._cache = {}

    @property
    def user_settings(self):
        return getattr(settings, SETTING_NAME, None) or {}

    def __getattr__(self, name):
        if name not in self.defaults:
            raise AttributeError(f"Invalid openim-sync setting: {name!r}")
        if name not in self._cache:
            value = self.user_settings.get(name, self.defaults[name])
            if name in LIST_SETTINGS and isinstance(value, str):
                value = [value]
            self._cache[name] = value
        return self._cache[name]

    def reload(self):
        self._cache.clear()


app_settings = AppSettings(DEFAULTS)


@receiver(setting_changed)
def reload_app_settings(*, setting, **kwargs):
    if setting == SETTING_NAME:
        app_settings.reload()
        from openim_sync.protocols import base

        base.reset_caches()
