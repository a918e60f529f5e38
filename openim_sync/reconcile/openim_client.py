"""A small client for OpenIM Server's REST API (v3.0 and later), as reconcile needs it.

Every call is a POST of JSON with an ``operationID`` header (a fresh UUID) and the admin
``token`` header; replies are ``{errCode, errMsg, errDlt, data}`` with HTTP 200, and Go's nil
lists arrive as ``null``. The admin token comes from ``/auth/get_admin_token`` (v3.8.1+) or,
on older servers, ``/auth/user_token`` with platform 10; it is cached for under four minutes
(OpenIM's main branch supersedes an admin token five minutes after a newer one is issued) and
fetched again once when a call answers 1501-1507.
"""

import threading
import time
import uuid

from .http import (
    DEFAULT_TIMEOUT,
    RateLimiter,
    Reply,
    RestClient,
    RestError,
    Retry,
    Transport,
    http_failure,
    json_body,
    with_fresh_credential,
)

ADMIN_PLATFORM_ID = 10
TOKEN_ERRORS = range(1501, 1508)
TOKEN_CACHE_SECONDS = 240
CONFIG_ERRORS = {1002: "no permission"}
TRANSIENT_ERRORS = {500, 90002, 90004, 429}
NOT_FOUND = {1004, 1101, 1201, 1203}
DISMISSED = 1204


