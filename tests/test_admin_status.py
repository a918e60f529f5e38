"""The sync status page and its JSON (issue 11, point 4): deliveries per minute as a chart drawn
by the server, counts by status, failures and rejections of the last 24 h linked to filtered
lists, the deferred backlog and its age, the newest delivery per protocol, the last reconcile
run; a constant number of queries bounded by time; the view permission on events required."""

import base64
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from openim_sync.admin import status
from openim_sync.models import CallbackEvent, EventStatus, ReconcileRun, RunStatus

pytestmark = pytest.mark.django_db

PAGE = "admin:openim_sync_status"
JSON = "admin:openim_sync_status_json"
USER_INFO = "callbackAfterUpdateUserInfoCommand"
MEMBER_INFO = "callbackAfterSetGroupMemberInfoCommand"


def events(count, *, ago, status=EventStatus.PROCESSED, command=USER_INFO, protocol="openim"):
    """``count`` stored events received ``ago`` (a timedelta) before now."""
    received = timezone.now() - ago
    return CallbackEvent.objects.bulk_create(
        CallbackEvent(
            protocol=protocol,
            command=command,
            status=status,
            reason="" if status == EventStatus.PROCESSED else f"{status} for the test",
            body=b"{}",
            received_at=received,
        )
        for _ in range(count)
    )


@pytest.fixture
def history():
    """A day of deliveries: some fine, some failing, some waiting, one too old to count."""
    created = {
        "recent": events(3, ago=timedelta(minutes=10)),
        "failed": events(1, ago=timedelta(minutes=10), status=EventStatus.FAILED),
        "rejected": events(
            2, ago=timedelta(hours=2), status=EventStatus.REJECTED, command=MEMBER_INFO
        ),
        "old": events(5, ago=timedelta(hours=30), status=EventStatus.FAILED),
        "waiting": events(2, ago=timedelta(minutes=20), status=EventStatus.RECEIVED)
        + events(1, ago=timedelta(minutes=1), status=EventStatus.RECEIVED),
        "tencent": events(
            1, ago=timedelta(minutes=5), protocol="tencent", command="State.StateChange"
        ),
    }
    created["run"] = ReconcileRun.objects.create(
        protocol="openim",
        scope=["users"],
        status=RunStatus.SUCCEEDED,
        counts={"users": {"read": 3}},
    )
    return created


def test_figures(history):
    data = status.figures()
    assert data["last_24h"]["by_status"] == {
        "processed": 4,
        "ignored": 0,
        "received": 3,
        "rejected": 2,
        "failed": 1,
    }
    assert data["last_24h"]["total"] == 10
    assert data["last_hour"]["by_status"] == {
        "processed": 4,
        "ignored": 0,
        "received": 3,
        "rejected": 0,
        "failed": 1,
    }

    # One bar per minute for 3 hours, the newest last.
    per_minute = data["per_minute"]
    assert len(per_minute) == 180
    assert per_minute[-1]["minute"] == data["generated_at"].replace(second=0, microsecond=0)
    ten_ago = history["recent"][0].received_at.replace(second=0, microsecond=0)
    (bar,) = [entry for entry in per_minute if entry["minute"] == ten_ago]
    assert bar["total"] == 4 and bar["by_status"]["failed"] == 1
    assert sum(entry["total"] for entry in per_minute) == 10

    # Failures and rejections of the last 24 h, by command, most first, linked.
    assert [(f["status"], f["command"], f["count"]) for f in data["failures_24h"]] == [
        ("rejected", MEMBER_INFO, 2),
        ("failed", USER_INFO, 1),
    ]
    assert "status__exact=rejected" in data["failures_24h"][0]["url"]
    assert "received_at__gte=" in data["failures_24h"][0]["url"]
    assert [e["id"] for e in data["recent_failures"]] == sorted(
        [e.pk for e in history["failed"] + history["rejected"]], reverse=True
    )

    # The deferred backlog: every event still received, and how old the oldest is.
    backlog = data["backlog"]
    assert backlog["count"] == 3
    assert 19 * 60 <= backlog["oldest_age_seconds"] <= 21 * 60

    newest = data["newest_per_protocol"]
    assert newest["openim"]["id"] == max(e.pk for e in history["waiting"])
    assert newest["tencent"]["id"] == history["tencent"][0].pk
    assert data["last_reconcile_run"]["id"] == history["run"].pk

    # Failures in the last hour and a backlog older than 10 minutes: a problem.
    health = data["health"]
    assert health["status"] == "problem"
    assert any("failed in the last hour" in text for text in health["problems"])
    assert any("is openim_worker running?" in text for text in health["problems"])


def test_healthy_warning_and_problem():
    assert status.figures()["health"]["status"] == "warning"  # nothing arrives
    assert "No delivery in the last hour" in status.figures()["health"]["warnings"][0]
    events(5, ago=timedelta(minutes=3))
    data = status.figures()
    assert data["health"] == {"status": "healthy", "problems": [], "warnings": []}
    events(1, ago=timedelta(minutes=2), status=EventStatus.REJECTED)
    assert status.figures()["health"]["status"] == "warning"
    ReconcileRun.objects.create(protocol="openim", status=RunStatus.INTERRUPTED)
    assert "The last reconcile run" in status.figures()["health"]["warnings"][-1]
    events(1, ago=timedelta(minutes=2), status=EventStatus.FAILED)
    assert status.figures()["health"]["status"] == "problem"


