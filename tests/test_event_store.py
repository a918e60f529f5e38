"""IGNORED_EVENTS: how much of an ignored delivery is stored (full, summary, count), through real
HTTP on SQLite and PostgreSQL; the counter under parallel clients on a live server (PostgreSQL);
what the rest of the app does with a summary row (replay, the worker, the read API, admin)."""

import base64
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.core.checks import run_checks
from django.core.management import call_command

from openim_sync.models import CallbackEvent, EventStatus, IgnoredEventCount
from openim_sync.signals import event_processed, event_received
from tests.helpers import go_json, post_openim, post_tencent, sample
from tests.test_replay import deliver_failed, deliver_rejected, deliver_user

SINGLE, GROUP = "callbackAfterSendSingleMsgCommand", "callbackAfterSendGroupMsgCommand"
MODES = ("full", "summary", "count")


def message_key(body):
    key = {"sendID": body["sendID"], "recvID": body.get("recvID", ""), "groupID": ""}
    key["groupID"] = body.get("groupID", "")
    return base64.b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def send_message(client, command=SINGLE, **changes):
    """A message callback as OpenIM sends it: path command, ?key=, operationID header."""
    body = {**sample("openim", command), **changes}
    response = post_openim(
        client,
        f"/{command}",
        body,
        operation_id=body["operationID"],
        query={"key": message_key(body)},
    )
    assert response.status_code == 200, response.content
    assert response.json() == {
        "actionCode": 0,
        "errCode": 0,
        "errMsg": "",
        "errDlt": "",
        "nextCode": 0,
    }
    return body


def hour_of(moment):
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def mode(request, openim_settings):
    openim_settings(IGNORED_EVENTS=request.param)
    return request.param


# -- what each mode stores ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["full"], indirect=True)
def test_full_keeps_everything(client, mode):
    body = send_message(client)
    event = CallbackEvent.objects.get()
    assert event.status == EventStatus.IGNORED and event.reason
    assert bytes(event.body) == go_json(body)
    assert event.payload == body
    assert event.headers["Operationid"] == body["operationID"]
    assert event.query == {"key": message_key(body)}
    assert event.url_command == SINGLE
    assert not event.is_summary
    assert not IgnoredEventCount.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["summary"], indirect=True)
def test_summary_keeps_the_row_without_the_delivery(client, mode):
    before = datetime.now(UTC)
    body = send_message(client)
    event = CallbackEvent.objects.get()
    assert (event.protocol, event.command, event.status) == ("openim", SINGLE, "ignored")
    assert event.reason  # why it was ignored
    assert (event.subject_user_id, event.subject_peer_id) == (body["sendID"], body["recvID"])
    assert event.operation_id == body["operationID"]
    assert event.remote_addr == "127.0.0.1"
    assert before <= event.received_at <= event.processed_at <= datetime.now(UTC)
    assert event.attempts == 1
    # What it leaves out:
    assert bytes(event.body) == b"" and event.payload is None
    assert event.headers == {} and event.query == {} and event.url_command == ""
    assert event.is_summary
    assert not IgnoredEventCount.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["summary"], indirect=True)
def test_summary_of_a_group_message_keeps_its_subjects(client, mode):
    body = send_message(client, GROUP)
    event = CallbackEvent.objects.get()
    assert (event.subject_user_id, event.subject_group_id) == (body["sendID"], body["groupID"])


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["count"], indirect=True)
def test_count_stores_no_row_and_counts_per_command_and_hour(client, mode):
    before = datetime.now(UTC)
    for n in range(3):
        send_message(client, serverMsgID=f"m{n}")
    send_message(client, GROUP)
    after = datetime.now(UTC)
    assert not CallbackEvent.objects.exists()
    rows = {(c.protocol, c.command): c for c in IgnoredEventCount.objects.all()}
    assert {key: c.count for key, c in rows.items()} == {
        ("openim", SINGLE): 3,
        ("openim", GROUP): 1,
    }
    single = rows[("openim", SINGLE)]
    assert single.hour in {hour_of(before), hour_of(after)}
    assert before <= single.last_received_at <= after
    assert str(single).startswith(f"openim {SINGLE} {single.hour:%Y-%m-%d %H}:00 UTC: 3")


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["count"], indirect=True)
def test_count_starts_a_new_row_each_hour(client, mode):
    send_message(client)
    # Pretend the first delivery came an hour earlier: the next one starts this hour's row.
    counter = IgnoredEventCount.objects.get()
    IgnoredEventCount.objects.filter(pk=counter.pk).update(hour=counter.hour - timedelta(hours=1))
    send_message(client)
    send_message(client)
    assert sorted(IgnoredEventCount.objects.values_list("count", flat=True)) == [1, 2]


