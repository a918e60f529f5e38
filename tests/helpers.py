"""Deliver callbacks the way the real servers do, and read the mirror back."""

import hashlib
import json
import time
from pathlib import Path
from urllib.parse import urlencode

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
