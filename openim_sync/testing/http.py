"""The HTTP plumbing shared by the fake IM servers: a threaded HTTP/1.1 (keep-alive) server on
127.0.0.1, request counters, injected HTTP failures, a side channel for other processes and a
small command line.

A fake subclasses :class:`FakeServer` and implements :meth:`FakeServer.handle`, which turns a
:class:`Request` into a :class:`Reply`. Everything else (reading bodies, counting, failures,
``/__fake__/`` calls, gzip) happens here.
"""

import argparse
import collections
import contextlib
import gzip
import json
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SIDE_CHANNEL = "/__fake__/"
MAX_RECORDS = 10_000
IDLE_SECONDS = 120


@dataclass
class Request:
    """One HTTP request as the fake sees it. ``query`` keeps the first value of each name."""

    method: str
    path: str
    query: dict
    headers: object
    body: bytes
    key: str
    time: float = field(default_factory=time.time)

    def header(self, name, default=""):
        return self.headers.get(name, default)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict = field(default_factory=dict)

    @classmethod
    def json(cls, payload, status=200, headers=None):
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(status, body, headers=dict(headers or {}))

    @classmethod
    def text(cls, text, status=200, headers=None):
        return cls(status, text.encode(), "text/plain; charset=utf-8", dict(headers or {}))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openim-sync-fake"
    sys_version = ""
    timeout = IDLE_SECONDS
    disable_nagle_algorithm = True

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _dispatch(self):
        body = self._read_body()
        reply = self.server.fake._serve(self.command, self.path, self.headers, body)
        self._send(reply)

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply):
        body = reply.body
        if self.server.fake.gzip_responses and "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            reply.headers = {**reply.headers, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format, *args):
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address, fake):
        self.fake = fake
        self.connections = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self):
        with self.connections_lock:
            connections, self.connections = list(self.connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class FakeServer:
    """A fake vendor server: ``start()`` binds 127.0.0.1 (port 0 = any free port) and serves in a
    daemon thread; ``stop()`` closes the listener and every kept-alive connection.

    ``requests`` counts calls per endpoint (see :meth:`count_key`), ``records`` keeps the last
    ``MAX_RECORDS`` requests, ``fail_next`` answers an HTTP error to the next calls of a path.
    Other processes use the side channel: ``POST /__fake__/state`` with ``{"call", "args",
    "kwargs"}`` calls a state method (or one of ``side_calls`` on the server), ``GET
    /__fake__/requests`` returns the counter, ``POST /__fake__/reset_counts`` clears it.
    """

    gzip_responses = False
    side_calls = ("fail_next", "reset_counts")

    #: ``before_reply(key, body)``, when set: called before each request is answered (a test
    #: makes something happen "while the server reads", e.g. a callback arriving).
    before_reply = None

    def __init__(self):
        self._lock = threading.Lock()
        self.requests = collections.Counter()
        self.records = collections.deque(maxlen=MAX_RECORDS)
        self._failures = {}
        self._httpd = None
        self._thread = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, port=0):
        if self._httpd is not None:
            raise RuntimeError("already started")
        self._httpd = _HTTPServer(("127.0.0.1", port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self):
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        if self._httpd is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        if self._httpd is None:
            raise RuntimeError("not started")
        return self._httpd.server_address[1]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    # -- counters and faults --------------------------------------------------------------------

    def count_key(self, path):
        """The counter key for ``path`` (the path without its query)."""
        return path

    def counts(self):
        """A snapshot of the request counter as a plain dict."""
        with self._lock:
            return dict(self.requests)

    def reset_counts(self):
        with self._lock:
            self.requests.clear()
            self.records.clear()

    def fail_next(self, path, times=1, status=500):
        """Answer HTTP ``status`` to the next ``times`` calls of ``path`` (a counter key)."""
        with self._lock:
            self._failures[self.count_key(_normalise(path))] = [int(times), int(status)]

    def failure_reply(self, request, status):
        """The reply for an injected HTTP failure; subclasses imitate their vendor."""
        return Reply(status, b"")

    def _take_failure(self, key):
        failure = self._failures.get(key)
        if not failure:
            return None
        failure[0] -= 1
        if failure[0] <= 0:
            del self._failures[key]
        return failure[1]

    # -- dispatch -------------------------------------------------------------------------------

    def handle(self, request):
        raise NotImplementedError

    def _serve(self, method, target, headers, body):
        parts = urlsplit(target)
        path = parts.path or "/"
        if path.startswith(SIDE_CHANNEL):
            return self._side_channel(method, path[len(SIDE_CHANNEL) :], body)
        query = {
            name: values[0]
            for name, values in parse_qs(parts.query, keep_blank_values=True).items()
        }
        request = Request(method, path, query, headers, body, self.count_key(path))
        with self._lock:
            self.requests[request.key] += 1
            self.records.append(request)
            failure = self._take_failure(request.key)
        if failure is not None:
            return self.failure_reply(request, failure)
        hook = self.before_reply
        if hook is not None:
            hook(request.key, request.body)
        try:
            return self.handle(request)
        except Exception as exc:  # a bug in the fake: say so instead of hanging the client
            return Reply.text(f"fake server error: {exc!r}", 500)

    # -- side channel ---------------------------------------------------------------------------

    def _side_channel(self, method, name, body):
        try:
            if name == "requests" and method == "GET":
                return Reply.json(self.counts())
            if name == "reset_counts" and method == "POST":
                self.reset_counts()
                return Reply.json({})
            if name == "state" and method == "POST":
                command = json.loads(body or b"{}")
                result = self.side_call(
                    command["call"], command.get("args") or [], command.get("kwargs") or {}
                )
                return Reply.json({"result": _jsonable(result)})
        except Exception as exc:
            return Reply.json({"error": f"{type(exc).__name__}: {exc}"}, 400)
        return Reply.json({"error": f"unknown side-channel call {method} {name}"}, 404)

    def side_call(self, name, args, kwargs):
        """Call ``state.<name>`` (any public method) or one of the server's ``side_calls``."""
        if name.startswith("_"):
            raise ValueError(f"{name} is private")
        state = getattr(self, "state", None)
        target = getattr(state, name, None) if state is not None else None
        if target is None and name in self.side_calls:
            target = getattr(self, name)
        if not callable(target):
            raise ValueError(f"no such call: {name}")
        return target(*args, **kwargs)


def _normalise(path):
    return urlsplit(path).path


def _jsonable(value):
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


# -- command line ---------------------------------------------------------------------------------


def parse_populate(text):
    """``"users=10000,groups=1000"`` → ``{"users": 10000, "groups": 1000}``."""
    counts = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, _, value = item.partition("=")
        counts[name.strip()] = int(value)
    return counts


def run_cli(prog, description, build, argv=None, add_arguments=None):
    """Build a fake from the command line, populate it, print ``listening on <url>`` and serve
    until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument(
        "--populate", default="", help="e.g. users=10000,groups=1000,members=30000,friends=20000"
    )
    parser.add_argument("--seed", type=int, default=0)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    server = build(args)
    counts = parse_populate(args.populate)
    if counts:
        server.state.populate(**counts, seed=args.seed)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    server.start(args.port)
    print(f"listening on {server.url}", flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        server.stop()
    return 0
