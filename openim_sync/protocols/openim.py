"""OpenIM Server: every URL shape from v2 to current main, secret path segments, basic auth.

URL shapes (``<base>`` is the URL configured in OpenIM, e.g. ``https://app/openim/callback``):

* v3.5+ ``POST <base>/<command>`` (the docs add ``?contenttype=json``)
* v3.0-3.4 ``POST <base>?command=<command>``
* v2 ``POST <base>``, the command only in the body's ``callbackCommand``

With secrets configured the base ends in a secret segment: ``<base>/<secret>[/<command>]``.
"""

import base64
import binascii
import re

from django.utils.crypto import constant_time_compare

from openim_sync.conf import app_settings
from openim_sync.exceptions import AuthenticationFailed, NotFound

from .base import ProtocolAdapter, Route, check_client_ip

CONTROL = re.compile("[\x00-\x1f\x7f]")
BASIC_CHALLENGE = 'Basic realm="openim-sync", charset="UTF-8"'
SUCCESS = {"actionCode": 0, "errCode": 0, "errMsg": "", "errDlt": "", "nextCode": 0}


class OpenIM(ProtocolAdapter):
    name = "openim"
    command_key = "callbackCommand"

    def route(self, request, path):
        if (path and not path.startswith("/")) or CONTROL.search(path):
            raise NotFound(
                "Unknown callback path: expected .../callback[/<secret>][/<command>], "
                "without control characters."
            )
        if path.endswith("/"):
            raise NotFound(
                "Callback URLs have no trailing slash: OpenIM appends '/<command>' itself, so "
                "configure the URL without one."
            )
        # A base URL configured with a trailing slash yields '//<command>': tolerate it.
        segments = [segment for segment in path.split("/") if segment]
        query_command = request.GET.get("command", "")
        if len(segments) > 2:
            raise NotFound("Unknown callback path: expected .../callback[/<secret>][/<command>].")
        if len(segments) == 2:
            secret, command = segments
        elif len(segments) == 1 and _matching_secret(segments[0]):
            secret, command = segments[0], ""
        else:
            secret, command = None, (segments[0] if segments else "")
        return Route(url_command=command or query_command, secret=secret)

    def authenticate(self, request, route):
        check_client_ip(request)
        secrets = app_settings.OPENIM_SECRETS
        passwords = app_settings.OPENIM_BASIC_AUTH_PASSWORDS
        if not secrets and not passwords:
            return
        if route.secret is not None and _matching_secret(route.secret):
            return
        credentials = _basic_auth(request)
        if credentials and any(constant_time_compare(credentials, p) for p in passwords):
            return
        challenge = BASIC_CHALLENGE if passwords else ""
        if route.secret is not None:
            raise AuthenticationFailed("The secret in the URL path is not valid.", challenge)
        if credentials:
            raise AuthenticationFailed("The basic-auth credentials are not valid.", challenge)
        how = "put a configured secret in the URL path (.../callback/<secret>/<command>)"
        if passwords:
            how = f"{how} or send basic auth" if secrets else "send basic auth"
        raise AuthenticationFailed(f"Missing credentials: {how}.", challenge)

    def success_body(self):
        return SUCCESS

    def error_body(self, status, message):
        # nextCode stays 0: an error reply must never block a "before" operation in OpenIM.
        return {"actionCode": 1, "errCode": status, "errMsg": message, "errDlt": "", "nextCode": 0}


def _matching_secret(candidate):
    # Compare with every secret (no early exit) so timing reveals nothing.
    matches = [constant_time_compare(candidate, s) for s in app_settings.OPENIM_SECRETS]
    return any(matches)


def _basic_auth(request):
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
