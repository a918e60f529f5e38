"""Settings for the reference deployment (docs/deployment.md): the example project's
(``project.settings``) plus what serving it behind nginx needs, each from the environment.

``deploy/gunicorn.conf.py`` selects this module (``DJANGO_SETTINGS_MODULE=deploy.settings``).

- ``DEBUG`` is off unless ``DJANGO_DEBUG=1``.
- ``OPENIM_SYNC_TRUSTED_PROXIES`` (comma-separated addresses or CIDRs; default
  ``127.0.0.1,::1``, nginx on the same host): the addresses whose ``X-Forwarded-For`` is
  believed, so the stored ``remote_addr`` and ``ALLOWED_IPS`` see the IM server's address, not
  nginx's. Set it to nginx's address as gunicorn sees it; set it empty when nothing is in front.
- ``OPENIM_SYNC_ALLOWED_IPS``: the IM servers' addresses (optional allowlist).
- ``DATABASE_DISABLE_SERVER_SIDE_CURSORS=1`` behind PgBouncer in transaction mode (Django's
  ``.iterator()`` would otherwise declare a cursor in one transaction and fetch from it in
  another server connection).
"""

import os

from project.settings import *  # noqa: F403
from project.settings import DATABASES, OPENIM_SYNC


def _env_list(name, default):
    value = os.environ.get(name, default)
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"

OPENIM_SYNC = {
    **OPENIM_SYNC,
    "TRUSTED_PROXIES": _env_list("OPENIM_SYNC_TRUSTED_PROXIES", "127.0.0.1,::1"),
    "ALLOWED_IPS": _env_list("OPENIM_SYNC_ALLOWED_IPS", ""),
}

# nginx always sets X-Forwarded-Proto (deploy/nginx.conf), so it can be believed: request.is_secure()
# and absolute URLs (the read API's page links) follow the scheme the client used.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

if os.environ.get("DATABASE_DISABLE_SERVER_SIDE_CURSORS") == "1":
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
