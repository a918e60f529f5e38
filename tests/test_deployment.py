"""The reference deployment (deploy/, docs/deployment.md): nginx (Debian's package) buffering in
front of gunicorn, which serves the example project with deploy/gunicorn.conf.py and
deploy/settings.py. Both run for real, from the files in deploy/, on sockets this test binds to
port 0 and hands over (nginx inherits its listener through the NGINX environment variable,
gunicorn gets ``fd://N``), so no port is picked and then bound by someone else.

Checked through real HTTP: deliveries (Content-Length or chunked) reach the app byte for byte
with the client's own address (``TRUSTED_PROXIES``, even when the client forges
X-Forwarded-For); nginx refuses bodies above the app's 1 MiB limit itself, in each protocol's
JSON envelope, while a body of exactly 1 MiB still reaches the app; and 50 clients trickling
their headers or bodies do not delay normal deliveries (gunicorn alone would give each of them a
thread until its request has arrived).

On SQLite (a file) by default; on PostgreSQL when DATABASE_URL is set (its own database,
``<name>_deployment``). Skipped, with the reason, when nginx or gunicorn is not installed
(.ci/setup.d/nginx.sh installs nginx in CI).
"""

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import pytest

from tests.helpers import OPENIM_CONTENT_TYPE, go_json, sample, tencent_query

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PY = sys.executable
GUNICORN = Path(PY).parent / "gunicorn"
SECRET = "deploy-test-secret"
TOKEN = "deploy-test-token"
LIMIT = 1024 * 1024  # MAX_BODY_BYTES and nginx's client_max_body_size 1m
#: Loopback addresses the clients connect from; nginx connects to gunicorn from 127.0.0.1.
CLIENT = "127.0.0.2"
SLOW_CLIENTS = 50
#: A normal delivery must be answered within this while the slow clients are connected.
#: Generous (a delivery takes milliseconds): what it catches is a wait for a free thread, which
#: lasts as long as the slow clients keep trickling (gunicorn alone: until they finish).
DELIVERY_BOUND_SECONDS = 5.0
UPDATE = "callbackAfterUpdateUserInfoCommand"


def _nginx():
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


# --- The servers -------------------------------------------------------------------------------