class OpenIMClient(RestClient):
    def __init__(self, base_url, admin_user_id, secret, *, timeout=DEFAULT_TIMEOUT, max_rps=None):
        self.admin_user_id, self._secret = admin_user_id, secret
        self.transport = Transport(base_url, timeout=timeout, limiter=RateLimiter(total=max_rps))
        self._token, self._token_until = None, 0.0
        self._lock = threading.Lock()

    # -- the call -------------------------------------------------------------------------------

    def call(self, endpoint, body):
        """POST ``body`` to ``endpoint``; the reply's ``data`` (``{}`` when absent) in a Reply."""
        return with_fresh_credential(
            self.token, lambda token: self._post(endpoint, body, token), TOKEN_ERRORS
        )

    def _post(self, endpoint, body, token=None):
        headers = {"operationID": f"openim-sync-{uuid.uuid4().hex}"}
        if token:
            headers["token"] = token
        return self.transport.post(
            endpoint, body, lambda response: self._unwrap(endpoint, response), headers=headers
        )

    def _unwrap(self, endpoint, response):
        if response.status_code != 200:
            failure = http_failure(endpoint, response)
            raise failure
        reply = json_body(endpoint, response)
        if not isinstance(reply, dict):
            raise RestError(endpoint, "json", "the reply is not an OpenIM envelope", kind="config")
        code = reply.get("errCode") or 0
        if code == 0:
            data = reply.get("data")
            return {} if data is None else data
        message = reply.get("errMsg") or reply.get("errDlt") or "error"
        if code in TRANSIENT_ERRORS:
            raise Retry(RestError(endpoint, code, message, kind="transient"))
        kind = "data" if code in NOT_FOUND or code == DISMISSED else "config"
        if code in TOKEN_ERRORS or code in CONFIG_ERRORS or code == 1001:
            kind = "config"
        raise RestError(endpoint, code, message, kind=kind)

    # -- the admin token ------------------------------------------------------------------------

    def token(self, refresh=False):
        with self._lock:
            if refresh or self._token is None or time.monotonic() >= self._token_until:
                self._token = self._fetch_token()
                self._token_until = time.monotonic() + TOKEN_CACHE_SECONDS
            return self._token

    def _fetch_token(self):
        body = {"secret": self._secret, "userID": self.admin_user_id}
        try:
            data = self._post("/auth/get_admin_token", body).data
        except RestError as exc:
            # Before v3.8.1 there is no such route: gin's 404 (v3.7 and older), or, since v3.8.0
            # checks tokens before routing, 1001 "header must have token".
            if exc.code not in (404, 1001):
                raise
            # A user token on the admin platform.
            body["platformID"] = ADMIN_PLATFORM_ID
            data = self._post("/auth/user_token", body).data
        token = data.get("token") if isinstance(data, dict) else None
        if not token:
            raise RestError(
                "/auth/get_admin_token", "token", "no token in the reply", kind="config"
            )
        return token

    # -- users ----------------------------------------------------------------------------------

    def all_user_ids(self, page_size):
        """Pages of every user id (admin and robot accounts included): ``(Reply, ids)``."""
        for reply in self._pages("/user/get_all_users_uid", {}, page_size, "userIDs"):
            yield reply, list(reply.data.get("userIDs") or [])

    def users_info(self, user_ids):
        reply = self.call("/user/get_users_info", {"userIDs": list(user_ids)})
        return reply, list(reply.data.get("usersInfo") or [])

    def users_status(self, user_ids):
        """Online platforms per user: ``(Reply, {user_id: [platform_id, ...]})``.

        ``/user/get_users_status`` (v3.8+: a cache, no tokens) when the server has it, else the
        gateway fan-out ``/user/get_users_online_status``.
        """
        try:
            reply = self.call(
                "/user/get_users_status", {"userID": self.admin_user_id, "userIDs": list(user_ids)}
            )
            statuses = reply.data.get("statusList") or []
            return reply, {
                s["userID"]: list(s.get("platformIDs") or []) if s.get("status") else []
                for s in statuses
            }
        except RestError as exc:
            if exc.code != 404:
                raise
        reply = self.call("/user/get_users_online_status", {"userIDs": list(user_ids)})
        result = {}
        for status in reply.data or []:
            online = status.get("status") and status.get("detailPlatformStatus")
            result[status["userID"]] = [d["platformID"] for d in online or []]
        return reply, result

    # -- groups ---------------------------------------------------------------------------------

    def groups(self, page_size):
        """Pages of the groups that are not dismissed: ``(Reply, [GroupInfo])``."""
        for reply in self._pages("/group/get_groups", {}, page_size, "groups"):
            yield (
                reply,
                [g["groupInfo"] for g in reply.data.get("groups") or [] if g.get("groupInfo")],
            )

    def groups_info(self, group_ids):
        reply = self.call("/group/get_groups_info", {"groupIDs": list(group_ids)})
        return reply, list(reply.data.get("groupInfos") or [])

    def group_members(self, group_id, page_size):
        """Every member of ``group_id`` (several pages), with the Reply of the first page."""
        return self._all(
            "/group/get_group_member_list", {"groupID": group_id}, page_size, "members"
        )

    def incremental_members(self, group_id, version_id, version):
        body = {"groupID": group_id, "versionID": version_id or "", "version": version or 0}
        return self.call("/group/get_incremental_group_members", body)

    def incremental_members_batch(self, requests):
        """``requests``: ``[(group_id, version_id, version)]``; ``(Reply, {group_id: data})``.

        The server leaves out dismissed groups and stops after 500 changes: callers ask
        again for the groups missing from the answer.
        """
        body = {
            "userID": self.admin_user_id,
            "reqList": [
                {"groupID": g, "versionID": vid or "", "version": v or 0} for g, vid, v in requests
            ],
        }
        reply = self.call("/group/get_incremental_group_members_batch", body)
        return reply, dict(reply.data.get("respList") or {})

    # -- friends and blocks ---------------------------------------------------------------------

    def friends(self, owner, page_size):
        return self._all("/friend/get_friend_list", {"userID": owner}, page_size, "friendsInfo")

    def blocks(self, owner, page_size):
        return self._all("/friend/get_black_list", {"userID": owner}, page_size, "blacks")

    # -- paging ---------------------------------------------------------------------------------

    def _all(self, endpoint, body, page_size, list_key):
        """Every item of a paged listing, and the Reply of its first page."""
        items, first = [], None
        for reply in self._pages(endpoint, body, page_size, list_key):
            first = first or reply
            items.extend(reply.data.get(list_key) or [])
        return first, items

    def _pages(self, endpoint, body, page_size, list_key):
        """Offset pages (``pageNumber`` from 1) until a short or empty page or ``total`` is reached."""
        page, seen = 1, 0
        while True:
            request = {**body, "pagination": {"pageNumber": page, "showNumber": page_size}}
            reply = self.call(endpoint, request)
            items = reply.data.get(list_key) or []
            yield reply
            seen += len(items)
            total = reply.data.get("total")
            if len(items) < page_size or (total is not None and seen >= total):
                return
            page += 1


__all__ = ["OpenIMClient", "Reply", "RestError"]
