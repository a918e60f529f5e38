"""Authentication: OpenIM secrets / basic auth / IP allowlist, Tencent SdkAppid / Sign / window.

A request that fails authentication gets 401/403 and leaves nothing behind: no event, no mirror.
Also: the callback views are CSRF-exempt and login-exempt, and nothing else is.
"""

import base64
import time

import pytest
from django.test import Client
from django.urls import get_resolver
from rest_framework.views import APIView

from openim_sync.exceptions import AuthenticationFailed
from openim_sync.models import CallbackEvent, EventStatus, ImUser
from openim_sync.protocols import openim as openim_protocol
from openim_sync.protocols.tencent import check_sign, sign
from tests.helpers import SDKAPPID, TOKEN, post_openim, post_tencent, seed

pytestmark = pytest.mark.django_db

UPDATE = "callbackAfterUpdateUserInfoCommand"
PORTRAIT = "Profile.CallbackPortraitSet"
SECRET = "Zq7-secret-segment"
WORKED_TIME = 1767225600
WORKED_SIGN = "2c9981292f18c269236cfda80d391737d73cbb364156350573b7cadfe73285a8"


def user_update(user_id="user123", nickname="John Doe"):
    return {**seed(UPDATE), "userID": user_id, "nickName": nickname}


def basic(credentials):
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials.encode()).decode()}


def assert_accepted(response, user_id="user123"):
    assert response.status_code == 200, response.content
    assert response.json()["errCode" if "errCode" in response.json() else "ErrorCode"] == 0
    assert CallbackEvent.objects.filter(status=EventStatus.PROCESSED).count() == 1
    assert ImUser.objects.filter(user_id=user_id).exists()


def assert_refused(response, status, message):
    assert response.status_code == status, response.content
    body = response.json()
    text = body.get("errMsg", body.get("ErrorInfo"))
    assert message in text
    if "errCode" in body:
        assert body["errCode"] == status and body["actionCode"] == 1
    else:
        assert body["ActionStatus"] == "FAIL" and body["ErrorCode"] != 0
    assert CallbackEvent.objects.count() == 0, "a refused request must not be stored"
    assert ImUser.objects.count() == 0


# --- OpenIM: secret path segments -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query", "body_command"),
    [
        (f"/{SECRET}/{UPDATE}", None, True),  # v3.5+
        (f"/{SECRET}/{UPDATE}", {"contenttype": "json"}, True),  # the docs' variant
        (f"/{SECRET}//{UPDATE}", None, True),  # base URL configured with a trailing slash
        (f"/{SECRET}", {"command": UPDATE}, True),  # v3.0-3.4
        (f"/{SECRET}", {"command": UPDATE, "contenttype": "json"}, False),
        (f"/{SECRET}", None, True),  # v2: the command only in the body
    ],
)
def test_secret_in_every_url_shape(client, openim_settings, path, query, body_command):
    openim_settings(OPENIM_SECRETS=[SECRET])
    body = user_update()
    if not body_command:
        del body["callbackCommand"]
    assert_accepted(post_openim(client, path, body, query=query))
    event = CallbackEvent.objects.get()
    assert event.command == UPDATE


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        (f"/wrong-secret/{UPDATE}", None, "secret in the URL path is not valid"),
        (f"/{SECRET[:-1]}/{UPDATE}", None, "secret in the URL path is not valid"),  # prefix
        (f"/{SECRET}x/{UPDATE}", None, "secret in the URL path is not valid"),  # longer
        (f"/{SECRET.upper()}/{UPDATE}", None, "secret in the URL path is not valid"),
        (f"/{UPDATE}", None, "Missing credentials"),
        ("", {"command": UPDATE}, "Missing credentials"),
        ("", None, "Missing credentials"),
        ("/wrong-secret", {"command": UPDATE}, "Missing credentials"),
    ],
)
def test_wrong_or_missing_secret_is_401(client, openim_settings, path, query, message):
    openim_settings(OPENIM_SECRETS=[SECRET])
    response = post_openim(client, path, user_update(), query=query)
    assert_refused(response, 401, message)
    assert "WWW-Authenticate" not in response  # basic auth is not configured


