"""A small client for Tencent Cloud Chat's REST API, as reconcile needs it.

Every call is ``POST <base>/v4/<service>/<command>?sdkappid=&identifier=&usersig=&random=
&contenttype=json`` with a JSON body (``{}`` at least). The admin's UserSig is computed here
(:mod:`.usersig`), reused until shortly before it expires and computed again once when the
server refuses it; ``random`` is fresh for every request. Calls are spaced to Tencent's
per-API limits, and throttling codes are waited out.
"""

import secrets
import threading
import time

from . import usersig
from .http import (
    DEFAULT_TIMEOUT,
    RateLimiter,
    RestClient,
    RestError,
    Retry,
    Transport,
    http_failure,
    json_body,
    with_fresh_credential,
)

DEFAULT_URL = "https://console.tim.qq.com"
USERSIG_SECONDS = 86400
#: Calls per second Tencent allows per API (the others: 200).
RATE_LIMITS = {
    "v4/im_open_login_svc/account_check": 100,
    "v4/group_open_http_svc/get_appid_group_list": 1,
}
DEFAULT_RATE = 200
THROTTLED = {60007, 60011, 60018, 60019}
TRANSIENT = THROTTLED | {60008, 10002, 30006, 30007, 40006, 70169, 90992, 90994, 90995, 91000}
USERSIG_REFUSED = {70001, 70003, 70009}
NOT_FOUND = {30003, 40003, 70107, 10010, 10015}

ACCOUNT_CHECK = "v4/im_open_login_svc/account_check"
PORTRAIT_GET = "v4/profile/portrait_get"
FRIEND_GET = "v4/sns/friend_get"
BLACK_LIST_GET = "v4/sns/black_list_get"
GROUP_LIST = "v4/group_open_http_svc/get_appid_group_list"
GROUP_INFO = "v4/group_open_http_svc/get_group_info"
GROUP_MEMBERS = "v4/group_open_http_svc/get_group_member_info"
ONLINE_STATUS = "v4/openim/query_online_status"


