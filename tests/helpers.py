"""Deliver callbacks the way the real servers do, and read the mirror back."""

import contextlib
import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

import openim_sync

SAMPLES = Path(openim_sync.__file__).parent / "samples"
FIXTURES = Path(__file__).parent / "fixtures"
SDKAPPID = 1400123456
TOKEN = "demo-callback-token-7Qx9"
OPENIM_CONTENT_TYPE = "application/json; charset=utf-8"


def sample(protocol, command):
    return json.loads((SAMPLES / protocol / f"{command}.json").read_text())


def sample_commands(protocol):
    return sorted(path.stem for path in (SAMPLES / protocol).glob("*.json"))


def seed(name):
    return json.loads((FIXTURES / "seeds" / f"{name}.json").read_text())


def go_json(body):
    """Compact JSON as Go's encoding/json writes it: HTML-escaped, UTF-8, trailing newline."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (text + "\n").encode()


def post_openim(client, path, body, *, operation_id="", query=None, raw=None, **extra):
    """POST like OpenIM Server: compact JSON, its content type, an operationID header."""
    url = f"/openim/callback{path}"
    if query:
        url += "?" + urlencode(query)
    data = raw if raw is not None else go_json(body)
    headers = {"operationID": operation_id, **extra.pop("headers", {})}
    return client.generic(
        "POST", url, data, content_type=OPENIM_CONTENT_TYPE, headers=headers, **extra
    )


def sign(token, request_time):
    return hashlib.sha256(f"{token}{request_time}".encode()).hexdigest()


def tencent_query(command, *, sdkappid=SDKAPPID, token=None, request_time=None, **params):
    query = {
        "SdkAppid": sdkappid,
        "CallbackCommand": command,
        "contenttype": "json",
        "ClientIP": "203.0.113.24",
        "OptPlatform": "iOS",
    }
    query.update(params)
    if token is not None:
        request_time = request_time if request_time is not None else int(time.time())
        query["Sign"] = sign(token, request_time)
        query["RequestTime"] = request_time
    return {key: value for key, value in query.items() if value is not None}


def post_tencent(client, body, *, command=None, raw=None, path="/openim/tencent", **query_args):
    command = command if command is not None else body.get("CallbackCommand")
    url = f"{path}?{urlencode(tencent_query(command, **query_args))}"
    data = raw if raw is not None else json.dumps(body).encode()
    return client.generic("POST", url, data, content_type="application/json")


def row(obj, *fields):
    return {name: getattr(obj, name) for name in fields}


#: How runserver (5.2: "Starting development server at", 6.x: "Starting WSGI development server
#: at") and gunicorn ("Listening at:") report the address they bound.
SERVER_ADDRESS = re.compile(r"(?:development server at|Listening at:) (https?://[^\s/]+)")


def run_or_fail(command, **kwargs):
    """Run ``command`` to completion; if it fails, fail the test with its output."""
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode:
        pytest.fail(f"{command} exited with {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


@contextlib.contextmanager
def live_process(command, *, log_path, env=None, cwd=None, timeout=60):
    """Start a server that binds port 0 itself (``runserver 127.0.0.1:0``, ``gunicorn -b
    127.0.0.1:0``) and yield the base URL it reports, so no other process can take the port
    between choosing and binding it. If the server exits or reports no address within
    ``timeout`` seconds, the test fails with the server's log."""
    env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
    with log_path.open("w") as log:
        server = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while not (address := SERVER_ADDRESS.search(log_path.read_text())):
            if server.poll() is not None:
                pytest.fail(f"The server exited with {server.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"The server reported no address in {timeout} s:\n{log_path.read_text()}"
                )
            time.sleep(0.05)
        yield address.group(1)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
