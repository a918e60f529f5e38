"""What both REST clients share: one keep-alive ``httpx`` client, retries, rate limits, errors.

Nothing here logs a URL's query string, a header value or a body: Tencent's query carries the
UserSig and OpenIM's headers the admin token. Log lines name the endpoint and the request id.
"""

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

logger = logging.getLogger("openim_sync.reconcile")

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
#: Waits between attempts of a request that may succeed when tried again (seconds).
BACKOFF = (0.2, 0.5, 1.0, 2.0, 4.0)


class RestError(Exception):
    """An IM server's REST API answered an error (or could not be reached).

    ``kind``: ``"config"`` (credentials, URL, permissions: the run stops), ``"transient"`` (tried
    again and still failing), ``"data"`` (this item failed; the run goes on).
    """

    def __init__(self, endpoint, code, message, *, kind="data"):
        self.endpoint, self.code, self.message, self.kind = endpoint, code, message, kind
        #: When the request that got this answer was sent (ms), set by :class:`Transport`.
        self.sent_ms = now_ms()
        super().__init__(f"{endpoint}: error {code}: {message}")


class Retry(Exception):
    """Raised inside an attempt: wait and try the request again."""

    def __init__(self, error, wait=None):
        self.error, self.wait = error, wait


@dataclass
class Reply:
    """A successful REST reply: ``data``, and when its request was sent (ms since the epoch)."""

    sent_ms: int
    data: Any


def now_ms():
    return time.time_ns() // 1_000_000


class RateLimiter:
    """At most ``rate`` calls per second per key (a token bucket holding one second's worth)."""

    def __init__(self, rates=None, default=None):
        self.rates, self.default = dict(rates or {}), default
        self._next = {}
        self._lock = threading.Lock()

    def wait(self, key):
        rate = self.rates.get(key, self.default)
        if not rate:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next.get(key, now))
            # 5% slack: the server measures arrival times, which jitter.
            self._next[key] = start + 1.05 / rate
        if start > now:
            time.sleep(start - now)


class Transport:
    """POSTs JSON over one pooled, keep-alive connection; counts requests per endpoint."""

    def __init__(self, base_url, *, timeout=DEFAULT_TIMEOUT, backoff=BACKOFF, limiter=None):
        self.base_url = base_url.rstrip("/")
        self.backoff = tuple(backoff)
        self.limiter = limiter or RateLimiter()
        self.requests = Counter()
        self.client = httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(max_keepalive_connections=4, keepalive_expiry=30),
            headers={"User-Agent": "django-openim-sync"},
        )

    def close(self):
        self.client.close()

    def post(self, endpoint, body, attempt, *, params=None, headers=None):
        """``attempt(response) -> data`` decides; :class:`Retry` from it waits and tries again.

        Returns a :class:`Reply` stamped with the send time of the attempt that succeeded.
        """
        waits = iter(self.backoff)
        while True:
            self.limiter.wait(endpoint)
            sent_ms = now_ms()
            self.requests[endpoint] += 1
            try:
                response = self.client.post(
                    f"{self.base_url}/{endpoint.lstrip('/')}",
                    json=body,
                    params=params() if callable(params) else params,
                    headers=headers() if callable(headers) else headers,
                )
                return Reply(sent_ms, attempt(response))
            except RestError as exc:
                exc.sent_ms = sent_ms
                raise
            except Retry as retry:
                error, wait = retry.error, retry.wait
            except httpx.TransportError as exc:
                error = RestError(endpoint, "network", type(exc).__name__, kind="transient")
                wait = None
            pause = next(waits, None)
            if pause is None:
                raise error
            pause = max(pause, wait or 0)
            logger.info("%s: %s; trying again in %.1f s", endpoint, error.message, pause)
            time.sleep(pause)


def http_failure(endpoint, response):
    """A :class:`Retry` or :class:`RestError` for a non-200 reply."""
    status = response.status_code
    if status == 429 or status >= 500:
        wait = _retry_after(response)
        return Retry(RestError(endpoint, status, f"HTTP {status}", kind="transient"), wait)
    if status == 404:
        return RestError(endpoint, 404, "HTTP 404: no such endpoint on this server", kind="config")
    return RestError(endpoint, status, f"HTTP {status}", kind="config")


def _retry_after(response):
    try:
        return min(float(response.headers.get("Retry-After", "")), 30.0)
    except ValueError:
        return None


def json_body(endpoint, response):
    try:
        return response.json()
    except ValueError:
        raise Retry(
            RestError(endpoint, "json", "the reply is not JSON", kind="transient")
        ) from None