class TencentClient(RestClient):
    def __init__(
        self,
        base_url,
        sdkappid,
        admin_identifier,
        secret_key,
        *,
        timeout=DEFAULT_TIMEOUT,
        max_rps=None,
        backoff=None,
    ):
        self.sdkappid, self.admin_identifier = int(sdkappid), admin_identifier
        self._secret_key = secret_key
        kwargs = {"backoff": backoff} if backoff is not None else {}
        self.transport = Transport(
            base_url or DEFAULT_URL,
            timeout=timeout,
            limiter=RateLimiter(RATE_LIMITS, default=DEFAULT_RATE, total=max_rps),
            **kwargs,
        )
        self._sig, self._sig_until = None, 0.0
        self._lock = threading.Lock()

    # -- the call -------------------------------------------------------------------------------

    def call(self, endpoint, body):
        return with_fresh_credential(
            self.usersig,
            lambda sig: self.transport.post(
                endpoint,
                body or {},
                lambda response: self._unwrap(endpoint, response),
                params=lambda: self._query(sig),
            ),
            USERSIG_REFUSED,
        )

    def _query(self, sig):
        return {
            "sdkappid": self.sdkappid,
            "identifier": self.admin_identifier,
            "usersig": sig,
            "random": secrets.randbelow(2**32),
            "contenttype": "json",
        }

    def _unwrap(self, endpoint, response):
        if response.status_code != 200:
            raise http_failure(endpoint, response)
        reply = json_body(endpoint, response)
        if not isinstance(reply, dict):
            raise RestError(endpoint, "json", "the reply is not a Tencent envelope", kind="config")
        code = reply.get("ErrorCode") or 0
        if code == 0 and reply.get("ActionStatus", "OK") == "OK":
            return reply
        message = reply.get("ErrorInfo") or "error"
        if code in TRANSIENT:
            wait = 1.0 if code in THROTTLED else None
            raise Retry(RestError(endpoint, code, message, kind="transient"), wait)
        kind = "data" if code in NOT_FOUND else "config"
        raise RestError(endpoint, code, message, kind=kind)

    def usersig(self, refresh=False):
        with self._lock:
            if refresh or self._sig is None or time.time() >= self._sig_until:
                self._sig = usersig.generate(
                    self.sdkappid, self._secret_key, self.admin_identifier, USERSIG_SECONDS
                )
                self._sig_until = time.time() + USERSIG_SECONDS - 300
            return self._sig

    # -- accounts and profiles ------------------------------------------------------------------

    def account_check(self, user_ids):
        """``(Reply, {user_id: imported?})``"""
        reply = self.call(ACCOUNT_CHECK, {"CheckItem": [{"UserID": u} for u in user_ids]})
        result = {}
        for item in reply.data.get("ResultItem") or []:
            result[item["UserID"]] = item.get("AccountStatus") == "Imported"
        return reply, result

    def portraits(self, user_ids, tags):
        """``(Reply, {user_id: {tag: value}})``: users that failed are absent."""
        reply = self.call(PORTRAIT_GET, {"To_Account": list(user_ids), "TagList": list(tags)})
        result = {}
        for item in reply.data.get("UserProfileItem") or []:
            if item.get("ResultCode", 0) == 0:
                profile = {p["Tag"]: p.get("Value") for p in item.get("ProfileItem") or []}
                result[item["To_Account"]] = profile
        return reply, result

    def online_status(self, user_ids):
        """``(Reply, {user_id: {"status": ..., "platforms": {platform: status}}})``"""
        reply = self.call(ONLINE_STATUS, {"To_Account": list(user_ids), "IsNeedDetail": 1})
        result = {}
        for item in reply.data.get("QueryResult") or []:
            status = item.get("Status") or item.get("State") or "Offline"
            platforms = {d["Platform"]: d.get("Status") for d in item.get("Detail") or []}
            result[item["To_Account"]] = {"status": status, "platforms": platforms}
        return reply, result

    # -- friends and blocks ---------------------------------------------------------------------

    def friends(self, owner):
        """``(Reply of the first page, [{"To_Account", tag: value...}])``"""
        items, first, start = [], None, 0
        while True:
            body = {"From_Account": owner, "StartIndex": start}
            reply = self.call(FRIEND_GET, body)
            first = first or reply
            for item in reply.data.get("UserDataItem") or []:
                values = {v["Tag"]: v.get("Value") for v in item.get("ValueItem") or []}
                items.append({"To_Account": item["To_Account"], **values})
            if reply.data.get("CompleteFlag") or not reply.data.get("UserDataItem"):
                return first, items
            start = reply.data.get("NextStartIndex") or 0

    def blocks(self, owner, page_size=100):
        items, first, start, sequence = [], None, 0, 0
        while True:
            body = {
                "From_Account": owner,
                "StartIndex": start,
                "MaxLimited": page_size,
                "LastSequence": sequence,
            }
            reply = self.call(BLACK_LIST_GET, body)
            first = first or reply
            items.extend(reply.data.get("BlackListItem") or [])
            start = reply.data.get("StartIndex") or 0
            sequence = reply.data.get("CurruentSequence") or sequence
            if not start:
                return first, items

    # -- groups ---------------------------------------------------------------------------------

    def group_ids(self, page_size=10000):
        """Pages of every group id: ``(Reply, [group_id])``; ``Next`` is a 64-bit integer."""
        cursor = 0
        while True:
            body = {"Limit": page_size, "Next": cursor}
            reply = self.call(GROUP_LIST, body)
            yield reply, [g["GroupId"] for g in reply.data.get("GroupIdList") or []]
            cursor = int(reply.data.get("Next") or 0)
            if not cursor:
                return

    def groups_info(self, group_ids):
        """``(Reply, {group_id: info or None})``: None for a group that is gone (10010, 10015)."""
        body = {
            "GroupIdList": list(group_ids),
            "ResponseFilter": {"MemberInfoFilter": [], "AppDefinedDataFilter_GroupMember": []},
        }
        reply = self.call(GROUP_INFO, body)
        result = {}
        for info in reply.data.get("GroupInfo") or []:
            code = info.get("ErrorCode") or 0
            if code == 0:
                result[info["GroupId"]] = info
            elif code in NOT_FOUND:
                result[info["GroupId"]] = None
            else:
                raise RestError(GROUP_INFO, code, info.get("ErrorInfo") or "error")
        return reply, result

    def group_members(self, group_id, group_type="", page_size=100):
        """``(Reply of the first page, [member])``; Community groups page with ``Next``."""
        members, first, offset, cursor = [], None, 0, ""
        community = group_type == "Community"
        while True:
            body = {"GroupId": group_id, "Limit": page_size}
            if community:
                body["Next"] = cursor
            else:
                body["Offset"] = offset
            reply = self.call(GROUP_MEMBERS, body)
            first = first or reply
            page = reply.data.get("MemberList") or []
            members.extend(page)
            if community:
                cursor = reply.data.get("Next") or ""
                if not cursor:
                    return first, members
            else:
                offset += len(page)
                total = reply.data.get("MemberNum")
                if len(page) < page_size or (total is not None and offset >= total):
                    return first, members
