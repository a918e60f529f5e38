"""What both wire protocols share: reading and decoding the body, client IPs, reply envelopes."""

import ipaddress
import json
import math
import re
from dataclasses import dataclass, field
from functools import cache

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.core.handlers.wsgi import get_bytes_from_wsgi
from django.http import JsonResponse, QueryDict

from openim_sync.conf import app_settings
from openim_sync.exceptions import BadDelivery, LengthRequired, PayloadTooLarge, PermissionDenied

COMMAND_MAX_LENGTH = 128
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: Request headers never stored with an event: they carry credentials.
PRIVATE_HEADERS = {"HTTP_AUTHORIZATION", "HTTP_COOKIE", "HTTP_PROXY_AUTHORIZATION"}


@dataclass
class Route:
    """What the URL says: the command (if any) and the secret path segment (if any)."""

    url_command: str = ""
    secret: str | None = None
    extra: dict = field(default_factory=dict)


class ProtocolAdapter:
    """One IM server's wire format. Subclasses: :class:`~.openim.OpenIM`, :class:`~.tencent.Tencent`."""

    name = ""
    #: The body key naming the command.
    command_key = ""

    def route(self, request, path):
        raise NotImplementedError

    def authenticate(self, request, route):
        raise NotImplementedError

    def success_body(self):
        raise NotImplementedError

    def error_body(self, status, message):
        raise NotImplementedError

    def reply(self, status=200, message=""):
        body = self.success_body() if status == 200 else self.error_body(status, message)
        return JsonResponse(body, status=status)

    def resolve_command(self, url_command, payload):
        """The command of a delivery: the URL's, checked against the body's."""
        body_command = payload.get(self.command_key) if isinstance(payload, dict) else None
        if body_command is not None and not isinstance(body_command, str):
            raise BadDelivery(f"{self.command_key}: must be a string.")
        if url_command and body_command and url_command != body_command:
            raise BadDelivery(
                f"The command in the URL ({url_command!r}) disagrees with "
                f"{self.command_key} in the body ({body_command!r})."
            )
        command = url_command or body_command
        if not command:
            raise BadDelivery(
                f"No command: name it in the URL or in the body's {self.command_key} field."
            )
        if len(command) > COMMAND_MAX_LENGTH:
            raise BadDelivery(f"The command is longer than {COMMAND_MAX_LENGTH} characters.")
        _check_string(command, "The command")
        return command


def read_body(request):
    """The raw body, refusing anything larger than ``MAX_BODY_BYTES`` before reading it all.

    Without a Content-Length (a chunked request), the body is what the WSGI server hands over in
    ``wsgi.input`` when it says the stream ends there (``wsgi.input_terminated``, as gunicorn
    does); WSGI forbids reading past Content-Length otherwise.
    """
    limit = app_settings.MAX_BODY_BYTES
    meta = request.META
    try:
        declared = int(meta.get("CONTENT_LENGTH") or "")
    except ValueError:
        declared = None
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"The body is {declared} bytes; the limit is {limit} bytes.")
    try:
        if declared is not None:
            body = request.read(limit + 1)
        elif meta.get("wsgi.input_terminated"):
            body = _read_to_end(meta["wsgi.input"], limit + 1)
        elif meta.get("HTTP_TRANSFER_ENCODING"):
            raise LengthRequired(
                "The body has no Content-Length and the WSGI server does not hand over a "
                "chunked body (it sets no wsgi.input_terminated): send a Content-Length or run "
                "a server that de-chunks (gunicorn, or a buffering proxy in front)."
            )
        else:
            body = b""
    except OSError as exc:  # the client went away (UnreadablePostError) or the socket failed
        raise BadDelivery(f"The body could not be read: {exc}") from None
    if len(body) > limit:
        raise PayloadTooLarge(f"The body is larger than the limit of {limit} bytes.")
    return body


def _read_to_end(stream, size):
    """Up to ``size`` bytes of ``stream``: ``read(n)`` may return fewer before the end."""
    chunks, received = [], 0
    while received < size:
        chunk = stream.read(size - received)
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)