class Process:
    """A server started on an already listening socket; its output goes to ``log``."""

    def __init__(self, name, cmd, env, log, listener):
        self.name, self.log = name, log
        fd = listener.fileno()
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [part.replace("{fd}", str(fd)) for part in cmd],
                cwd=ROOT,
                env={k: v.replace("{fd}", str(fd)) for k, v in env.items()},
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(fd,),
                start_new_session=True,
            )

    def output(self):
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ({self.log}) ---\n{text[-6000:]}"

    def check(self):
        if self.proc.poll() is not None:
            pytest.fail(
                f"{self.name} exited with {self.proc.returncode}\n{self.output()}", pytrace=False
            )

    def stop(self):
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def listener():
    sock = socket.create_server(("127.0.0.1", 0), backlog=512)
    # What gunicorn sets on the sockets it binds itself; here it must be set before the first
    # connection is queued (nginx connects while gunicorn boots, then keeps that connection):
    # without it such a connection's replies wait for delayed ACKs (Nagle), 40 ms each.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Database:
    """Where the deployment stores: a SQLite file, or its own PostgreSQL database."""

    def __init__(self, tmp):
        self.url = os.environ.get("DATABASE_URL", "")
        if self.url:
            parts = urlsplit(self.url)
            self.name = (parts.path.lstrip("/") or "openim_sync") + "_deployment"
            self.admin_url = urlunsplit(parts._replace(path="/postgres", query=""))
            self.env = {"DATABASE_URL": urlunsplit(parts._replace(path=f"/{self.name}"))}
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self._admin(f'CREATE DATABASE "{self.name}"')
        else:
            self.path = tmp / "deployment.sqlite3"
            self.env = {"SQLITE_PATH": str(self.path)}

    def _admin(self, sql):
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def rows(self, sql, params=()):
        if not self.url:
            with contextlib.closing(sqlite3.connect(self.path, timeout=20)) as conn:
                return conn.execute(sql.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(self.env["DATABASE_URL"]) as conn:
            return conn.execute(sql, params).fetchall()

    def events(self, operation_ids):
        """operationID → [(status, body, remote_addr, command)] of the stored events."""
        found = {op: [] for op in operation_ids}
        placeholders = ", ".join(["%s"] * len(found))
        for op, status, body, addr, command in self.rows(
            "SELECT operation_id, status, body, remote_addr, command "
            f"FROM openim_sync_callbackevent WHERE operation_id IN ({placeholders})",
            list(found),
        ):
            found[op].append((status, bytes(body), str(addr) if addr else None, command))
        return found

    def drop(self):
        if self.url:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class Deployment:
    """gunicorn with the example project and nginx in front, from deploy/; ``app=False``: nginx
    alone, in front of whatever ``start_nginx`` is given."""

    def __init__(self, tmp, *, app=True):
        self.tmp = tmp
        self.processes = []
        self.db = Database(tmp) if app else None
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SQLITE_PATH")},
            **(self.db.env if app else {}),
            "DJANGO_SETTINGS_MODULE": "deploy.settings",
            "DJANGO_DEBUG": "0",
            "OPENIM_SYNC_SECRETS": SECRET,
            "OPENIM_SYNC_TENCENT_TOKENS": TOKEN,
            "OPENIM_SYNC_PROCESSING": "inline",
            "OPENIM_SYNC_TRUSTED_PROXIES": "127.0.0.1",
            "OPENIM_SYNC_ALLOWED_IPS": "",
        }

    def start(self):
        migrate = subprocess.run(
            [PY, "manage.py", "migrate", "--no-input", "--skip-checks"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if migrate.returncode:
            pytest.fail(f"migrate failed:\n{migrate.stdout}\n{migrate.stderr}", pytrace=False)

        upstream = listener()
        self.gunicorn_port = upstream.getsockname()[1]
        self.gunicorn = self._start(
            "gunicorn",
            [str(GUNICORN), "-c", str(DEPLOY / "gunicorn.conf.py")],
            {
                **self.env,
                "GUNICORN_BIND": "fd://{fd}",
                "GUNICORN_WORKERS": "2",
                "GUNICORN_THREADS": "2",
                "GUNICORN_LOG_LEVEL": "info",
            },
            upstream,
        )

        self.start_nginx(self.gunicorn_port)
        self.wait_ready()

    def start_nginx(self, upstream_port):
        front = listener()
        self.port = front.getsockname()[1]
        prefix = self.tmp / "nginx"
        prefix.mkdir()
        site = (DEPLOY / "nginx.conf").read_text()
        site = site.replace("__LISTEN__", f"127.0.0.1:{self.port}")
        site = site.replace("__GUNICORN__", f"127.0.0.1:{upstream_port}")
        (prefix / "openim-sync.conf").write_text(site)
        (prefix / "nginx.conf").write_text(self._main_config(prefix))
        self.nginx = self._start(
            "nginx",
            [_nginx(), "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
            # nginx takes over the listening sockets named here instead of binding its own.
            {**os.environ, "NGINX": "{fd};"},
            front,
        )

    def _start(self, name, cmd, env, sock):
        try:
            process = Process(name, cmd, env, self.tmp / f"{name}.log", sock)
        finally:
            sock.close()  # the child has its own copy
        self.processes.append(process)
        return process

    @staticmethod
    def _main_config(prefix):
        """What Debian's /etc/nginx/nginx.conf provides around conf.d/, in the temp prefix."""
        # As root the workers would run as "nobody", who cannot enter pytest's private tmp dir.
        user = "user root;" if os.geteuid() == 0 else ""
        temp = " ".join(
            f"{kind}_temp_path {prefix}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return f"""
daemon off;
master_process on;
worker_processes 1;
{user}
pid {prefix}/nginx.pid;
error_log stderr info;
events {{ worker_connections 1024; }}
http {{
    default_type application/octet-stream;
    log_format timed '$remote_addr "$request" $status $request_length '
                     'rt=$request_time urt=$upstream_response_time';
    access_log {prefix}/access.log timed;
    {temp}
    include {prefix}/openim-sync.conf;
}}
"""

    def wait_ready(self, timeout=90, ready=(200,)):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for process in self.processes:
                process.check()
            try:
                status, _, _ = self.request("GET", "/admin/login/", timeout=10)
                if status in ready:
                    return
                last = f"HTTP {status}"
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.3)
        pytest.fail(
            f"the deployment did not answer within {timeout} s ({last})\n{self.logs()}",
            pytrace=False,
        )

    def logs(self):
        return "\n".join(process.output() for process in self.processes)

    def connection(self, source=CLIENT, timeout=30):
        return http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=timeout, source_address=(source, 0)
        )

    def request(self, method, path, body=None, headers=None, *, source=CLIENT, timeout=30):
        conn = self.connection(source, timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def stop(self):
        for process in reversed(self.processes):
            process.stop()
        if self.db:
            self.db.drop()


def require_servers():
    missing = [
        what
        for what, present in (
            ("nginx (Debian: apt-get install nginx-light; CI: .ci/setup.d/nginx.sh)", _nginx()),
            (f"gunicorn ({GUNICORN})", GUNICORN.exists()),
        )
        if not present
    ]
    if missing:
        pytest.skip(f"the reference deployment needs {' and '.join(missing)}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    require_servers()
    deployment = Deployment(tmp_path_factory.mktemp("deployment"))
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()


# --- Deliveries --------------------------------------------------------------------------------


def openim_path(command=UPDATE):
    return f"/openim/callback/{SECRET}/{command}"


def user_update(user_id, nickname, ex=""):
    body = sample("openim", UPDATE) | {"userID": user_id, "nickName": nickname, "ex": ex}
    return go_json(body)


def openim_headers(operation_id, **extra):
    return {"Content-Type": OPENIM_CONTENT_TYPE, "operationID": operation_id, **extra}


def tencent_path(command):
    return f"/openim/tencent?{urlencode(tencent_query(command, token=TOKEN))}"


def assert_openim_ok(status, body):
    assert status == 200, body
    assert json.loads(body) == {
        "actionCode": 0,
        "errCode": 0,
        "errMsg": "",
        "errDlt": "",
        "nextCode": 0,
    }


def test_bodies_and_client_addresses_arrive_intact(deployment):
    """Byte for byte, with the address the client connected from, even when it forges
    X-Forwarded-For and when it sends its body chunked (nginx forwards it with a length)."""
    nickname = 'Zoë 李 🚀 \\ " <&>'
    body = user_update("intact-1", nickname)
    status, _, reply = deployment.request(
        "POST",
        openim_path(),
        body,
        openim_headers("intact-1", **{"X-Forwarded-For": "203.0.113.66"}),
        source="127.0.0.7",
    )
    assert_openim_ok(status, reply)

    tencent = sample("tencent", "Profile.CallbackPortraitSet") | {"From_Account": "intact-2"}
    tencent_body = json.dumps(tencent, ensure_ascii=False).encode()
    conn = deployment.connection("127.0.0.8")
    try:
        conn.request(
            "POST",
            tencent_path("Profile.CallbackPortraitSet"),
            body=iter([tencent_body[:7], tencent_body[7:]]),
            headers={"Content-Type": "application/json", "operationID": "intact-2"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        status, reply = response.status, response.read()
    finally:
        conn.close()
    assert status == 200, reply
    assert json.loads(reply) == {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}

    events = deployment.db.events(["intact-1", "intact-2"])
    assert events["intact-1"] == [("processed", body, "127.0.0.7", UPDATE)]
    assert events["intact-2"] == [
        ("processed", tencent_body, "127.0.0.8", "Profile.CallbackPortraitSet")
    ]
    assert deployment.db.rows(
        "SELECT nickname FROM openim_sync_imuser WHERE user_id = %s", ["intact-1"]
    ) == [(nickname,)]


def test_the_body_limit_is_enforced_by_nginx_in_the_envelope(deployment):
    # Exactly MAX_BODY_BYTES passes nginx and is the app's to answer.
    prefix = user_update("limit-1", "Limit", ex="")
    padding = LIMIT - len(prefix)
    at_limit = user_update("limit-1", "Limit", ex="x" * padding)
    assert len(at_limit) == LIMIT
    status, _, reply = deployment.request(
        "POST", openim_path(), at_limit, openim_headers("limit-at")
    )
    assert_openim_ok(status, reply)

    # One byte more: nginx answers 413 itself, in OpenIM's envelope; gunicorn never sees it
    # (the app would have stored a rejected event).
    too_large = user_update("limit-2", "Limit", ex="x" * (padding + 1))
    status, headers, reply = deployment.request(
        "POST", openim_path(), too_large, openim_headers("limit-over")
    )
    assert status == 413, reply
    assert headers["Content-Type"] == "application/json"
    assert json.loads(reply) == {
        "actionCode": 1,
        "errCode": 413,
        "errMsg": "The body is larger than the limit of 1048576 bytes.",
        "errDlt": "",
        "nextCode": 0,
    }

    # A chunked body has no length to refuse up front: nginx counts while reading it. Tencent's
    # envelope under its URL.
    conn = deployment.connection()
    try:
        chunk = b" " * (64 * 1024)
        conn.request(
            "POST",
            tencent_path("Profile.CallbackPortraitSet"),
            body=iter([b"{}"] + [chunk] * (LIMIT // len(chunk))),
            headers={"Content-Type": "application/json", "operationID": "limit-chunked"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        status, reply = response.status, response.read()
    except (BrokenPipeError, ConnectionResetError) as exc:  # nginx closed before answering
        pytest.fail(f"nginx closed the connection instead of answering 413: {exc!r}")
    finally:
        conn.close()
    assert status == 413, reply
    assert json.loads(reply) == {
        "ActionStatus": "FAIL",
        "ErrorCode": 1,
        "ErrorInfo": "The body is larger than the limit of 1048576 bytes.",
    }

    events = deployment.db.events(["limit-at", "limit-over", "limit-chunked"])
    assert [(s, len(b), c) for s, b, _, c in events["limit-at"]] == [("processed", LIMIT, UPDATE)]
    assert events["limit-over"] == events["limit-chunked"] == []


def test_nginx_answers_in_the_envelope_when_gunicorn_is_down(tmp_path):
    require_servers()
    # A bound socket that does not listen: the port stays ours, and connections are refused.
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    proxy = Deployment(tmp_path, app=False)
    try:
        proxy.start_nginx(dead.getsockname()[1])
        proxy.wait_ready(ready=(502,))
        status, headers, reply = proxy.request(
            "POST", openim_path(), user_update("down-1", "Down"), openim_headers("down-1")
        )
        assert (status, headers["Content-Type"]) == (502, "application/json"), reply
        assert json.loads(reply) == {
            "actionCode": 1,
            "errCode": 502,
            "errMsg": "The receiver is not available (bad gateway).",
            "errDlt": "",
            "nextCode": 0,
        }
        status, _, reply = proxy.request(
            "POST", tencent_path("State.StateChange"), b"{}", {"Content-Type": "application/json"}
        )
        assert status == 502, reply
        assert json.loads(reply) == {
            "ActionStatus": "FAIL",
            "ErrorCode": 1,
            "ErrorInfo": "The receiver is not available (bad gateway).",
        }
    finally:
        proxy.stop()
        dead.close()


# --- Slow clients ------------------------------------------------------------------------------


class SlowClient:
    """A complete, valid delivery sent a byte at a time, from its own loopback address. Trickling
    the head: the request line and headers arrive byte by byte and never end. Trickling the body:
    the head arrives whole, the body byte by byte and never ends. ``finish()`` sends the rest."""

    def __init__(self, deployment, index, *, trickle_body):
        self.operation_id = f"slow-{index}"
        self.source = f"127.0.1.{index + 1}"
        self.body = user_update(self.operation_id, f"Slow {index} ✓")
        head = (
            f"POST {openim_path()} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{deployment.port}\r\n"
            f"Content-Type: {OPENIM_CONTENT_TYPE}\r\n"
            f"operationID: {self.operation_id}\r\n"
            f"Content-Length: {len(self.body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        self.data = head + self.body
        self.sock = socket.create_connection(
            ("127.0.0.1", deployment.port), timeout=30, source_address=(self.source, 0)
        )
        self.sent = 0
        if trickle_body:
            self.sock.sendall(head)
            self.sent = len(head)
        # Never the last byte of the part being trickled before finish().
        self.limit = len(self.data) - 1 if trickle_body else len(head) - 1

    def trickle(self):
        if self.sent < self.limit:
            self.sock.sendall(self.data[self.sent : self.sent + 1])
            self.sent += 1

    def still_waiting(self):
        """Connected, and nothing answered yet."""
        self.sock.setblocking(False)
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            self.sock.setblocking(True)
        return False  # data (an answer) or b"" (closed)

    def finish(self):
        self.sock.sendall(self.data[self.sent :])
        self.sent = len(self.data)
        response = http.client.HTTPResponse(self.sock)
        response.begin()
        return response.status, response.read()

    def close(self):
        self.sock.close()


def test_slow_clients_do_not_delay_normal_deliveries(deployment):
    timeout = 3 * DELIVERY_BOUND_SECONDS
    conn = deployment.connection(timeout=timeout)
    slow = []

    def deliver(operation_id):
        started = time.perf_counter()
        try:
            conn.request(
                "POST",
                openim_path(),
                user_update(operation_id, "Normal"),
                openim_headers(operation_id),
            )
            response = conn.getresponse()
            reply = response.read()
        except TimeoutError:
            pytest.fail(
                f"{operation_id}: no answer within {timeout} s "
                f"({len(slow)} slow clients connected)\n{deployment.logs()}",
                pytrace=False,
            )
        elapsed = time.perf_counter() - started
        assert_openim_ok(response.status, reply)
        return elapsed

    baseline = [deliver(f"baseline-{i}") for i in range(10)]

    stop = threading.Event()
    errors = []

    def trickle():
        while not stop.wait(0.2):
            for client in slow:
                try:
                    client.trickle()
                except OSError as exc:
                    errors.append(f"{client.operation_id}: {exc!r}")

    trickler = threading.Thread(target=trickle, daemon=True)
    try:
        slow.extend(
            SlowClient(deployment, i, trickle_body=bool(i % 2)) for i in range(SLOW_CLIENTS)
        )
        trickler.start()
        time.sleep(1.0)  # every slow client connected, accepted by nginx and trickling
        loaded = [deliver(f"loaded-{i}") for i in range(20)]
        answered = [client.operation_id for client in slow if not client.still_waiting()]
        stop.set()
        trickler.join(10)

        timings = (
            f"normal deliveries before the slow clients: max {max(baseline):.3f} s, "
            f"with {SLOW_CLIENTS} slow clients connected: max {max(loaded):.3f} s "
            f"(all: {', '.join(f'{t:.3f}' for t in loaded)})"
        )
        print(timings)
        assert errors == [], errors
        # They were all still in the middle of their requests while the deliveries went through.
        assert answered == [], f"answered or closed before they finished: {answered}"
        assert max(loaded) < DELIVERY_BOUND_SECONDS, f"{timings}\n{deployment.logs()}"

        # Once they finish, theirs are ordinary deliveries too.
        replies = {client.operation_id: client.finish() for client in slow}
    finally:
        stop.set()
        for client in slow:
            client.close()
        conn.close()
    for operation_id, (status, reply) in replies.items():
        assert status == 200, (operation_id, reply)
        assert_openim_ok(status, reply)

    events = deployment.db.events(
        [c.operation_id for c in slow]
        + [f"baseline-{i}" for i in range(10)]
        + [f"loaded-{i}" for i in range(20)]
    )
    for client in slow:
        assert events[client.operation_id] == [("processed", client.body, client.source, UPDATE)]
    for operation_id in [f"baseline-{i}" for i in range(10)] + [f"loaded-{i}" for i in range(20)]:
        assert [(s, a) for s, _, a, _ in events[operation_id]] == [("processed", CLIENT)]
