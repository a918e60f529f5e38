"""The admin in a real browser (issue 11, "Tested how"): Playwright driving Debian's chromium
against a live server, on SQLite and PostgreSQL.

It logs in, loads every admin page of the app at 1280x800 and 1920x1080 and saves a screenshot
of each into tests/screenshots/ (git-ignored: for a person to look at), checks that the event
list's status and reason columns are inside the viewport and that no detail page shows a field
twice, searches events by a user id, follows every cross-link (Tencent group ids included) and
replays an event from its page. Skipped, saying why, when Playwright or chromium is missing
(.ci/setup.d/chromium.sh installs chromium; Playwright's own browser download is not used).
"""

import os
import re
import shutil
from collections import Counter
from datetime import timedelta
from io import StringIO
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.db.models import Q

from openim_sync.models import (
    BlockedUser,
    CallbackEvent,
    EventStatus,
    Friend,
    GroupMember,
    ImGroup,
    ImUser,
    OnlineSession,
    ReconcileRun,
)
from tests.helpers import SDKAPPID
from tests.test_admin_browse import TENCENT_GROUP, admin_url, fill
from tests.test_admin_status import events
from tests.test_replay import deliver_rejected, deliver_user

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(
        sync_playwright is None, reason="Playwright is not installed (pip install playwright)"
    ),
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no chromium on PATH: install Debian's chromium (.ci/setup.d/chromium.sh)",
    ),
]

SCREENSHOTS = Path(__file__).parent / "screenshots"
SIZES = {"1280x800": (1280, 800), "1920x1080": (1920, 1080)}
PASSWORD = "admin-browser-test"


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API runs an event loop in this thread; Django refuses ORM calls while
    # one runs unless told that this is safe (it is: the loop only talks to the browser).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )
            yield browser
            browser.close()


