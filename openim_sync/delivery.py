"""A delivery as the pipeline sees it: what the request carried, without the ``HttpRequest``."""

from dataclasses import dataclass, field

from django.utils import timezone

from openim_sync.exceptions import CallbackError
from openim_sync.protocols.base import (
    client_ip,
    read_body,
    request_headers,
    request_query,
    storable,
)

OPERATION_ID_LENGTH = 128


@dataclass
class Delivery:
    """One authenticated callback request, turned into plain values by its protocol adapter."""

    protocol: str
    url_command: str
    body: bytes
    headers: dict = field(default_factory=dict)
    query: dict = field(default_factory=dict)
    remote_addr: str | None = None
    operation_id: str = ""
    received_at: object = None
    #: Set when the body could not be read (too large, no length, cut off): the delivery is
    #: stored rejected.
    body_error: CallbackError | None = None

    def __post_init__(self):
        if self.received_at is None:
            self.received_at = timezone.now()

    @classmethod
    def from_request(cls, protocol, request, route):
        body, body_error = b"", None
        try:
            body = read_body(request)
        except CallbackError as exc:
            body_error = exc
        return cls(
            protocol=protocol,
            url_command=route.url_command,
            body=body,
            headers=request_headers(request),
            query=request_query(request),
            remote_addr=client_ip(request) or None,
            operation_id=storable(request.headers.get("operationID", ""))[:OPERATION_ID_LENGTH],
            body_error=body_error,
        )