@pytest.mark.django_db
@pytest.mark.parametrize("mode", MODES, indirect=True)
def test_tencent_and_unknown_commands_follow_the_mode(client, mode):
    body = sample("tencent", "Sns.CallbackPrevFriendAdd")
    assert post_tencent(client, body).status_code == 200
    response = post_openim(client, "/callbackAfterSomethingNewCommand", {"userID": "u1"})
    assert response.status_code == 200
    events = {e.command: e for e in CallbackEvent.objects.all()}
    counts = dict(IgnoredEventCount.objects.values_list("command", "count"))
    if mode == "count":
        assert events == {}
        assert counts == {"Sns.CallbackPrevFriendAdd": 1, "callbackAfterSomethingNewCommand": 1}
        return
    assert counts == {}
    assert {e.status for e in events.values()} == {"ignored"}
    assert "Unknown" in events["callbackAfterSomethingNewCommand"].reason
    for event in events.values():
        assert event.is_summary == (mode == "summary")
        assert (event.payload is None) == (mode == "summary")


@pytest.mark.django_db
@pytest.mark.parametrize("mode", MODES, indirect=True)
def test_every_other_outcome_is_stored_in_full_in_every_mode(client, openim_settings, mode):
    stored = [
        deliver_user(client, "u1", "Alice"),  # processed
        deliver_rejected(client),
        deliver_failed(client),
    ]
    openim_settings(PROCESSING="deferred")
    stored.append(deliver_user(client, "u2", "Bob"))  # received, for the worker
    assert [e.status for e in stored] == ["processed", "rejected", "failed", "received"]
    for event in stored:
        event.refresh_from_db()
        assert bytes(event.body), event
        assert event.headers and event.url_command, event
        assert not event.is_summary
    assert stored[0].payload["userID"] == "u1" and stored[3].payload["userID"] == "u2"
    assert not IgnoredEventCount.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["summary", "count"], indirect=True)
def test_deferred_processing_stores_ignored_deliveries_the_same_way(client, openim_settings, mode):
    openim_settings(PROCESSING="deferred")
    send_message(client)
    if mode == "count":
        assert not CallbackEvent.objects.exists()
        assert IgnoredEventCount.objects.get().count == 1
    else:
        assert CallbackEvent.objects.get().is_summary


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["summary", "count"], indirect=True)
def test_signals_still_carry_the_whole_delivery(client, mode, django_capture_on_commit_callbacks):
    calls = []

    def receiver(sender, signal, **kwargs):
        calls.append((signal, kwargs["event"]))

    event_received.connect(receiver, weak=False)
    event_processed.connect(receiver, weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            body = send_message(client)
    finally:
        event_received.disconnect(receiver)
        event_processed.disconnect(receiver)
    assert [signal for signal, _ in calls] == [event_received, event_processed]
    for _, event in calls:
        assert event.payload == body and bytes(event.body) == go_json(body)
        assert (event.pk is None) == (mode == "count")


# -- a summary row in the rest of the app ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["summary"], indirect=True)
def test_replaying_a_summary_leaves_it_ignored(client, mode):
    send_message(client)
    event = CallbackEvent.objects.get()
    call_command("openim_replay", "--all", verbosity=0)
    again = CallbackEvent.objects.get()
    assert (again.status, again.reason) == (EventStatus.IGNORED, event.reason)
    assert again.attempts == 2 and again.is_summary
    call_command("openim_replay", "--rebuild", "--no-input", verbosity=0)
    assert CallbackEvent.objects.get().status == EventStatus.IGNORED


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["summary"], indirect=True)
def test_the_read_api_and_admin_show_a_summary(client, mode):
    send_message(client)
    event = CallbackEvent.objects.get()
    admin = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(admin)
    response = client.get("/openim/api/events/")
    assert response.status_code == 200
    (item,) = response.json()["results"]
    assert (item["id"], item["status"], item["payload"], item["query"]) == (
        event.pk,
        "ignored",
        None,
        {},
    )
    page = client.get(f"/admin/openim_sync/callbackevent/{event.pk}/change/")
    assert page.status_code == 200
    assert event.reason in page.content.decode()


