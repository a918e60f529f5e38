"""Rebuilding the mirror from the event log, replays that change nothing, several workers.

The scenario day of tests/test_scenario.py (both servers, out of order, removals and cascades)
is the input: its live mirror is the reference every other way of applying it must reach.
"""

import io
import time

import pytest
from django.core.management import CommandError, call_command
from django.forms.models import model_to_dict
from rest_framework import serializers

from openim_sync.models import CallbackEvent, EventStatus
from openim_sync.writer import MODEL_ORDER
from tests.helpers import post_openim
from tests.test_deferred import worker_process
from tests.test_faults import throwaway_command  # noqa: F401 (a fixture used below)
from tests.test_scenario import EXPECTED, mirror, openim_day, tencent_day

#: Columns a rebuild recreates by definition: new rows get new ids and creation times.
REBUILT = {"id", "created_at", "updated_at"}


def whole_mirror(exclude=()):
    """Every column of every mirror row, keyed by model and natural key."""
    rows = {}
    for model in MODEL_ORDER:
        for obj in model.objects.all():
            data = model_to_dict(obj, fields=[f.name for f in obj._meta.concrete_fields])
            data.update({f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields})
            key = tuple(getattr(obj, name) for name in model.natural_key_fields)
            rows[(model.__name__, key)] = {k: v for k, v in data.items() if k not in exclude}
    return rows


def live_day(client):
    openim_day(client)
    # Tencent's day an hour ago, as test_scenario does (its EventTimes are relative to it).
    tencent_day(client, int(time.time() * 1000) - 3_600_000)
    assert mirror() == EXPECTED


def quiet(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("openim_replay", *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def test_a_rebuild_of_the_day_equals_its_live_mirror(client, db):
    live_day(client)
    live = whole_mirror(exclude=REBUILT)
    events = CallbackEvent.objects.count()

    output = quiet("--rebuild", "--no-input")

    assert f"Replayed {events} event(s)" in output
    assert whole_mirror(exclude=REBUILT) == live
    assert mirror() == EXPECTED


def test_replaying_the_day_twice_changes_nothing_at_all(client, db):
    live_day(client)
    quiet("--all")
    once = whole_mirror()
    quiet("--all")
    # Not one column moves, ``updated_at`` and ``last_event`` included.
    assert whole_mirror() == once
    assert mirror() == EXPECTED


def test_a_rebuild_counts_attempts_like_every_other_path(client, db):
    live_day(client)
    before = dict(CallbackEvent.objects.values_list("pk", "attempts"))
    quiet("--rebuild", "--no-input")
    after = dict(CallbackEvent.objects.values_list("pk", "attempts"))
    assert after == {pk: attempts + 1 for pk, attempts in before.items()}


@pytest.mark.postgres
def test_two_workers_draining_one_backlog_end_in_the_inline_mirror(
    postgres_only, live_server, client, openim_settings
):
    live_day(client)
    inline = whole_mirror(exclude=REBUILT)

    # The same deliveries as a backlog: every event back to 'received', the mirror empty.
    from openim_sync.replay import clear_mirror

    clear_mirror()
    CallbackEvent.objects.update(status=EventStatus.RECEIVED, reason="", processed_at=None)

    workers = [worker_process("--once", "--batch-size", "3") for _ in range(2)]
    results = [worker.communicate(timeout=120) for worker in workers]

    for worker, (_stdout, stderr) in zip(workers, results, strict=True):
        assert worker.returncode == 0, stderr
    assert not CallbackEvent.objects.filter(status=EventStatus.RECEIVED).exists()
    assert whole_mirror(exclude=REBUILT) == inline
    assert mirror() == EXPECTED


class ExplodingSerializer(serializers.Serializer):
    userID = serializers.CharField()

    def validate(self, attrs):
        raise RuntimeError("serializer bug")


@pytest.mark.parametrize("processing", ["inline", "deferred"])
def test_a_serializer_that_raises_ends_failed_with_the_envelope(
    client,
    db,
    openim_settings,
    throwaway_command,  # noqa: F811
    processing,
):
    openim_settings(PROCESSING=processing)
    throwaway_command(
        "openim", "callbackTestExplodingCommand", lambda data, ctx: [], ExplodingSerializer
    )
    body = {"callbackCommand": "callbackTestExplodingCommand", "userID": "u1"}
    response = post_openim(client, "/callbackTestExplodingCommand", body)

    assert response["Content-Type"].startswith("application/json")
    event = CallbackEvent.objects.get()
    if processing == "inline":
        assert response.status_code == 500
        assert response.json()["errCode"] != 0
    else:
        assert response.status_code == 200
        with pytest.raises(CommandError, match="1 event"):
            call_command("openim_worker", "--once", stdout=io.StringIO(), stderr=io.StringIO())
    event.refresh_from_db()
    assert event.status == EventStatus.FAILED
    assert "RuntimeError: serializer bug" in event.reason
    assert "Traceback" in event.traceback
    assert event.attempts == 1

    # A replay does not crash on it: it fails again, counted, and says so in its exit status.
    with pytest.raises(CommandError, match=rf"1 event\(s\) still failed: #{event.pk}\."):
        quiet("--all")
    event.refresh_from_db()
    assert (event.status, event.attempts) == (EventStatus.FAILED, 2)