def test_secret_rotation(client, openim_settings):
    openim_settings(OPENIM_SECRETS=["old-secret", "new-secret"])
    assert post_openim(client, f"/old-secret/{UPDATE}", user_update("a")).status_code == 200
    assert post_openim(client, f"/new-secret/{UPDATE}", user_update("b")).status_code == 200
    openim_settings(OPENIM_SECRETS=["new-secret"])  # rotation finished
    response = post_openim(client, f"/old-secret/{UPDATE}", user_update("c"))
    assert response.status_code == 401
    assert sorted(ImUser.objects.values_list("user_id", flat=True)) == ["a", "b"]
    assert CallbackEvent.objects.count() == 2


def test_secret_compared_with_every_configured_secret(client, openim_settings, monkeypatch):
    """Constant time: Django's constant_time_compare, and no early exit on the first match."""
    compared = []

    real = openim_protocol.constant_time_compare

    def spy(a, b):
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(openim_protocol, "constant_time_compare", spy)
    openim_settings(OPENIM_SECRETS=["first", "second", "third"])
    assert post_openim(client, f"/first/{UPDATE}", user_update()).status_code == 200
    assert compared == ["first", "second", "third"]


def test_no_credentials_configured_accepts_plain_url(client, openim_settings):
    openim_settings(OPENIM_SECRETS=[], OPENIM_BASIC_AUTH_PASSWORDS=[])
    assert_accepted(post_openim(client, f"/{UPDATE}", user_update()))


# --- OpenIM: HTTP basic auth ------------------------------------------------------------------


def test_basic_auth_accepted_and_not_stored(client, openim_settings):
    openim_settings(OPENIM_BASIC_AUTH_PASSWORDS=["openim:pa:ss"])
    response = post_openim(client, f"/{UPDATE}", user_update(), **basic("openim:pa:ss"))
    assert_accepted(response)
    headers = CallbackEvent.objects.get().headers
    assert not any(name.lower() == "authorization" for name in headers)


def test_basic_auth_rotation(client, openim_settings):
    openim_settings(OPENIM_BASIC_AUTH_PASSWORDS=["openim:old", "openim:new"])
    for n, credentials in enumerate(["openim:old", "openim:new"]):
        response = post_openim(client, f"/{UPDATE}", user_update(f"u{n}"), **basic(credentials))
        assert response.status_code == 200
    assert ImUser.objects.count() == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (basic("openim:wrong"), "basic-auth credentials are not valid"),
        (basic("other:pa:ss"), "basic-auth credentials are not valid"),
        (basic("openim:pa:s"), "basic-auth credentials are not valid"),
        ({"HTTP_AUTHORIZATION": "Basic !!!not-base64"}, "Missing credentials: send basic auth"),
        ({"HTTP_AUTHORIZATION": "Bearer openim:pa:ss"}, "Missing credentials: send basic auth"),
        ({}, "Missing credentials: send basic auth"),
    ],
)
def test_bad_basic_auth_is_401_with_challenge(client, openim_settings, extra, message):
    openim_settings(OPENIM_BASIC_AUTH_PASSWORDS=["openim:pa:ss"])
    response = post_openim(client, f"/{UPDATE}", user_update(), **extra)
    assert_refused(response, 401, message)
    assert response["WWW-Authenticate"].startswith("Basic realm=")


