"""PROCESSING = "deferred": store, answer at once, apply in a django.tasks worker (django-tasks-db).

On PostgreSQL the worker is a real ``manage.py db_worker`` process against the test database;
the deliveries go over real HTTP to a live server.
"""

import io
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

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


def task_results():
    return list(DBTaskResult.objects.order_by("enqueued_at"))


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
    assert event.status == EventStatus.RECEIVED
    assert not ImUser.objects.exists()
    (result,) = task_results()
    assert result.status == "READY"
    assert result.args_kwargs["args"] == [event.pk]

    # The django-tasks-db worker, in this process: it runs what is queued, then exits.
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", stdout=io.StringIO())

    event.refresh_from_db()
    assert event.status == EventStatus.PROCESSED and event.attempts == 1
    assert ImUser.objects.get(user_id="u1").nickname == "Alice"
    result.refresh_from_db()
    assert result.status == "SUCCESSFUL"


def run_worker():
    """``manage.py db_worker --batch`` as its own process, on this test's database."""
    settings = connection.settings_dict
    url = (
        f"postgres://{settings['USER']}:{settings['PASSWORD']}@{settings['HOST'] or 'localhost'}"
        f":{settings['PORT'] or 5432}/{settings['NAME']}"
    )
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "project.settings"}
    completed = subprocess.run(
        [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay", "--no-reload"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return completed


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
        assert DBTaskResult.objects.filter(status="READY").count() == 2

        worker = run_worker()

    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.status == EventStatus.PROCESSED
    assert ImUser.objects.get(user_id="u1").last_event_id == good.pk
    # The failed task left its event failed, with the reason and the traceback...
    assert bad.status == EventStatus.FAILED
    assert "simulated database failure" in bad.reason
    assert "Traceback" in bad.traceback
    assert not ImUser.objects.filter(user_id="boom").exists()
    results = {r.args_kwargs["args"][0]: r for r in task_results()}
    assert results[good.pk].status == "SUCCESSFUL"
    assert results[bad.pk].status == "FAILED"
    assert results[bad.pk].exception_class_path == "openim_sync.tasks.EventFailed"
    assert "simulated database failure" in results[bad.pk].traceback
    assert "Task id=" in worker.stderr + worker.stdout  # the worker really ran them

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
