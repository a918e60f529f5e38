"""PROCESSING = "deferred": store, answer at once; ``manage.py openim_worker`` applies.

On PostgreSQL the workers are real ``manage.py openim_worker`` processes against the test
database; the deliveries go over real HTTP to a live server.
"""

import io
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from openim_sync.conf import app_settings
from openim_sync.models import CallbackEvent, EventStatus, ImUser
from tests.helpers import OPENIM_CONTENT_TYPE, go_json
from tests.test_replay import failing_writes, user_info

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "callbackAfterUpdateUserInfoExCommand"


def test_inline_is_the_default():
    assert app_settings.PROCESSING == "inline"


def post(base_url, body, command=COMMAND):
    request = urllib.request.Request(
        f"{base_url}/openim/callback/{command}",
        data=go_json(body),
        headers={"Content-Type": OPENIM_CONTENT_TYPE, "operationID": "op-1"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


@pytest.fixture
def deferred(openim_settings):
    openim_settings(PROCESSING="deferred")


def test_deferred_stores_answers_and_a_worker_applies(transactional_db, client, deferred):
    response = client.generic(
        "POST",
        f"/openim/callback/{COMMAND}",
        go_json(user_info("u1", "Alice")),
        content_type=OPENIM_CONTENT_TYPE,
    )
    assert response.status_code == 200
    assert response.json()["errCode"] == 0
    event = CallbackEvent.objects.get()
    assert (event.status, event.attempts) == (EventStatus.RECEIVED, 0)
    assert event.subject_user_id == "u1"
    assert not ImUser.objects.exists()

    out = io.StringIO()
    call_command("openim_worker", "--once", stdout=out)

    event.refresh_from_db()
    assert event.status == EventStatus.PROCESSED and event.attempts == 1
    assert ImUser.objects.get(user_id="u1").nickname == "Alice"
    assert "1 event(s) applied (0 failed)" in out.getvalue()


def test_receipt_is_one_insert_and_the_worker_validates(transactional_db, client, deferred):
    body = go_json({"callbackCommand": COMMAND, "userID": ["not", "a", "string"]})
    with CaptureQueriesContext(connection) as queries:
        response = client.generic(
            "POST", f"/openim/callback/{COMMAND}", body, content_type=OPENIM_CONTENT_TYPE
        )
    assert response.status_code == 200
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["INSERT"]
    event = CallbackEvent.objects.get()
    assert (event.status, event.attempts) == (EventStatus.RECEIVED, 0)

    call_command("openim_worker", "--once", stdout=io.StringIO())
    event.refresh_from_db()
    assert (event.status, event.attempts) == (EventStatus.REJECTED, 1)
    assert event.reason.startswith("userID: ")
    # Malformed JSON or an unknown command needs no worker: final at once.
    response = client.generic(
        "POST", f"/openim/callback/{COMMAND}", b"{", content_type=OPENIM_CONTENT_TYPE
    )
    assert response.status_code == 400
    assert CallbackEvent.objects.latest("pk").status == EventStatus.REJECTED


def worker_process(*args):
    """``manage.py openim_worker`` as its own process, on this test's database."""
    settings = connection.settings_dict
    url = (
        f"postgres://{settings['USER']}:{settings['PASSWORD']}@{settings['HOST'] or 'localhost'}"
        f":{settings['PORT'] or 5432}/{settings['NAME']}"
    )
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "project.settings"}
    return subprocess.Popen(
        [sys.executable, "manage.py", "openim_worker", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.postgres
def test_real_worker_process_on_postgresql(postgres_only, live_server, deferred, admin_client):
    # Two deliveries over HTTP: both answered at once, before any worker runs.
    status, reply = post(live_server.url, user_info("u1", "Alice"))
    assert (status, reply["errCode"]) == (200, 0)
    with failing_writes("openim_sync_imuser", "user_id", "boom"):
        status, reply = post(live_server.url, user_info("boom", "Broken"))
        assert (status, reply["errCode"]) == (200, 0)
        good, bad = CallbackEvent.objects.order_by("pk")
        assert good.status == bad.status == EventStatus.RECEIVED

        worker = worker_process("--once")
        stdout, stderr = worker.communicate(timeout=120)

    # One batch held both; the failing write failed its event alone.
    assert worker.returncode == 1, stderr
    assert "1 event(s) failed" in stderr
    assert "2 event(s) applied (1 failed)" in stdout
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.status == EventStatus.PROCESSED
    assert ImUser.objects.get(user_id="u1").last_event_id == good.pk
    assert bad.status == EventStatus.FAILED
    assert "simulated database failure" in bad.reason
    assert "Traceback" in bad.traceback
    assert not ImUser.objects.filter(user_id="boom").exists()

    # ...visible in admin...
    changelist = reverse("admin:openim_sync_callbackevent_changelist")
    response = admin_client.get(changelist, {"status__exact": "failed"})
    assert f"/{bad.pk}/change/" in response.text
    assert f"/{good.pk}/change/" not in response.text

    # ...and replayable once the cause is gone.
    out = io.StringIO()
    call_command("openim_replay", stdout=out, stderr=io.StringIO())
    assert "1 processed" in out.getvalue()
    bad.refresh_from_db()
    assert bad.status == EventStatus.PROCESSED
    assert ImUser.objects.get(user_id="boom").nickname == "Broken"


@pytest.mark.postgres
def test_sigterm_finishes_the_batch_then_stops(postgres_only, live_server, deferred):
    worker = worker_process("--poll", "0.05")
    try:
        status, _ = post(live_server.url, user_info("u1", "Alice"))
        assert status == 200
        deadline = time.monotonic() + 60
        while CallbackEvent.objects.filter(status=EventStatus.RECEIVED).exists():
            assert time.monotonic() < deadline, "the worker did not pick the event up"
            time.sleep(0.05)
    finally:
        worker.terminate()
        stdout, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    assert "Stopping after the current batch." in stdout
    assert ImUser.objects.get(user_id="u1").nickname == "Alice"
