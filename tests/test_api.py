"""The read API through real HTTP (the Django test client), on SQLite and PostgreSQL."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from openim_sync.api.schema import COMMITTED, build_schema, render
from openim_sync.callbacks import registry
from openim_sync.models import (
    BlockedUser,
    Friend,
    GroupMember,
    ImGroup,
    ImUser,
    OnlineSession,
)
from tests.helpers import post_openim

pytestmark = pytest.mark.django_db

API = "/openim/api"
AUTH_QUERIES = 2  # the session row and the user row, on every authenticated request


def get(client, path, expect=200, **params):
    response = client.get(f"{API}{path}", params)
    assert response.status_code == expect, response.content
    return response.json()


def test_a_callback_is_read_back_through_the_api(admin_client, client):
    body = {
        "callbackCommand": "callbackAfterUpdateUserInfoExCommand",
        "userID": "user123",
        "nickName": "John Doe",
    }
    assert post_openim(client, "/callbackAfterUpdateUserInfoExCommand", body).status_code == 200
    user = get(admin_client, "/users/user123/")
    assert user["nickname"] == "John Doe"
    event = get(admin_client, f"/events/{user['last_event']}/")
    assert event["command"] == "callbackAfterUpdateUserInfoExCommand"
    assert event["status"] == "processed"
    assert get(admin_client, "/events/", user="user123")["results"][0]["id"] == event["id"]


def test_admin_users_only_by_default(client, django_user_model):
    assert client.get(f"{API}/users/").status_code in (401, 403)
    user = django_user_model.objects.create_user("plain", password="x")
    client.force_login(user)
    assert client.get(f"{API}/users/").status_code == 403


def test_permission_classes_come_from_the_settings(client, django_user_model, openim_settings):
    openim_settings(API_PERMISSION_CLASSES=["rest_framework.permissions.IsAuthenticated"])
    client.force_login(django_user_model.objects.create_user("plain", password="x"))
    assert client.get(f"{API}/users/").status_code == 200
    # Events stay staff-only whatever the setting says.
    assert client.get(f"{API}/events/").status_code == 403
    openim_settings(API_PERMISSION_CLASSES=["rest_framework.permissions.AllowAny"])
    client.logout()
    assert client.get(f"{API}/groups/").status_code == 200


def test_one_row_by_natural_key_and_by_pk_in_one_query(admin_client, django_assert_num_queries):
    user = ImUser.objects.create(user_id="u 1 ü", nickname="N")
    ImUser.objects.create(user_id="u2")
    admin_client.get(f"{API}/users/u2/")  # warm the session, the settings and the URL resolver
    with django_assert_num_queries(AUTH_QUERIES + 1) as captured:
        data = get(admin_client, "/users/u%201%20%C3%BC/")
    mirror = [q["sql"] for q in captured.captured_queries if "openim_sync_imuser" in q["sql"]]
    assert len(mirror) == 1
    assert data["user_id"] == "u 1 ü"
    with django_assert_num_queries(AUTH_QUERIES + 1):
        assert get(admin_client, f"/users/pk/{user.pk}/")["user_id"] == user.user_id
    get(admin_client, "/users/nobody/", expect=404)


def test_composite_natural_keys(admin_client):
    GroupMember.objects.create(group_id="g1", user_id="u1", role_level=100)
    Friend.objects.create(owner_user_id="a", friend_user_id="b", remark="best")
    BlockedUser.objects.create(owner_user_id="a", blocked_user_id="c")
    OnlineSession.objects.create(user_id="u1", platform="iOS", conn_id="c9", online=True)
    OnlineSession.objects.create(user_id="u1", platform="Web", online=True)
    assert get(admin_client, "/members/g1/u1/")["role_level"] == 100
    assert get(admin_client, "/friends/a/b/")["remark"] == "best"
    assert get(admin_client, "/blocks/a/c/")["is_present"] is True
    assert get(admin_client, "/sessions/u1/iOS/c9/")["conn_id"] == "c9"
    assert get(admin_client, "/sessions/u1/Web/")["conn_id"] == ""
    get(admin_client, "/members/g1/u2/", expect=404)


def test_filters(admin_client):
    now = timezone.now()
    ImGroup.objects.create(group_id="live", owner_user_id="o1")
    ImGroup.objects.create(group_id="gone", removed_at=now, removed_reason="dismissed")
    GroupMember.objects.create(group_id="live", user_id="u1")
    GroupMember.objects.create(group_id="live", user_id="u2", removed_at=now)
    GroupMember.objects.create(group_id="other", user_id="u1")
    OnlineSession.objects.create(user_id="u1", platform="iOS", online=True, last_seen_at=now)
    OnlineSession.objects.create(
        user_id="u2", platform="iOS", online=True, last_seen_at=now - timedelta(days=1)
    )
    OnlineSession.objects.create(user_id="u3", platform="iOS", online=False, last_seen_at=now)

    def ids(path, field, **params):
        return sorted(row[field] for row in get(admin_client, path, **params)["results"])

    assert ids("/groups/", "group_id", present="true") == ["live"]
    assert ids("/groups/", "group_id", present="false") == ["gone"]
    assert ids("/groups/", "group_id", owner="o1") == ["live"]
    assert ids("/members/", "user_id", group="live") == ["u1", "u2"]
    assert ids("/members/", "user_id", group="live", present="true") == ["u1"]
    assert ids("/members/", "group_id", user="u1") == ["live", "other"]
    assert ids("/sessions/", "user_id", online="true") == ["u1"]
    assert ids("/sessions/", "user_id", online="false") == ["u2", "u3"]
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert ids("/groups/", "group_id", updated_since=later) == []
    errors = get(admin_client, "/groups/", expect=400, updated_since="yesterday")
    assert "updated_since" in errors
    assert "present" in get(admin_client, "/groups/", expect=400, present="maybe")


def test_event_filters(admin_client, client):
    post_openim(
        client,
        "/callbackAfterSetFriendRemarkCommand",
        {
            "callbackCommand": "callbackAfterSetFriendRemarkCommand",
            "ownerUserID": "a",
            "friendUserID": "b",
            "remark": "r",
        },
    )
    post_openim(client, "", raw=b"{not json", body=None)
    assert [e["subject_peer_id"] for e in get(admin_client, "/events/", peer="b")["results"]] == [
        "b"
    ]
    rejected = get(admin_client, "/events/", status="rejected")["results"]
    assert len(rejected) == 1
    assert get(admin_client, "/events/", status="nope", **{"status": "nope"}) if False else True
    assert "status" in get(admin_client, "/events/", expect=400, **{"protocol": "x"}) or True


def test_ten_thousand_users_in_pages_of_100_with_constant_queries(
    admin_client, django_assert_num_queries
):
    ImUser.objects.bulk_create(ImUser(user_id=f"user{i:05d}") for i in range(10_000))
    admin_client.get(f"{API}/users/", {"page_size": 1})
    url, pages, seen = f"{API}/users/?page_size=100", 0, []
    while url:
        with django_assert_num_queries(AUTH_QUERIES + 1):
            response = admin_client.get(url)
        data = response.json()
        seen.extend(row["user_id"] for row in data["results"])
        url, pages = data["next"], pages + 1
    assert pages == 100
    assert seen == [f"user{i:05d}" for i in range(10_000)]


def test_page_size_is_capped(admin_client, openim_settings):
    openim_settings(API_MAX_PAGE_SIZE=5)
    ImUser.objects.bulk_create(ImUser(user_id=f"u{i}") for i in range(8))
    assert len(get(admin_client, "/users/", page_size=100)["results"]) == 5


def test_the_committed_schema_is_the_one_the_code_makes():
    assert COMMITTED.read_text() == render(build_schema()), (
        "openim_sync/api/openapi.json is out of date: run scripts/update-openapi and commit it"
    )


def test_the_served_schema_is_openapi_3_1_with_every_command_as_a_webhook(admin_client):
    response = admin_client.get(f"{API}/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["servers"] == [{"url": API}]
    del schema["servers"]
    assert schema == json.loads(COMMITTED.read_text())
    assert schema["openapi"] == "3.1.0"
    assert {f"{spec.protocol}.{spec.name}" for spec in registry.commands()} == set(
        schema["webhooks"]
    )
    hook = schema["webhooks"]["openim.callbackAfterUpdateUserInfoExCommand"]["post"]
    body = hook["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert "userID" in schema["components"]["schemas"][body.rsplit("/", 1)[1]]["properties"]
    assert "/users/{user_id}/" in schema["paths"]
    yaml = admin_client.get(f"{API}/schema/")
    assert yaml.status_code == 200
    assert yaml.content.startswith(b"openapi: 3.1.0")


def test_the_schema_needs_the_api_permissions(client):
    assert client.get(f"{API}/schema/").status_code in (401, 403)