def test_five_queries_whatever_the_table_holds(history, django_assert_num_queries):
    with django_assert_num_queries(5):
        status.figures()
    events(200, ago=timedelta(minutes=30))
    events(200, ago=timedelta(hours=5), status=EventStatus.REJECTED)
    with CaptureQueriesContext(connection) as queries:
        status.figures()
    assert len(queries) == 5
    # Aggregated in the database and bounded: by received_at, or the backlog by status.
    event_queries = [q["sql"] for q in queries if "openim_sync_callbackevent" in q["sql"]]
    assert len(event_queries) == 4
    for sql in event_queries:
        assert '"received_at" >=' in sql or '"status" = ' in sql, sql
    assert sum("GROUP BY" in sql for sql in event_queries) == 2


def test_the_page(admin_client, history, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):  # the session, the user, the five figures
        response = admin_client.get(reverse(PAGE))
    assert response.status_code == 200
    page = response.text
    assert "<h2>Problem</h2>" in page
    assert "Deliveries per minute, last 3 hours" in page
    svg = re.search(r"<svg class=\"oims-chart\".*?</svg>", page, re.DOTALL)[0]
    assert "<script" not in svg and "http" not in svg.replace("http://www.w3.org/2000/svg", "")
    bars = re.findall(r'<g class="oims-bar"><title>(.*?)</title>', svg)
    assert "4 deliveries (3 processed, 1 failed)" in " ".join(bars)
    assert len(bars) == 5  # minutes with deliveries: -2 h, -20, -10, -5 and -1 min
    # Failures link to the event list filtered by status, command and time.
    failures = re.search(r'id="oims-failures".*?</section>', page, re.DOTALL)[0]
    link = re.search(r'<a href="([^"]*status__exact=rejected[^"]*)">2</a>', failures)[1]
    listed = admin_client.get(link.replace("&amp;", "&")).context["cl"].result_list
    assert sorted(e.pk for e in listed) == sorted(e.pk for e in history["rejected"])
    assert "3 events</a> stored as received" in page
    assert f"Run #{history['run'].pk}</a>" in page


def test_the_page_without_any_event(admin_client):
    page = admin_client.get(reverse(PAGE)).text
    assert "No reconcile run yet." in page and "none in the last 24 h" in page
    assert "None: no event waits to be processed." in page


def test_linked_from_the_app_index_and_the_event_list(admin_client):
    url = reverse(PAGE)
    app_index = admin_client.get(reverse("admin:app_list", args=["openim_sync"])).text
    assert f'href="{url}"' in app_index and f'href="{reverse(JSON)}"' in app_index
    events_page = admin_client.get(reverse("admin:openim_sync_callbackevent_changelist")).text
    assert f'href="{url}"' in events_page


def test_json(admin_client, history):
    response = admin_client.get(reverse(JSON))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    data = response.json()
    assert data["health"]["status"] == "problem"
    assert data["last_24h"]["by_status"]["rejected"] == 2
    assert data["backlog"]["count"] == 3
    assert len(data["per_minute"]) == 180
    assert data["newest_per_protocol"]["tencent"]["id"] == history["tencent"][0].pk
    assert data["last_reconcile_run"]["status"] == "succeeded"


def basic(username, password):
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def test_json_for_a_monitoring_system(client, history):
    monitor = User.objects.create_user("monitor", password="s3cret", is_staff=True)
    monitor.user_permissions.add(Permission.objects.get(codename="view_callbackevent"))
    response = client.get(reverse(JSON), **basic("monitor", "s3cret"))
    assert response.status_code == 200 and response.json()["backlog"]["count"] == 3
    response = client.get(reverse(JSON), **basic("monitor", "wrong"))
    assert response.status_code == 401 and "Basic" in response["WWW-Authenticate"]
    # Basic credentials open the JSON only: no session is created.
    assert client.get(reverse(PAGE)).status_code == 302
    # Not staff: refused even with the permission.
    User.objects.filter(pk=monitor.pk).update(is_staff=False)
    assert client.get(reverse(JSON), **basic("monitor", "s3cret")).status_code == 403


def test_anonymous_users_are_sent_to_the_login(client):
    for name in (PAGE, JSON):
        response = client.get(reverse(name))
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_without_the_view_permission_get_403(client, history):
    staff = User.objects.create_user("ops", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_imuser"))
    client.force_login(staff)
    assert client.get(reverse(PAGE)).status_code == 403
    assert client.get(reverse(JSON)).status_code == 403
    assert client.get(reverse(JSON), **basic("ops", "pw")).status_code == 403
    app_index = client.get(reverse("admin:app_list", args=["openim_sync"])).text
    assert reverse(PAGE) not in app_index

    staff.user_permissions.add(Permission.objects.get(codename="view_callbackevent"))
    client.force_login(User.objects.get(pk=staff.pk))
    assert client.get(reverse(PAGE)).status_code == 200
    assert client.get(reverse(JSON)).status_code == 200