def test_secret_or_basic_auth_either_suffices(client, openim_settings):
    openim_settings(OPENIM_SECRETS=[SECRET], OPENIM_BASIC_AUTH_PASSWORDS=["openim:pw"])
    assert post_openim(client, f"/{SECRET}/{UPDATE}", user_update("a")).status_code == 200
    response = post_openim(client, f"/{UPDATE}", user_update("b"), **basic("openim:pw"))
    assert response.status_code == 200
    response = post_openim(client, f"/bad/{UPDATE}", user_update("c"), **basic("openim:bad"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")
    assert sorted(ImUser.objects.values_list("user_id", flat=True)) == ["a", "b"]


# --- IP allowlist and trusted proxies ---------------------------------------------------------


@pytest.mark.parametrize(
    ("remote", "forwarded", "allowed"),
    [
        ("10.1.2.3", None, True),
        ("10.255.255.255", None, True),
        ("11.0.0.1", None, False),
        ("2001:db8::7", None, True),
        ("2001:db9::7", None, False),
        ("192.0.2.1", None, True),  # a single address entry
        ("::ffff:10.1.2.3", None, True),  # IPv4 client seen by a dual-stack listener
        ("::ffff:11.0.0.1", None, False),
        ("192.0.2.2", None, False),
        # X-Forwarded-For from a host that is not a trusted proxy is ignored.
        ("11.0.0.1", "10.1.2.3", False),
        # From a trusted proxy: the rightmost address that is not a trusted proxy is the client.
        ("127.0.0.1", "10.1.2.3", True),
        ("127.0.0.1", "11.0.0.1", False),
        ("127.0.0.1", "10.1.2.3, 11.0.0.1", False),  # a spoofed left entry does not help
        ("127.0.0.1", "11.0.0.1, 10.1.2.3", True),
        ("127.0.0.1", "10.1.2.3, 172.16.0.9", True),  # two trusted proxies in a row
        ("127.0.0.1", "not-an-ip", False),
    ],
)
def test_ip_allowlist(client, openim_settings, remote, forwarded, allowed):
    openim_settings(
        ALLOWED_IPS=["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"],
        TRUSTED_PROXIES=["127.0.0.1", "172.16.0.0/12"],
    )
    extra = {"REMOTE_ADDR": remote}
    if forwarded:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    response = post_openim(client, f"/{UPDATE}", user_update(), **extra)
    if allowed:
        assert_accepted(response)
    else:
        assert_refused(response, 403, "is not in ALLOWED_IPS")


def test_forwarded_client_ip_is_stored(client, openim_settings):
    openim_settings(TRUSTED_PROXIES=["127.0.0.1"])
    post_openim(client, f"/{UPDATE}", user_update(), HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert CallbackEvent.objects.get().remote_addr == "203.0.113.9"


def test_unparsable_forwarded_ip_is_stored_as_unknown(client, openim_settings):
    # PostgreSQL's inet column refuses anything that is not an address: never a 500.
    openim_settings(TRUSTED_PROXIES=["127.0.0.1"])
    response = post_openim(client, f"/{UPDATE}", user_update(), HTTP_X_FORWARDED_FOR="garbage")
    assert response.status_code == 200
    assert CallbackEvent.objects.get().remote_addr is None


def test_allowlist_is_checked_before_the_secret(client, openim_settings):
    openim_settings(OPENIM_SECRETS=[SECRET], ALLOWED_IPS=["10.0.0.0/8"])
    outside = post_openim(client, f"/{SECRET}/{UPDATE}", user_update(), REMOTE_ADDR="11.0.0.1")
    assert_refused(outside, 403, "11.0.0.1 is not in ALLOWED_IPS")
    inside = post_openim(client, f"/nope/{UPDATE}", user_update(), REMOTE_ADDR="10.0.0.1")
    assert_refused(inside, 401, "secret")


def test_allowlist_applies_to_tencent(client, openim_settings):
    openim_settings(TENCENT_SDKAPPID=SDKAPPID, TENCENT_TOKENS=[], ALLOWED_IPS=["10.0.0.0/8"])
    response = post_tencent(client, seed(PORTRAIT), REMOTE_ADDR="11.0.0.1")
    assert_refused(response, 403, "is not in ALLOWED_IPS")


# --- Tencent: Sign ----------------------------------------------------------------------------


def test_sign_worked_examples():
    assert sign(TOKEN, WORKED_TIME) == WORKED_SIGN
    assert sign(TOKEN, str(WORKED_TIME)) == WORKED_SIGN
    assert (
        sign("xxxxyyyy", 1669872112)
        == "17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061"
    )
    assert (
        sign("wrong-token", WORKED_TIME)
        == "95753bf6464ac17891f14c1c155f48d9514ad4779509066c1a1c0c3c9390646a"
    )


@pytest.mark.parametrize("offset", [-60, -1, 0, 1, 60])
def test_check_sign_accepts_within_window(offset):
    check_sign(WORKED_SIGN, str(WORKED_TIME), [TOKEN], now=WORKED_TIME + offset)
    check_sign(WORKED_SIGN.upper(), str(WORKED_TIME), [TOKEN], now=WORKED_TIME + offset)


@pytest.mark.parametrize(
    ("given_sign", "request_time", "tokens", "now", "message"),
    [
        (WORKED_SIGN, "1767225600", [TOKEN], WORKED_TIME + 61, "61 s away"),
        (WORKED_SIGN, "1767225600", [TOKEN], WORKED_TIME - 61, "61 s away"),
        (  # wrong token
            "95753bf6464ac17891f14c1c155f48d9514ad4779509066c1a1c0c3c9390646a",
            "1767225600",
            [TOKEN],
            WORKED_TIME,
            "does not match",
        ),
        (WORKED_SIGN, "1767225601", [TOKEN], WORKED_TIME, "does not match"),  # time tampered
        (  # time + token: the order matters
            "195d8c56f31465e0fcf1479cc2bb63c1ff19e77f03931568a46b2c157ae01fac",
            "1767225600",
            [TOKEN],
            WORKED_TIME,
            "does not match",
        ),
        (WORKED_SIGN, "1767225600", ["other-token"], WORKED_TIME, "does not match"),
        (WORKED_SIGN, "", [TOKEN], WORKED_TIME, "are required"),
        (None, "1767225600", [TOKEN], WORKED_TIME, "are required"),
        (WORKED_SIGN, "2026-01-01T00:00:00Z", [TOKEN], WORKED_TIME, "Unix seconds"),
    ],
)
def test_check_sign_rejects(given_sign, request_time, tokens, now, message):
    with pytest.raises(AuthenticationFailed, match=message):
        check_sign(given_sign, request_time, tokens, now=now)


def test_check_sign_with_several_tokens():
    tokens = ["old-token", TOKEN, "newer-token"]
    check_sign(WORKED_SIGN, str(WORKED_TIME), tokens, now=WORKED_TIME)
    check_sign(sign("newer-token", WORKED_TIME), str(WORKED_TIME), tokens, now=WORKED_TIME)


def test_sign_window_is_configurable(openim_settings):
    openim_settings(TENCENT_SIGN_WINDOW_SECONDS=300)
    check_sign(WORKED_SIGN, str(WORKED_TIME), [TOKEN], now=WORKED_TIME + 300)
    with pytest.raises(AuthenticationFailed, match="allowed: 300 s"):
        check_sign(WORKED_SIGN, str(WORKED_TIME), [TOKEN], now=WORKED_TIME + 301)


# --- Tencent over HTTP ------------------------------------------------------------------------


@pytest.fixture
def tencent(openim_settings):
    openim_settings(TENCENT_SDKAPPID=SDKAPPID, TENCENT_TOKENS=["old-token", TOKEN])


def test_tencent_fresh_sign_accepted(client, tencent):
    assert_accepted(post_tencent(client, seed(PORTRAIT), token=TOKEN), user_id="id1")
    assert_accepted_count = CallbackEvent.objects.get().query
    assert assert_accepted_count["RequestTime"]
    assert post_tencent(client, seed(PORTRAIT), token="old-token").status_code == 200


@pytest.mark.parametrize(
    ("query_args", "status", "message"),
    [
        ({"token": "wrong-token"}, 401, "Sign does not match any configured token"),
        ({}, 401, "Sign and RequestTime query parameters are required"),
        (
            {"token": TOKEN, "request_time": int(time.time()) - 3600},
            401,
            "away from this server's clock (allowed: 60 s)",
        ),
        (
            {"token": TOKEN, "request_time": int(time.time()) + 3600},
            401,
            "away from this server's clock",
        ),
        # The sample request from _request.md: a valid Sign, but long stale by now.
        (
            {"Sign": WORKED_SIGN, "RequestTime": WORKED_TIME},
            401,
            "away from this server's clock",
        ),
        ({"token": TOKEN, "sdkappid": 1400999999}, 403, "SdkAppid 1400999999 is not"),
        ({"token": TOKEN, "sdkappid": None}, 403, "SdkAppid query parameter is missing"),
        ({"token": TOKEN, "sdkappid": ""}, 403, "SdkAppid query parameter is missing"),
    ],
)
def test_tencent_refused(client, tencent, query_args, status, message):
    response = post_tencent(client, seed(PORTRAIT), **query_args)
    assert_refused(response, status, message)


def test_tencent_sign_window_configurable_over_http(client, openim_settings):
    openim_settings(
        TENCENT_SDKAPPID=SDKAPPID, TENCENT_TOKENS=[TOKEN], TENCENT_SIGN_WINDOW_SECONDS=7200
    )
    response = post_tencent(
        client, seed(PORTRAIT), token=TOKEN, request_time=int(time.time()) - 3600
    )
    assert_accepted(response, user_id="id1")


def test_tencent_without_tokens_needs_only_sdkappid(client, openim_settings):
    openim_settings(TENCENT_SDKAPPID=SDKAPPID, TENCENT_TOKENS=[])
    assert_accepted(post_tencent(client, seed(PORTRAIT)), user_id="id1")


def test_tencent_off_without_sdkappid(client, openim_settings):
    openim_settings(TENCENT_SDKAPPID=None)
    response = post_tencent(client, seed(PORTRAIT), token=TOKEN)
    assert_refused(response, 404, "TENCENT_SDKAPPID")


def test_sdkappid_as_string_setting(client, openim_settings):
    openim_settings(TENCENT_SDKAPPID=str(SDKAPPID), TENCENT_TOKENS=[TOKEN])
    assert_accepted(post_tencent(client, seed(PORTRAIT), token=TOKEN), user_id="id1")


# --- CSRF, LoginRequiredMiddleware, ATOMIC_REQUESTS -------------------------------------------


def test_csrf_exempt_callbacks_only(openim_settings, tencent):
    client = Client(enforce_csrf_checks=True)
    assert post_openim(client, f"/{UPDATE}", user_update()).status_code == 200
    assert post_tencent(client, seed(PORTRAIT), token=TOKEN).status_code == 200
    # Everything else keeps CSRF protection.
    response = client.post("/admin/login/", {"username": "x", "password": "y"})
    assert response.status_code == 403


LOGIN_REQUIRED = "django.contrib.auth.middleware.LoginRequiredMiddleware"


def test_login_required_middleware(settings, client, tencent):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, LOGIN_REQUIRED]
    settings.LOGIN_URL = "/admin/login/"
    assert post_openim(client, f"/{UPDATE}", user_update()).status_code == 200
    assert post_tencent(client, seed(PORTRAIT), token=TOKEN).status_code == 200
    # A GET on a callback URL is answered by the view (405), not redirected to a login page.
    assert client.get(f"/openim/callback/{UPDATE}").status_code == 405
    # Nothing else is exempt: the host's pages and the admin still demand a login.
    for url in ("/", "/admin/openim_sync/callbackevent/", "/admin/openim_sync/imuser/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url


def test_only_the_callback_views_are_exempt(client):
    """Walk the app's URLconf: each view that skips CSRF or login is a callback view or a
    read-only API view that demands its own permission (admin users by default)."""
    resolver = get_resolver("openim_sync.urls")
    callbacks, api = [], []
    for pattern in resolver.url_patterns:
        if hasattr(pattern, "url_patterns"):
            api.extend(pattern.url_patterns)
        else:
            callbacks.append(pattern.callback)
    assert [view.view_class.__name__ for view in callbacks] == [
        "OpenIMCallbackView",
        "TencentCallbackView",
    ]
    for view in callbacks:
        assert view.csrf_exempt is True
        assert view.login_required is False
        assert view._non_atomic_requests == {"default"}
    assert api, "the read API is included at api/"
    for pattern in api:
        view_class = getattr(pattern.callback, "cls", None) or pattern.callback.view_class
        assert issubclass(view_class, APIView), pattern
        assert view_class().get_permissions(), pattern
    for url in ("/openim/api/users/", "/openim/api/events/", "/openim/api/schema/"):
        assert client.get(url).status_code in (401, 403), url
