"""A host project as deployed: its own settings module and process, LoginRequiredMiddleware,
ATOMIC_REQUESTS, DEBUG off, a custom command registered by a host app, a SQLite database file.

Proves from the outside what tests/test_auth.py proves in process: the callback views are
CSRF- and login-exempt and non-atomic (a failed delivery's event survives), and nothing else is.
"""

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.helpers import SDKAPPID, TOKEN, go_json, live_process, run_or_fail, tencent_query

ROOT = Path(__file__).parent.parent
SECRET = "host-secret-segment"

HOST_SETTINGS = f"""
from project.settings import *  # noqa: F403

DEBUG = False
MIDDLEWARE = [*MIDDLEWARE, "django.contrib.auth.middleware.LoginRequiredMiddleware"]
DATABASES["default"]["ATOMIC_REQUESTS"] = True
INSTALLED_APPS = [*INSTALLED_APPS, "hostapp"]
OPENIM_SYNC = {{
    "OPENIM_SECRETS": [{SECRET!r}],
    "TENCENT_SDKAPPID": {SDKAPPID},
    "TENCENT_TOKENS": [{TOKEN!r}],
}}
"""

UNPROTECTED_SETTINGS = """
from host_settings import *  # noqa: F403

OPENIM_SYNC = {"TENCENT_SDKAPPID": 1400123456}
"""

HOST_APP = """
from django.apps import AppConfig
from rest_framework import serializers


class Payload(serializers.Serializer):
    userID = serializers.CharField()


def explode(data, ctx):
    raise RuntimeError("host handler bug")


class HostAppConfig(AppConfig):
    name = "hostapp"

    def ready(self):
        from openim_sync.callbacks import registry

        registry.handles("openim", "callbackHostExplodeCommand", serializer=Payload)(explode)
"""


@contextlib.contextmanager
def run_host(tmp, settings_module):
    """Migrate and run the host project (``settings_module`` importable from ``tmp``) on a SQLite
    file in ``tmp``, in its own process; yield what a test needs to talk to it."""
    database = tmp / "host.sqlite3"
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(
        SQLITE_PATH=str(database),
        DJANGO_SETTINGS_MODULE=settings_module,
        PYTHONPATH=os.pathsep.join([str(tmp), str(ROOT)]),
        PYTHONUNBUFFERED="1",
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    run_or_fail([*manage, "migrate", "-v0"], env=env, cwd=tmp)
    runserver = [*manage, "runserver", "--noreload", "127.0.0.1:0"]
    with live_process(runserver, env=env, cwd=tmp, log_path=tmp / "server.log") as url:
        yield {"url": url, "database": database, "manage": manage, "env": env, "cwd": tmp}


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("host")
    (tmp / "host_settings.py").write_text(HOST_SETTINGS)
    (tmp / "unprotected_settings.py").write_text(UNPROTECTED_SETTINGS)
    (tmp / "hostapp").mkdir()
    (tmp / "hostapp" / "__init__.py").write_text("")
    (tmp / "hostapp" / "apps.py").write_text(textwrap.dedent(HOST_APP))
    with run_host(tmp, "host_settings") as running:
        yield running


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def request(host, path, body=None, method="POST", headers=None):
    req = urllib.request.Request(
        host["url"] + path,
        data=body,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with OPENER.open(req, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def query(host, sql, *params):
    with sqlite3.connect(host["database"]) as db:
        return db.execute(sql, params).fetchall()


def test_callbacks_work_under_login_required_and_csrf(host):
    body = {
        "callbackCommand": "callbackAfterUpdateUserInfoCommand",
        "userID": "h1",
        "nickName": "H",
    }
    status, _, reply = request(
        host, f"/openim/callback/{SECRET}/callbackAfterUpdateUserInfoCommand", go_json(body)
    )
    assert status == 200, reply
    assert json.loads(reply)["errCode"] == 0

    portrait = {
        "CallbackCommand": "Profile.CallbackPortraitSet",
        "From_Account": "h2",
        "EventTime": 1,
        "ProfileItem": [{"Tag": "Tag_Profile_IM_Nick", "Value": "T"}],
    }
    url = f"/openim/tencent?{urlencode(tencent_query(portrait['CallbackCommand'], token=TOKEN))}"
    status, _, reply = request(host, url, json.dumps(portrait).encode())
    assert status == 200, reply
    assert query(host, "SELECT user_id, nickname FROM openim_sync_imuser ORDER BY user_id") == [
        ("h1", "H"),
        ("h2", "T"),
    ]


def test_failed_delivery_survives_atomic_requests(host):
    command = "callbackHostExplodeCommand"
    body = go_json({"callbackCommand": command, "userID": "x"})
    status, _, reply = request(host, f"/openim/callback/{SECRET}/{command}", body)
    assert status == 500
    assert json.loads(reply)["errMsg"] == "RuntimeError: host handler bug"
    rows = query(
        host,
        "SELECT status, reason, traceback FROM openim_sync_callbackevent WHERE command = ?",
        command,
    )
    assert len(rows) == 1
    status_, reason, traceback = rows[0]
    assert (status_, reason) == ("failed", "RuntimeError: host handler bug")
    assert "Traceback" in traceback


def test_refused_requests_are_not_stored(host):
    before = query(host, "SELECT count(*) FROM openim_sync_callbackevent")
    body = go_json({"callbackCommand": "callbackAfterUpdateUserInfoCommand", "userID": "evil"})
    status, _, reply = request(
        host, "/openim/callback/guess/callbackAfterUpdateUserInfoCommand", body
    )
    assert status == 401
    assert "secret" in json.loads(reply)["errMsg"]
    assert query(host, "SELECT count(*) FROM openim_sync_callbackevent") == before


def test_nothing_else_is_exempt(host):
    # The host's own pages demand a login (LoginRequiredMiddleware redirects to LOGIN_URL).
    status, headers, _ = request(host, "/", method="GET")
    assert status == 302
    assert headers["Location"].startswith("/accounts/login/")
    # The admin demands a login, and keeps its CSRF protection.
    status, headers, _ = request(host, "/admin/openim_sync/callbackevent/", method="GET")
    assert status == 302 and "/login/?next=/admin/" in headers["Location"]
    status, _, _ = request(
        host,
        "/admin/login/",
        b"username=a&password=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 403
    # A GET on a callback URL is the view's 405, not a login redirect.
    status, headers, _ = request(host, f"/openim/callback/{SECRET}/x", method="GET")
    assert status == 405 and headers["Allow"] == "POST"


def test_system_checks_in_the_host(host):
    def check(settings_module):
        result = subprocess.run(
            [*host["manage"], "check", "--deploy", f"--settings={settings_module}"],
            env=host["env"],
            cwd=host["cwd"],
            capture_output=True,
            text=True,
        )
        return result.stdout + result.stderr

    protected = check("host_settings")
    assert "openim_sync." not in protected
    unprotected = check("unprotected_settings")
    assert "(openim_sync.W001)" in unprotected
    assert "(openim_sync.W002)" in unprotected
