"""Tencent Cloud Chat: ``POST <url>?SdkAppid=..&CallbackCommand=..[&Sign=..&RequestTime=..]``."""

import hashlib
import time

from django.utils.crypto import constant_time_compare

from openim_sync.conf import app_settings
from openim_sync.exceptions import AuthenticationFailed, NotFound, PermissionDenied

from .base import ProtocolAdapter, Route, check_client_ip

SUCCESS = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}


def sign(token, request_time):
    """Tencent's callback signature: ``sha256_hex(token + RequestTime)``."""
    return hashlib.sha256(f"{token}{request_time}".encode()).hexdigest()


class Tencent(ProtocolAdapter):
    name = "tencent"
    command_key = "CallbackCommand"

    def route(self, request, path):
        if path not in ("", "/"):
            raise NotFound("Unknown callback path: expected .../tencent?SdkAppid=..")
        if app_settings.TENCENT_SDKAPPID in (None, ""):
            raise NotFound(
                "Tencent Cloud Chat callbacks are off: set OPENIM_SYNC['TENCENT_SDKAPPID']."
            )
        return Route(url_command=request.GET.get("CallbackCommand", ""))

    def authenticate(self, request, route):
        check_client_ip(request)
        expected = str(app_settings.TENCENT_SDKAPPID)
        given = request.GET.get("SdkAppid")
        if not given:
            raise PermissionDenied("The SdkAppid query parameter is missing.")
        if not constant_time_compare(given, expected):
            raise PermissionDenied(f"SdkAppid {given} is not this application's SDKAppID.")
        tokens = app_settings.TENCENT_TOKENS
        if tokens:
            check_sign(request.GET.get("Sign"), request.GET.get("RequestTime"), tokens)

    def success_body(self):
        return SUCCESS

    def error_body(self, status, message):
        return {"ActionStatus": "FAIL", "ErrorCode": 1, "ErrorInfo": message}


def check_sign(given_sign, request_time, tokens, now=None):
    if not given_sign or not request_time:
        raise AuthenticationFailed(
            "Callback authentication is on: the Sign and RequestTime query parameters are required."
        )
    try:
        seconds = int(request_time)
    except ValueError:
        raise AuthenticationFailed("RequestTime must be Unix seconds.") from None
    window = app_settings.TENCENT_SIGN_WINDOW_SECONDS
    skew = abs((now if now is not None else time.time()) - seconds)
    if skew > window:
        raise AuthenticationFailed(
            f"RequestTime is {int(skew)} s away from this server's clock (allowed: {window} s)."
        )
    given_sign = given_sign.lower()
    matches = [constant_time_compare(given_sign, sign(token, request_time)) for token in tokens]
    if not any(matches):
        raise AuthenticationFailed("Sign does not match any configured token.")
