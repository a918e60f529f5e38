"""Fake OpenIM Server and Tencent Cloud Chat REST APIs that answer like the vendors' servers,
for the reconcile tests and the benchmark (``python -m openim_sync.testing.fake_openim`` /
``fake_tencent``)."""

from .fake_openim import FakeOpenIMServer, OpenIMState
from .fake_tencent import FakeTencentServer, TencentState, check_usersig, decode_usersig

__all__ = [
    "FakeOpenIMServer",
    "FakeTencentServer",
    "OpenIMState",
    "TencentState",
    "check_usersig",
    "decode_usersig",
]
