"""What both REST clients share: keep-alive connections, retries, rate limits, errors.

The transport is the standard library's ``http.client``: one persistent connection per thread
(reconcile runs a few request threads), a timeout per request, gzip replies. Reconcile is a
long series of small requests, and httpx cost 2.6 times the CPU for the same run (9.6 s against
3.7 s for 8,225 requests; docs/performance.md).

Nothing here logs a URL's query string, a header value or a body: Tencent's query carries the
UserSig and OpenIM's headers the admin token. Log lines name the endpoint.
"""

import gzip
import http.client
import json
import logging
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

logger = logging.getLogger("openim_sync.reconcile")

DEFAULT_TIMEOUT = 10.0
#: Waits between attempts of a request that may succeed when tried again (seconds).
BACKOFF = (0.2, 0.5, 1.0, 2.0, 4.0)
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


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
    """Calls spaced to ``rates[key]`` (else ``default``) per second per key, and to ``total``
    per second over all keys (``--max-rps``)."""

    TOTAL = object()

    def __init__(self, rates=None, default=None, total=None):
        self.rates, self.default, self.total = dict(rates or {}), default, total
        self._next = {}
        self._lock = threading.Lock()

    def wait(self, key):
        limits = [(key, self.rates.get(key, self.default)), (self.TOTAL, self.total)]
        with self._lock:
            now = time.monotonic()
            start = max([now] + [self._next.get(k, now) for k, rate in limits if rate])
            for k, rate in limits:
                if rate:
                    # 5% slack: the server measures arrival times, which jitter.
                    self._next[k] = start + 1.05 / rate
        if start > now:
            time.sleep(start - now)


class Response:
    """A reply: ``status_code``, ``headers`` (lower-case names), ``content``, ``json()``."""

    def __init__(self, status_code, headers, content):
        self.status_code, self.headers, self.content = status_code, headers, content

    def json(self):
        return json.loads(self.content)


class Transport:
    """POSTs JSON over persistent connections (one per thread); counts requests per endpoint."""

    def __init__(self, base_url, *, timeout=DEFAULT_TIMEOUT, backoff=BACKOFF, limiter=None):
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.prefix = parts.path
        self.timeout = float(timeout)
        self.backoff = tuple(backoff)
        self.limiter = limiter or RateLimiter()
        self.requests = Counter()
        self._local = threading.local()
        self._connections = []
        self._lock = threading.Lock()

    def close(self):
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def _connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is None:
            cls = (
                http.client.HTTPSConnection
                if self.scheme == "https"
                else http.client.HTTPConnection
            )
            connection = cls(self.host, self.port, timeout=self.timeout)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _drop_connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _request(self, path, body, headers):
        connection = self._connection()
        reused = connection.sock is not None
        try:
            connection.request("POST", path, body, headers)
            reply = connection.getresponse()
        except STALE:
            if not reused:
                raise
            # The server closed the idle connection: a new one, at once.
            self._drop_connection()
            connection = self._connection()
            connection.request("POST", path, body, headers)
            reply = connection.getresponse()
        if not reused and connection.sock is not None:
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        content = reply.read()
        names = {name.lower(): value for name, value in reply.getheaders()}
        if names.get("content-encoding") == "gzip":
            content = gzip.decompress(content)
        if names.get("connection", "").lower() == "close":
            self._drop_connection()
        return Response(reply.status, names, content)

    def post(self, endpoint, body, attempt, *, params=None, headers=None):
        """``attempt(response) -> data`` decides; :class:`Retry` from it waits and tries again.

        Returns a :class:`Reply` stamped with the send time of the attempt that succeeded.
        """
        waits = iter(self.backoff)
        payload = json.dumps(body, separators=(",", ":")).encode()
        while True:
            self.limiter.wait(endpoint)
            path = f"{self.prefix}/{endpoint.lstrip('/')}"
            query = params() if callable(params) else params
            if query:
                path = f"{path}?{urlencode(query)}"
            request_headers = {
                "Content-Type": "application/json",
                "Accept-Encoding": "gzip",
                "User-Agent": "django-openim-sync",
                **((headers() if callable(headers) else headers) or {}),
            }
            sent_ms = now_ms()
            self.requests[endpoint] += 1
            try:
                response = self._request(path, payload, request_headers)
                return Reply(sent_ms, attempt(response))
            except RestError as exc:
                exc.sent_ms = sent_ms
                raise
            except Retry as retry:
                error, wait = retry.error, retry.wait
            except TRANSPORT_ERRORS as exc:
                self._drop_connection()
                error = RestError(endpoint, "network", type(exc).__name__, kind="transient")
                wait = None
            pause = next(waits, None)
            if pause is None:
                raise error
            pause = max(pause, wait or 0)
            logger.info("%s: %s; trying again in %.1f s", endpoint, error.message, pause)
            time.sleep(pause)


class RestClient:
    """What both clients have: ``transport``, its ``requests`` counter, ``close()``."""

    transport: Transport

    @property
    def requests(self):
        return self.transport.requests

    def close(self):
        self.transport.close()


def with_fresh_credential(credential, attempt, refused):
    """``attempt(credential())``; when the server refuses the credential (an error code in
    ``refused``: an expired admin token, a UserSig it cannot verify), once more with a new one."""
    try:
        return attempt(credential(refresh=False))
    except RestError as exc:
        if exc.code not in refused:
            raise
        logger.info("%s: credential refused (%s); getting a new one", exc.endpoint, exc.code)
    return attempt(credential(refresh=True))


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