class Site:
    """The live server with the admin's data, and logged-in browser pages on it."""

    def __init__(self, live_server, browser):
        self.url = live_server.url
        self.browser = browser

    def page(self, size="1280x800"):
        width, height = SIZES[size]
        context = self.browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(self.url + "/admin/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(re.compile(r"/admin/$"))
        page.size = size
        return page

    def go(self, page, path):
        response = page.goto(self.url + path)
        assert response.ok, f"{path}: HTTP {response.status}"
        assert "Server Error" not in page.title()
        return response


@pytest.fixture
def site(transactional_db, live_server, browser, client, django_user_model):
    django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    # Both servers' samples over HTTP, exactly as the servers send them...
    call_command("openim_send_samples", url=f"{live_server.url}/openim/callback", stdout=StringIO())
    call_command(
        "openim_send_samples",
        protocol="tencent",
        url=f"{live_server.url}/openim/tencent",
        sdkappid=SDKAPPID,
        stdout=StringIO(),
    )
    # ...the README's deliveries, a Tencent group with an id to encode, a reconcile run...
    fill(client)
    # ...and three hours of history for the chart.
    for minutes in range(5, 180, 7):
        events(1 + minutes % 5, ago=timedelta(minutes=minutes))
        if minutes % 3 == 0:
            events(1, ago=timedelta(minutes=minutes), status=EventStatus.REJECTED)
    events(2, ago=timedelta(minutes=12), status=EventStatus.FAILED)
    return Site(live_server, browser)


def screenshot(page, name):
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{page.size}-{name}.png", full_page=True)


def detail_objects():
    """One object per model, each with something to show."""
    return {
        CallbackEvent: CallbackEvent.objects.get(
            command="Group.CallbackAfterCreateGroup", subject_group_id=TENCENT_GROUP
        ),
        ImUser: ImUser.objects.get(user_id="user_alice"),
        ImGroup: ImGroup.objects.get(group_id=TENCENT_GROUP),
        GroupMember: GroupMember.objects.get(group_id=TENCENT_GROUP, user_id="user_bob"),
        Friend: Friend.objects.get(owner_user_id="user_alice", friend_user_id="user_carol"),
        BlockedUser: BlockedUser.objects.get(owner_user_id="user_bob"),
        OnlineSession: OnlineSession.objects.filter(user_id="user_alice").first(),
        ReconcileRun: ReconcileRun.objects.get(),
    }


def inside(page, selector):
    """The bounding box of the first element matching ``selector`` lies in the viewport."""
    box = page.locator(selector).first.bounding_box()
    width, height = SIZES[page.size]
    assert box is not None, selector
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, (page.size, selector, box)
    assert box["y"] >= 0 and box["y"] + box["height"] <= height, (page.size, selector, box)


def field_link(page, label):
    """The link shown by the detail page's field labelled ``label``."""
    label = page.locator("label", has_text=re.compile(rf"^{re.escape(label)}:?$"))
    box = page.locator("div.flex-container:not(.form-multiline)", has=label)
    return box.locator(".readonly a").first


def shown_ids(page):
    """The event ids of a change list page (``#123`` in the first column)."""
    texts = page.locator("#result_list tbody .field-event strong").all_inner_texts()
    return [int(text.lstrip("#")) for text in texts]


def test_every_page_at_both_sizes(site):
    objects = detail_objects()
    pages = [
        ("app-index", "/admin/openim_sync/"),
        ("status", "/admin/openim_sync/callbackevent/status/"),
    ]
    for model, obj in objects.items():
        name = model._meta.model_name
        pages.append((f"{name}-list", admin_url(model, "changelist")))
        pages.append((f"{name}-detail", admin_url(model, "change", obj.pk)))
    pages.append(("groupmember-list-all", admin_url(GroupMember, "changelist") + "?state=all"))

    for size in SIZES:
        page = site.page(size)
        for name, path in pages:
            site.go(page, path)
            if name.endswith("-detail"):
                labels = [
                    text.strip().rstrip(":")
                    for text in page.locator("#content-main fieldset label").all_text_contents()
                ]
                assert labels, name
                twice = [label for label, n in Counter(labels).items() if n > 1]
                assert twice == [], (size, name, twice)
            if name == "callbackevent-list":
                for column in ("status_display", "reason_short"):
                    inside(page, f"#result_list thead th.column-{column}")
                    inside(page, f"#result_list tbody tr:first-child td.field-{column}")
                # A shortened reason is readable: more than a letter per line.
                reason = page.locator("#result_list .oims-reason").first.bounding_box()
                assert reason["width"] > 100, reason
            if name == "status":
                assert page.locator("svg.oims-chart g.oims-bar").count() > 20
                assert page.locator("#oims-verdict h2").inner_text() == "Problem"
            screenshot(page, name)
        page.context.close()


def test_search_and_every_cross_link(site):
    page = site.page()

    # Search the event list by a user id: exactly the events about that user.
    site.go(page, admin_url(CallbackEvent, "changelist"))
    page.fill("#searchbar", "user123")
    page.locator("#changelist-search input[type=submit]").click()
    page.wait_for_url(re.compile(r"q=user123"))
    about = Q(subject_user_id="user123") | Q(subject_peer_id="user123")
    expected = sorted(CallbackEvent.objects.filter(about).values_list("pk", flat=True))
    assert expected and sorted(shown_ids(page)) == expected
    screenshot(page, "search-user123")

    # A user → their groups, friends, blocks, sessions and events.
    alice = ImUser.objects.get(user_id="user_alice")
    user_page = admin_url(ImUser, "change", alice.pk)
    present = {"removed_at__isnull": True}
    links = [
        # (link text's noun, the list's model, the column shown, the values expected there)
        (
            "membership",
            GroupMember,
            "td.field-group_link a",
            GroupMember.objects.filter(user_id="user_alice", **present).values_list("group_id"),
        ),
        (
            "friend",
            Friend,
            "td.field-friend_link a",
            Friend.objects.filter(owner_user_id="user_alice", **present).values_list(
                "friend_user_id"
            ),
        ),
        (
            "blocked",
            BlockedUser,
            "td.field-blocked_link a",
            BlockedUser.objects.filter(owner_user_id="user_alice", **present).values_list(
                "blocked_user_id"
            ),
        ),
        (
            "session",
            OnlineSession,
            "td.field-platform",
            OnlineSession.objects.filter(user_id="user_alice").values_list("platform"),
        ),
    ]
    for noun, model, cells, rows in links:
        values = {value for (value,) in rows}
        assert values, noun
        plural = "" if len(values) == 1 or noun == "blocked" else "s"
        site.go(page, user_page)
        page.locator("table.oims-related a", has_text=f"{len(values)} {noun}{plural}").click()
        page.wait_for_load_state()
        assert f"/{model._meta.model_name}/?" in page.url
        shown = {
            text.strip() for text in page.locator(f"#result_list tbody {cells}").all_inner_texts()
        }
        assert shown == values, (noun, shown)
    site.go(page, user_page)
    page.locator("table.oims-related a", has_text="events").click()
    page.wait_for_url(re.compile(r"q=user_alice"))
    about = (
        Q(subject_user_id="user_alice")
        | Q(subject_peer_id="user_alice")
        | Q(subject_group_id="user_alice")
    )
    assert sorted(shown_ids(page)) == sorted(
        CallbackEvent.objects.filter(about).values_list("pk", flat=True)
    )

    # A group → its members, from the group list: the Tencent id is URL-encoded.
    site.go(page, admin_url(ImGroup, "changelist"))
    row = page.locator("#result_list tbody tr", has_text=TENCENT_GROUP)
    row.locator("td.field-members_link a").click()
    page.wait_for_load_state()
    parts = urlsplit(page.url)
    assert parts.fragment == "" and "group_id=%40TGS%23_a1b2" in parts.query
    assert unquote(parts.query).endswith(f"group_id={TENCENT_GROUP}")
    groups = page.locator("#result_list tbody td.field-group_link a").all_inner_texts()
    users = page.locator("#result_list tbody td.field-user_link a").all_inner_texts()
    assert set(groups) == {TENCENT_GROUP} and set(users) == {"user_alice", "user_bob"}
    screenshot(page, "group-members")

    # A member → its group and its user (and the group page back to the member).
    member = GroupMember.objects.get(group_id=TENCENT_GROUP, user_id="user_bob")
    site.go(page, admin_url(GroupMember, "change", member.pk))
    field_link(page, "Group").click()
    page.wait_for_url(re.compile(r"/imgroup/\d+/change/"))
    assert "Trail Runners" in page.title()
    page.locator("div.flex-container", has=page.locator("label", has_text="Member list")).locator(
        "a", has_text="membership"
    ).last.click()
    page.wait_for_url(re.compile(r"/groupmember/\d+/change/"))
    assert "user_bob in @TGS#_a1b2" in page.title()
    field_link(page, "User").click()
    page.wait_for_url(re.compile(r"/imuser/\d+/change/"))
    assert page.title().startswith("Bob |")

    # An event → the rows it changed.
    event = CallbackEvent.objects.get(
        command="Group.CallbackAfterCreateGroup", subject_group_id=TENCENT_GROUP
    )
    event_page = admin_url(CallbackEvent, "change", event.pk)
    site.go(page, event_page)
    rows = page.locator("table.oims-changed tbody a")
    targets = [
        (rows.nth(i).inner_text(), rows.nth(i).get_attribute("href")) for i in range(rows.count())
    ]
    expected = {
        admin_url(ImGroup, "change", ImGroup.objects.get(group_id=TENCENT_GROUP).pk),
        *(
            admin_url(GroupMember, "change", m.pk)
            for m in GroupMember.objects.filter(group_id=TENCENT_GROUP)
        ),
    }
    assert {href for _, href in targets} == expected
    for text, href in targets:
        site.go(page, event_page)
        page.locator(f'table.oims-changed a[href="{href}"]').click()
        page.wait_for_url(re.compile(re.escape(href) + "$"))
        assert page.locator("#content h2, #content h1").first.is_visible(), text
    # And back: the group's page links the event that last changed it.
    field_link(page, "Last event").click()
    page.wait_for_url(re.compile(re.escape(event_page) + "$"))

    # A row last changed by a reconcile run → the run.
    tencent = ImUser.objects.get(user_id="id1")
    site.go(page, admin_url(ImUser, "change", tencent.pk))
    field_link(page, "Last reconcile run").click()
    page.wait_for_url(re.compile(r"/reconcilerun/\d+/change/"))
    assert page.locator("table.oims-counts").is_visible()

    # The status page → the failed events of the last 24 h.
    site.go(page, "/admin/openim_sync/callbackevent/status/")
    page.locator("#oims-counts a").nth(4).click()  # failed, last 24 h
    page.wait_for_url(re.compile(r"status__exact=failed"))
    failed = CallbackEvent.objects.filter(status=EventStatus.FAILED).values_list("pk", flat=True)
    assert sorted(shown_ids(page)) == sorted(failed)
    page.context.close()


def test_replay_from_the_event_page(site, client):
    # An event that failed (its row never written): the replay applies it.
    event = deliver_user(client, "boom", "Replayed")
    CallbackEvent.objects.filter(pk=event.pk).update(
        status=EventStatus.FAILED, reason="OperationalError: simulated"
    )
    ImUser.objects.filter(user_id="boom").delete()
    rejected = deliver_rejected(client)

    page = site.page()
    site.go(page, admin_url(CallbackEvent, "change", event.pk))
    page.click("#oims-replay")
    page.wait_for_load_state()
    assert "Replay 1 event through the pipeline" in page.inner_text("#content")
    screenshot(page, "replay-confirmation")
    page.locator("input[type=submit][value^='Yes, replay']").click()
    page.wait_for_url(re.compile(re.escape(admin_url(CallbackEvent, "change", event.pk)) + "$"))
    assert "1 event(s) replayed and processed" in page.inner_text(".messagelist .success")
    assert page.inner_text(".field-status_display .oims-status") == "Processed"
    screenshot(page, "replay-done")
    assert ImUser.objects.get(user_id="boom").nickname == "Replayed"
    entry = LogEntry.objects.get(object_id=str(event.pk))
    assert entry.get_change_message() == "Replayed from admin: failed → processed."

    # A rejected event: warned about, skipped unless the box is ticked.
    site.go(page, admin_url(CallbackEvent, "change", rejected.pk))
    page.click("#oims-replay")
    page.wait_for_load_state()
    assert page.locator("#oims-rejected-warning").is_visible()
    assert not page.locator("#oims-include-rejected").is_checked()
    screenshot(page, "replay-rejected-confirmation")
    page.locator("input[type=submit][value^='Yes, replay']").click()
    page.wait_for_url(re.compile(re.escape(admin_url(CallbackEvent, "change", rejected.pk)) + "$"))
    assert "1 rejected event(s) skipped" in page.inner_text(".messagelist .info")
    rejected.refresh_from_db()
    assert rejected.attempts == 1
    page.context.close()


def test_screenshots_are_git_ignored():
    ignored = (Path(__file__).parent.parent / ".gitignore").read_text().splitlines()
    assert "tests/screenshots/" in ignored
    assert os.path.relpath(SCREENSHOTS, Path(__file__).parent.parent) == "tests/screenshots"