def parse_query(request):
    """The query string as a ``QueryDict``, always UTF-8: Django would decode it with a charset
    named in the Content-Type, which is the body's (and ignored: JSON is UTF-8)."""
    raw = get_bytes_from_wsgi(request.META, "QUERY_STRING", "")
    try:
        return QueryDict(raw, encoding="utf-8")
    except TooManyFieldsSent:
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        raise BadDelivery(
            f"More than {limit} query parameters (DATA_UPLOAD_MAX_NUMBER_FIELDS)."
        ) from None


def decode_body(body):
    """Parse a callback body into a dict that PostgreSQL and SQLite can both store as JSON."""
    if not body.strip():
        raise BadDelivery("The body is empty: expected a JSON object.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadDelivery(
            f"The body is not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start})."
        ) from None
    try:
        payload = json.loads(
            text, parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_int
        )
    except json.JSONDecodeError as exc:
        raise BadDelivery(
            f"Malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except RecursionError:
        raise BadDelivery(_too_deep()) from None
    if not isinstance(payload, dict):
        raise BadDelivery(f"Expected a JSON object, got {_json_type(payload)}.")
    _check_storable(payload)
    return payload


def _reject_constant(name):
    raise BadDelivery(f"Malformed JSON: {name} is not a JSON value.")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        # PostgreSQL's jsonb has no Infinity: refuse it here rather than fail on save.
        raise BadDelivery(f"Malformed JSON: the number {text[:40]} is out of range.")
    return value


def _int(text):
    try:
        return int(text)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        raise BadDelivery(
            f"Malformed JSON: an integer with {len(text)} digits is too long."
        ) from None


def _too_deep():
    return f"The JSON is nested deeper than {app_settings.MAX_JSON_DEPTH} levels."


def _json_type(value):
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _check_storable(payload):
    """Reject nesting deeper than the limit, NUL characters and lone surrogates (iteratively)."""
    max_depth = app_settings.MAX_JSON_DEPTH
    stack = [(payload, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if depth > max_depth:
            raise BadDelivery(_too_deep())
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else key
                _check_string(key, child)
                stack.append((item, child, depth + 1))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                stack.append((item, f"{path}[{index}]", depth + 1))
        elif isinstance(value, str):
            _check_string(value, path)


def _check_string(value, path):
    match = UNSTORABLE.search(value)
    if match:
        what = "a NUL character (\\u0000)" if match.group() == "\x00" else "a lone surrogate"
        where = storable(path) if path else "The body"
        raise BadDelivery(f"{where}: contains {what}, which cannot be stored.")


def storable(text):
    """``text`` with the characters PostgreSQL refuses replaced (for headers and query values)."""
    return UNSTORABLE.sub("\ufffd", text)


def request_headers(request):
    headers = {}
    for key, value in request.META.items():
        if key in PRIVATE_HEADERS:
            continue
        if key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.removeprefix("HTTP_").replace("_", "-").title()
            headers[name] = storable(str(value))
    return headers


def request_query(request):
    return {
        storable(key): storable(values[-1]) if len(values) == 1 else [storable(v) for v in values]
        for key, values in request.GET.lists()
    }


def client_ip(request):
    """The client address, or "" if unknown.

    X-Forwarded-For is believed only when the connection comes from a trusted proxy, and only up
    to the first entry (from the right) that is not itself a trusted proxy; an entry that is not
    an IP address makes the client unknown.
    """
    remote = _valid_ip(request.META.get("REMOTE_ADDR", ""))
    if not _in_networks(remote, _networks("TRUSTED_PROXIES")):
        return remote
    forwarded = [ip.strip() for ip in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for candidate in reversed([ip for ip in forwarded if ip]):
        if not _in_networks(candidate, _networks("TRUSTED_PROXIES")):
            return _valid_ip(candidate)
    return remote


def _valid_ip(text):
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return ""


def check_client_ip(request):
    networks = _networks("ALLOWED_IPS")
    if networks:
        ip = client_ip(request)
        if not _in_networks(ip, networks):
            raise PermissionDenied(f"Client IP {ip or '(unknown)'} is not in ALLOWED_IPS.")


@cache
def _networks(setting_name):
    return tuple(
        ipaddress.ip_network(value, strict=False) for value in getattr(app_settings, setting_name)
    )


def _in_networks(ip, networks):
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; match them as IPv4 too.
    mapped = getattr(address, "ipv4_mapped", None)
    return any(address in network or (mapped and mapped in network) for network in networks)


def reset_caches():
    _networks.cache_clear()