# -- the counter under concurrency (PostgreSQL, live server) -----------------------------------


@pytest.mark.slow
def test_parallel_clients_count_every_delivery(postgres_only, live_server, openim_settings):
    import http.client

    openim_settings(IGNORED_EVENTS="count")
    clients, per_client = 8, 40
    address = urlsplit(live_server.url)
    gate = threading.Barrier(clients)

    def run(index):
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        gate.wait()
        statuses = []
        for n in range(per_client):
            command = SINGLE if n % 4 else GROUP
            body = {**sample("openim", command), "serverMsgID": f"{index}-{n}"}
            connection.request(
                "POST",
                f"/openim/callback/{command}",
                body=go_json(body),
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        connection.close()
        return statuses

    with ThreadPoolExecutor(clients) as pool:
        statuses = [s for result in pool.map(run, range(clients)) for s in result]
    assert statuses == [200] * clients * per_client
    totals = {}
    for command, count in IgnoredEventCount.objects.values_list("command", "count"):
        totals[command] = totals.get(command, 0) + count
    assert totals == {SINGLE: clients * per_client * 3 // 4, GROUP: clients * per_client // 4}
    # One row per command and hour (two if the run crossed an hour).
    assert IgnoredEventCount.objects.count() in (2, 4)
    assert not CallbackEvent.objects.exists()


# -- system checks --------------------------------------------------------------------------------


def errors(openim_settings, **values):
    openim_settings(**values)
    return {m.id: m.msg for m in run_checks() if m.id in ("openim_sync.E008", "openim_sync.E009")}


@pytest.mark.parametrize("value", ["full", "summary", "count"])
def test_the_modes_pass_the_checks(openim_settings, value):
    assert errors(openim_settings, IGNORED_EVENTS=value) == {}


@pytest.mark.parametrize("value", ["none", "FULL", "", None, 1])
def test_a_bad_mode_is_an_error_naming_the_setting_and_the_values(openim_settings, value):
    found = errors(openim_settings, IGNORED_EVENTS=value)
    assert set(found) == {"openim_sync.E008"}
    assert "IGNORED_EVENTS" in found["openim_sync.E008"]
    (message,) = [m for m in run_checks() if m.id == "openim_sync.E008"]
    assert all(f'"{mode}"' in message.hint for mode in MODES)


@pytest.mark.parametrize(
    "value",
    [{}, {"ignored": 2}, {"ignored": 2, "processed": 30, "rejected": 30, "failed": None}],
)
def test_good_retentions_pass_the_checks(openim_settings, value):
    assert errors(openim_settings, EVENT_RETENTION_BY_STATUS=value) == {}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ([("ignored", 2)], "must be a dict"),
        ({"ignore": 2}, "unknown status 'ignore'"),
        ({"ignored": 0}, "positive number of days or None"),
        ({"ignored": -1}, "positive number of days or None"),
        ({"ignored": "2"}, "positive number of days or None"),
        ({"ignored": 2.5}, "positive number of days or None"),
        ({"ignored": True}, "positive number of days or None"),
    ],
)
def test_bad_retentions_are_errors(openim_settings, value, says):
    found = errors(openim_settings, EVENT_RETENTION_BY_STATUS=value)
    assert set(found) == {"openim_sync.E009"}
    assert "EVENT_RETENTION_BY_STATUS" in found["openim_sync.E009"]
    assert says in found["openim_sync.E009"]
